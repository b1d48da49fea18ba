# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parallelism planner: which backend, how to split the model, whether it fits, how fast it will be.

The performance model (documented in docs/planner.md and scored against published numbers in calibration.py):

* decode is memory-bound: a step reads the active weights (for MoE, the shared part plus the experts the batch
  touches) and the KV cache of every sequence; time = bytes / (memory bandwidth x efficiency), where the
  efficiency depends on the backend and the accelerator, times a penalty for MoE routing;
* tensor parallel (vLLM TP, distributed-llama) splits every layer over the nodes of a group and pays two
  all-reduces per layer (latency per ring step + size / link bandwidth);
* pipeline parallel and llama.cpp's layer split run the stages one after another for one sequence and pay a hop
  per stage boundary (llama.cpp RPC: round trips per remote device);
* prefill (time to first token) is compute-bound: 2 x active parameters x prompt tokens / (TFLOPS x efficiency),
  never faster than reading the weights once;
* no prediction exceeds the physical limit: the bytes a step reads over the bandwidth of the nodes that work on
  it at the same time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import (
    QUANTS, Model, model_weight_bytes, normalize_quant, resolve_model)
from ansible_collections.llmlab.cluster.plugins.module_utils.constants import (
    BACKEND_CHOICES, BACKEND_PEER_PORTS, BACKENDS, DEFAULT_API_PORT, DEFAULT_CONTEXT, DEFAULT_PROMPT)
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node, resolve_link
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import check_topology, resolve_nodes


# What each backend can load.
BACKEND_QUANTS: Dict[str, Tuple[str, ...]] = {
    "vllm_ray": ("bf16", "fp16", "fp8", "nvfp4", "mxfp4"),
    "llamacpp_rpc": ("f32", "bf16", "fp16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "mxfp4"),
    "distributed_llama": ("q4_0", "f32"),
}
BACKEND_ACCELERATORS: Dict[str, Tuple[str, ...]] = {
    "vllm_ray": ("cuda", "rocm"),
    "llamacpp_rpc": ("cuda", "rocm", "cpu"),
    "distributed_llama": ("cpu", "cuda", "rocm"),   # runs on the CPU cores (or Vulkan) of any box
}

# The calibrated constants. Change them only together with the calibration benchmark (tests print it).
DECODE_EFFICIENCY: Dict[str, Dict[str, float]] = {
    "vllm_ray": {"cuda": 0.80, "rocm": 0.60},
    "llamacpp_rpc": {"cuda": 0.87, "rocm": 0.84, "cpu": 0.60},
    "distributed_llama": {"cpu": 0.60, "cuda": 0.60, "rocm": 0.60},
}
PREFILL_EFFICIENCY: Dict[str, Dict[str, float]] = {
    "vllm_ray": {"cuda": 0.50, "rocm": 0.30},
    "llamacpp_rpc": {"cuda": 0.35, "rocm": 0.20, "cpu": 0.50},
    "distributed_llama": {"cpu": 0.30, "cuda": 0.30, "rocm": 0.30},
}
MOE_EFFICIENCY = 0.70            # expert routing, gathers and small GEMMs: MoE reads less well than dense
KV_BYTES = {"vllm_ray": 2.0, "llamacpp_rpc": 2.0, "distributed_llama": 4.0}
RUNTIME_OVERHEAD_GB = {"vllm_ray": 3.0, "llamacpp_rpc": 0.5, "distributed_llama": 0.3}
STEP_OVERHEAD_US = {"vllm_ray": 300.0, "llamacpp_rpc": 200.0, "distributed_llama": 500.0}
ALLREDUCE_FIXED_US = 40.0        # NCCL launch + sync per all-reduce (28-40 us measured between two GB10s)
PP_HOP_FIXED_US = 200.0          # vLLM pipeline stage hand-over (Ray compiled graph / NCCL send-recv)
RPC_ROUND_TRIPS = 3              # llama.cpp RPC: set input, compute graph, get output, per remote device
RPC_FIXED_US = 150.0
DLLAMA_SYNCS_PER_LAYER = 2
DLLAMA_SYNC_FIXED_US = 125.0
DLLAMA_SYNC_PER_PEER_US = 60.0
ACT_BYTES = {"vllm_ray": 2.0, "llamacpp_rpc": 4.0, "distributed_llama": 1.0625}  # q80 buffers in dllama



@dataclass
class Candidate:
    backend: str
    tensor_parallel: int
    pipeline_parallel: int
    nodes_used: List[str]
    fits: bool = False
    rejected: bool = False
    memory_per_node_gb: Dict[str, float] = field(default_factory=dict)
    usable_memory_gb: Dict[str, float] = field(default_factory=dict)
    predicted: Dict[str, Optional[float]] = field(default_factory=dict)
    reasons: List[str] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["head"] = self.nodes_used[0] if self.nodes_used else None
        d["workers"] = self.nodes_used[1:]
        return d


@dataclass
class Request:
    model: Model
    quant: str
    link: Dict[str, float]
    context_tokens: int
    prompt_tokens: int
    concurrency: int


def _gb(x: float) -> float:
    """Bytes as GB, rounded up to 0.01 GB: the reported need is never below the real one."""
    return math.ceil(x / 1e7) / 100.0


def _sig(x: float, digits: int = 4, up: bool = False) -> float:
    """Round to ``digits`` significant digits, down (predictions) or up (limits), so a rounded prediction never
    passes its rounded limit."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (digits - 1 - int(math.floor(math.log10(x))))
    return (math.ceil(x * scale) if up else math.floor(x * scale)) / scale


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def proportional_split(total: int, weights: Sequence[float]) -> List[int]:
    """Split ``total`` integer units in proportion to ``weights`` (largest remainder), every share >= 1."""
    if total < len(weights):
        raise ValueError("cannot give %d nodes at least one of %d layers" % (len(weights), total))
    s = float(sum(weights))
    raw = [total * w / s for w in weights]
    out = [max(1, int(math.floor(r))) for r in raw]
    while sum(out) > total:  # the floor of 1 over-allocated: take from the share furthest above its ideal
        j = max((k for k in range(len(out)) if out[k] > 1), key=lambda k: out[k] - raw[k])
        out[j] -= 1
    order = sorted(range(len(weights)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in range(total - sum(out)):
        out[order[i % len(order)]] += 1
    return out


def decode_bytes(model: Model, quant: str, concurrency: int, kv_tokens: int, kv_bytes: float) -> Dict[str, float]:
    """Bytes one decode step reads: weights (MoE: shared + experts the batch touches) and the KV cache."""
    bpw = QUANTS[quant]
    if model.is_moe:
        e, k = model.experts, model.experts_active
        per_expert = (model.params_total_b - model.params_active_b) / (e - k)
        shared = model.params_active_b - k * per_expert
        touched = e * (1.0 - (1.0 - float(k) / e) ** concurrency)
        weight_params = shared + touched * per_expert
    else:
        weight_params = model.params_active_b
    weights = weight_params * 1e9 * bpw
    kv = float(model.kv_elements_per_token) * kv_bytes * kv_tokens * concurrency
    return {"weights": weights, "kv": kv, "total": weights + kv}


def _comm_allreduce_s(tp: int, layers: int, size_bytes: float, link: Mapping[str, float]) -> float:
    if tp <= 1:
        return 0.0
    bw = link["gbps"] * 1e9 / 8.0
    step = link["latency_us"] * 1e-6 + size_bytes / tp / bw
    per = 2 * (tp - 1) * step + ALLREDUCE_FIXED_US * 1e-6
    return 2 * layers * per


def _hop_s(size_bytes: float, link: Mapping[str, float], round_trips: float, fixed_us: float) -> float:
    bw = link["gbps"] * 1e9 / 8.0
    return round_trips * 2 * link["latency_us"] * 1e-6 + size_bytes / bw + fixed_us * 1e-6


def _structure_problems(backend: str, tp: int, pp: int, nodes: List[Node], req: Request) -> List[str]:
    m = req.model
    out = []
    if req.quant not in BACKEND_QUANTS[backend]:
        out.append("%s cannot load %s weights (it loads %s)" % (backend, req.quant, ", ".join(BACKEND_QUANTS[backend])))
    for n in nodes:
        if n.accelerator not in BACKEND_ACCELERATORS[backend]:
            out.append("%s needs a %s accelerator; %s (profile %s) has %s"
                       % (backend, " or ".join(BACKEND_ACCELERATORS[backend]), n.name, n.profile, n.accelerator))
            break
    if backend == "vllm_ray":
        if m.heads % tp:
            out.append("TP=%d does not divide the %d attention heads" % (tp, m.heads))
        if pp > 1 and not m.pp_supported:
            out.append("vLLM has no pipeline parallelism for %s (%s)" % (m.id, m.architecture))
        if pp > m.layers:
            out.append("PP=%d is more than the %d layers" % (pp, m.layers))
    elif backend == "llamacpp_rpc":
        if pp > m.layers:
            out.append("%d nodes are more than the %d layers to split" % (pp, m.layers))
    else:
        if not is_power_of_two(tp):
            out.append("distributed-llama needs a power-of-two node count, not %d" % tp)
        if tp > m.kv_heads:
            out.append("distributed-llama cannot use more nodes (%d) than the model's %d KV heads" % (tp, m.kv_heads))
    return out


def llamacpp_device_split(nodes: Sequence[Node], layers: Sequence[int], n_layers: int) -> Dict[str, Any]:
    """The layer split in llama.cpp's own terms: ``--rpc`` devices first (the workers, in order), then the head's
    local GPU. A head without one (a CPU build) keeps its layers on the CPU: llama.cpp offloads the *last*
    ``-ngl`` layers (plus the output layer), so the head's share is what ``-ngl`` leaves out."""
    head, workers = nodes[0], list(nodes[1:])
    shares = list(layers[1:])
    order = [w.name for w in workers]
    ngl = n_layers + 1
    if head.accelerator == "cpu":
        ngl -= layers[0]
    else:
        order.append(head.name)
        shares.append(layers[0])
    total = float(sum(shares)) or 1.0
    return {
        "device_order": order,
        "tensor_split": [round(s / total, 4) for s in shares],
        "n_gpu_layers": ngl,
        "head_device": head.accelerator != "cpu",
    }


def _memory(backend: str, tp: int, pp: int, nodes: List[Node], req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """Bytes each node holds: its weight share + its KV cache share + the runtime's overhead."""
    m = req.model
    weights = model_weight_bytes(m, req.quant)
    kv_total = float(m.kv_elements_per_token) * KV_BYTES[backend] * req.context_tokens * req.concurrency
    overhead = RUNTIME_OVERHEAD_GB[backend] * 1e9
    mem: Dict[str, float] = {}
    settings: Dict[str, Any] = {}
    if backend == "vllm_ray":
        kv_frac = 1.0 if m.kv_dim_per_layer else max(1.0 / tp, 1.0 / m.kv_heads)
        for n in nodes:
            mem[n.name] = weights / (tp * pp) + kv_total / pp * kv_frac + overhead
        settings["distributed_executor_backend"] = "ray" if tp * pp > 1 else "mp"
        settings["kv_cache_fraction_per_rank"] = round(kv_frac, 4)
    elif backend == "llamacpp_rpc":
        layers = proportional_split(m.layers, [n.usable_memory_gb for n in nodes])
        for n, l in zip(nodes, layers):
            mem[n.name] = (weights + kv_total) * l / m.layers + overhead
        settings["layer_split"] = {n.name: l for n, l in zip(nodes, layers)}
        settings.update(llamacpp_device_split(nodes, layers, m.layers))
    else:
        embed = m.vocab * m.hidden * 4.0          # the root keeps the embedding table in f32
        for i, n in enumerate(nodes):
            mem[n.name] = (weights + kv_total) / tp + overhead + (embed if i == 0 else 0.0)
        settings["buffer_float_type"] = "q80" if req.quant == "q4_0" else "f32"
        settings["weights_float_type"] = "q40" if req.quant == "q4_0" else req.quant
    return mem, settings


def _predict(backend: str, tp: int, pp: int, nodes: List[Node], req: Request,
             settings: Mapping[str, Any]) -> Tuple[Dict[str, Optional[float]], List[str]]:
    m, link = req.model, req.link
    c = req.concurrency
    step = decode_bytes(m, req.quant, c, req.prompt_tokens, KV_BYTES[backend])
    moe = MOE_EFFICIENCY if m.is_moe else 1.0
    notes: List[str] = []
    bw = {n.name: n.mem_bw_gbs * 1e9 for n in nodes}
    eff = {n.name: DECODE_EFFICIENCY[backend][n.accelerator] * moe for n in nodes}
    flops = 2.0 * m.params_active_b * 1e9 * req.prompt_tokens * c
    pfe = {n.name: PREFILL_EFFICIENCY[backend][n.accelerator] for n in nodes}
    tfl = {n.name: n.compute_tflops * 1e12 for n in nodes}
    prefill_floor_bytes = model_weight_bytes(m, req.quant) if m.is_moe else step["weights"]

    if backend in ("vllm_ray", "distributed_llama"):
        # tp ranks per stage work at once; stages of one sequence run one after another
        slow = min(nodes, key=lambda n: bw[n.name] * eff[n.name])
        compute = step["total"] / (tp * bw[slow.name] * eff[slow.name])
        limit = step["total"] / (tp * min(bw.values()))
        pre_compute = flops / (tp * min(tfl[n.name] * pfe[n.name] for n in nodes))
        pre_floor = prefill_floor_bytes / (tp * min(bw.values()))
        if backend == "vllm_ray":
            comm = _comm_allreduce_s(tp, m.layers, c * m.hidden * ACT_BYTES[backend], link)
            hops = (pp - 1) * _hop_s(c * m.hidden * ACT_BYTES[backend], link, 1, PP_HOP_FIXED_US)
            pre_comm = _comm_allreduce_s(tp, m.layers, req.prompt_tokens * c * m.hidden * ACT_BYTES[backend], link) \
                + (pp - 1) * _hop_s(req.prompt_tokens * c * m.hidden * ACT_BYTES[backend], link, 1, PP_HOP_FIXED_US)
            if tp > 1:
                notes.append("TP=%d: each node reads 1/%d of every layer; %d all-reduces per token cost %.2f ms"
                             % (tp, tp, 2 * m.layers, comm * 1e3))
            if pp > 1:
                notes.append("PP=%d: %d stage hand-overs per token cost %.2f ms" % (pp, pp - 1, hops * 1e3))
            comm += hops
        else:
            syncs = DLLAMA_SYNCS_PER_LAYER * m.layers if tp > 1 else 0
            xfer = 4.0 * m.layers * (tp - 1) * m.hidden * ACT_BYTES[backend] * c
            per_sync = 2 * link["latency_us"] + DLLAMA_SYNC_FIXED_US + DLLAMA_SYNC_PER_PEER_US * (tp - 1)
            comm = syncs * per_sync * 1e-6 + xfer / (link["gbps"] * 1e9 / 8.0)
            pre_comm = syncs * per_sync * 1e-6 + req.prompt_tokens * xfer / (link["gbps"] * 1e9 / 8.0)
            if tp > 1:
                notes.append("%d nodes each hold 1/%d of every layer; %d synchronisations (%.0f kB) per token cost "
                             "%.2f ms" % (tp, tp, syncs, xfer / 1e3, comm * 1e3))
    else:
        split: Mapping[str, int] = settings["layer_split"]
        compute = sum(step["total"] * split[n.name] / m.layers / (bw[n.name] * eff[n.name]) for n in nodes)
        limit = sum(step["total"] * split[n.name] / m.layers / bw[n.name] for n in nodes)
        pre_compute = sum(flops * split[n.name] / m.layers / (tfl[n.name] * pfe[n.name]) for n in nodes)
        pre_floor = sum(prefill_floor_bytes * split[n.name] / m.layers / bw[n.name] for n in nodes)
        remote = len(nodes) - 1
        comm = remote * _hop_s(2 * c * m.hidden * ACT_BYTES[backend], link, RPC_ROUND_TRIPS, RPC_FIXED_US)
        pre_comm = remote * _hop_s(2 * req.prompt_tokens * c * m.hidden * ACT_BYTES[backend], link,
                                   RPC_ROUND_TRIPS, RPC_FIXED_US)
        if remote:
            notes.append("layers split %s: the nodes work one after another; %d RPC device(s) cost %.2f ms per token"
                         % (", ".join("%s %d" % kv for kv in split.items()), remote, comm * 1e3))
    step_s = compute + comm + STEP_OVERHEAD_US[backend] * 1e-6
    ttft = max(pre_compute, pre_floor) + pre_comm + step_s
    per_request = 1.0 / step_s
    pred: Dict[str, Optional[float]] = {
        "decode_tok_s": _sig(per_request),
        "aggregate_tok_s": _sig(per_request * c),
        "ttft_s": _sig(ttft, up=True),
        "physical_limit_tok_s": _sig(1.0 / limit, up=True),
        "bytes_per_token_gb": _sig(step["total"] / c / 1e9, up=True),
    }
    return pred, notes


def _enumerate(n_nodes: int, backends: Sequence[str], tp: Optional[int], pp: Optional[int]) -> List[Tuple[str, int, int]]:
    out = []
    for backend in backends:
        for used in range(n_nodes, 0, -1):
            if backend == "vllm_ray":
                shapes = [(t, used // t) for t in range(used, 0, -1) if used % t == 0]
            elif backend == "llamacpp_rpc":
                shapes = [(1, used)]
            else:
                shapes = [(used, 1)]
            for t, p in shapes:
                if (tp is None or t == tp) and (pp is None or p == pp):
                    out.append((backend, t, p))
    return out


def _positive_int(value: Any, variable: str, default: Optional[int]) -> Optional[int]:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError("%s must be a positive integer, got %r" % (variable, value), variable="llmlab_" + variable,
                        fix="give a whole number of at least 1")
    return value


def _fit_hints(c: Candidate, nodes: List[Node], req: Request) -> List[str]:
    """When a candidate does not fit: a smaller quantization that would, and how many nodes would."""
    hints = []
    need = sum(c.memory_per_node_gb.values())
    for q in sorted(BACKEND_QUANTS[c.backend], key=lambda x: -QUANTS[x]):
        if QUANTS[q] >= QUANTS[req.quant]:
            continue
        scale = QUANTS[q] / QUANTS[req.quant]
        ok = True
        for n in nodes:
            weights_share = (c.memory_per_node_gb[n.name] - RUNTIME_OVERHEAD_GB[c.backend])
            if weights_share * scale + RUNTIME_OVERHEAD_GB[c.backend] > n.usable_memory_gb:
                ok = False
        if ok:
            hints.append("%s would fit on these nodes" % q)
            break
    per_node = min(n.usable_memory_gb for n in nodes) - RUNTIME_OVERHEAD_GB[c.backend]
    if per_node > 0:
        want = int(math.ceil((need - RUNTIME_OVERHEAD_GB[c.backend] * len(nodes)) / per_node))
        if want > len(nodes):
            hints.append("about %d nodes like %s would hold it in %s" % (want, nodes[0].name, req.quant))
    return hints


def plan_parallel(nodes: Any, topology: Any = "single", link: Any = None, model: Any = None, quant: Any = "bf16",
                  backend: Any = "auto", tensor_parallel: Any = None, pipeline_parallel: Any = None,
                  context_tokens: Any = None, prompt_tokens: Any = None, concurrency: Any = None,
                  fail_on_no_fit: bool = True, api_address: Optional[str] = None,
                  api_port: int = DEFAULT_API_PORT) -> Dict[str, Any]:
    """Enumerate and rank the candidate plans. Returns the chosen plan with ``candidates`` best first.

    ``api`` in the result is where the head serves clients: ``api_address`` when given, else the head's management
    address (None when the inventory names it by DNS name only)."""
    resolved = resolve_nodes(nodes)
    check_topology(topology, len(resolved))
    if model is None:
        raise PlanError("no model given", variable="llmlab_model", fix="set llmlab_model, e.g. Qwen/Qwen3-235B-A22B")
    m = resolve_model(model)
    q = normalize_quant(quant)
    if backend not in BACKEND_CHOICES:
        raise PlanError("unknown backend %r" % (backend,), variable="llmlab_backend",
                        fix="use one of: %s" % ", ".join(BACKEND_CHOICES))
    if link is None:
        link = resolved[0].switch_link if topology == "switch" else resolved[0].p2p_link
    req = Request(model=m, quant=q, link=resolve_link(link),
                  context_tokens=_positive_int(context_tokens, "context_tokens", DEFAULT_CONTEXT) or DEFAULT_CONTEXT,
                  prompt_tokens=_positive_int(prompt_tokens, "prompt_tokens", DEFAULT_PROMPT) or DEFAULT_PROMPT,
                  concurrency=_positive_int(concurrency, "concurrency", 1) or 1)
    if req.prompt_tokens > req.context_tokens:
        raise PlanError("prompt_tokens %d is more than context_tokens %d" % (req.prompt_tokens, req.context_tokens),
                        variable="llmlab_prompt_tokens", fix="raise llmlab_context_tokens or lower llmlab_prompt_tokens")
    tp = _positive_int(tensor_parallel, "tensor_parallel", None)
    pp = _positive_int(pipeline_parallel, "pipeline_parallel", None)
    if (tp or 1) * (pp or 1) > len(resolved):
        raise PlanError("tensor_parallel %d x pipeline_parallel %d needs %d nodes; the cluster has %d"
                        % (tp or 1, pp or 1, (tp or 1) * (pp or 1), len(resolved)), variable="llmlab_tensor_parallel",
                        fix="lower llmlab_tensor_parallel / llmlab_pipeline_parallel or add nodes")
    backends = BACKENDS if backend == "auto" else (backend,)
    shapes = _enumerate(len(resolved), backends, tp, pp)
    if not shapes:
        raise PlanError("no %s plan has TP=%s and PP=%s" % (backend, tp, pp), variable="llmlab_tensor_parallel",
                        fix="llama.cpp RPC splits layers (TP=1, PP=nodes); distributed-llama splits tensors "
                            "(TP=nodes, PP=1); vLLM takes any TP x PP")
    candidates = []
    for be, t, p in shapes:
        used = resolved[: t * p]
        cand = Candidate(backend=be, tensor_parallel=t, pipeline_parallel=p, nodes_used=[n.name for n in used])
        cand.usable_memory_gb = {n.name: n.usable_memory_gb for n in used}
        problems = _structure_problems(be, t, p, used, req)
        if problems:
            cand.rejected = True
            cand.predicted = {"decode_tok_s": None, "aggregate_tok_s": None, "ttft_s": None,
                              "physical_limit_tok_s": None, "bytes_per_token_gb": None}
            cand.reasons = ["rejected: " + p_ for p_ in problems]
            candidates.append(cand)
            continue
        mem, settings = _memory(be, t, p, used, req)
        cand.settings = settings
        cand.memory_per_node_gb = {k: _gb(v) for k, v in mem.items()}
        short = {n.name: cand.memory_per_node_gb[n.name] - n.usable_memory_gb for n in used}
        cand.fits = all(v <= 0 for v in short.values())
        cand.predicted, notes = _predict(be, t, p, used, req, settings)
        worst = max(short, key=lambda k: short[k])
        if cand.fits:
            cand.reasons.append("fits: %.1f GB of %.1f GB usable on the fullest node (%s)"
                                % (cand.memory_per_node_gb[worst], cand.usable_memory_gb[worst], worst))
        else:
            cand.reasons.append("does not fit: %s needs %.1f GB, %.1f GB more than its %.1f GB usable"
                                % (worst, cand.memory_per_node_gb[worst], short[worst], cand.usable_memory_gb[worst]))
            cand.reasons += ["hint: " + h for h in _fit_hints(cand, used, req)]
        cand.reasons += notes
        cand.reasons.append("predicted %.1f tok/s per sequence (physical limit %.1f), first token in %.2f s"
                            % (cand.predicted["decode_tok_s"] or 0.0, cand.predicted["physical_limit_tok_s"] or 0.0,
                               cand.predicted["ttft_s"] or 0.0))
        candidates.append(cand)

    order = {b: i for i, b in enumerate(BACKENDS)}

    def rank(c: Candidate) -> Tuple[int, int, float, int, int]:
        return (1 if c.rejected else 0, 0 if c.fits else 1, -(c.predicted.get("aggregate_tok_s") or 0.0),
                len(c.nodes_used), order[c.backend])

    candidates.sort(key=rank)
    best = candidates[0]
    if best.rejected or not best.fits:
        if best.rejected:  # nothing could run at all: every distinct reason, once
            why = "; ".join(dict.fromkeys(r[len("rejected: "):] for c in candidates for r in c.reasons))
        else:
            why = "; ".join(best.reasons[:3])
        if best.rejected:
            raise PlanError("no candidate can run %s in %s on %d node(s): %s" % (m.id, q, len(resolved), why),
                            variable="llmlab_backend",
                            fix="choose a backend, quantization and node count that go together (the reasons say "
                                "what each backend needs), or llmlab_backend: auto")
        if fail_on_no_fit:
            raise PlanError("no plan fits %s in %s on %d node(s): %s" % (m.id, q, len(resolved), why),
                            variable="llmlab_model",
                            fix="use a smaller llmlab_quant or add nodes (see the hints), or set "
                                "llmlab_fail_on_no_fit: false to see every candidate")
    plan = best.as_dict()
    fitting = sum(1 for c in candidates if c.fits and not c.rejected)
    head = "chosen: %s TP=%d PP=%d on %s" % (best.backend, best.tensor_parallel, best.pipeline_parallel,
                                            ", ".join(best.nodes_used))
    head += (", the fastest of %d fitting candidates" % fitting) if best.fits else \
        ", the fastest candidate, but NOTHING FITS (llmlab_fail_on_no_fit is false)"
    plan["reasons"] = [head] + best.reasons
    plan["peer_ports"] = list(BACKEND_PEER_PORTS[best.backend])
    head_node = next((n for n in resolved if n.name == best.nodes_used[0]), None) if best.nodes_used else None
    address = api_address or (head_node.management_address if head_node else None)
    plan["api"] = {"host": head_node.name if head_node else None, "address": address, "port": int(api_port),
                   "url": "http://%s:%d" % (address, int(api_port)) if address else None}
    plan["model"] = m.as_dict()
    plan["quant"] = q
    plan["link"] = req.link
    plan["context_tokens"] = req.context_tokens
    plan["prompt_tokens"] = req.prompt_tokens
    plan["concurrency"] = req.concurrency
    plan["candidates"] = [c.as_dict() for c in candidates]
    return plan
