# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parallelism planner: which backend, how to split the model, whether it fits, how fast it will be.

The performance model (docs/planner.md; scored against published numbers in calibration.py). This module keeps the
common part - enumerate every backend's shapes, rank them, explain the choice, say where the API is and what every
node runs - and asks the backend registry (``backends/``) for everything that differs between backends:

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

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils import backends
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend
from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import QUANTS, normalize_quant, resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.constants import (
    DEFAULT_API_PORT, DEFAULT_CONTEXT, DEFAULT_CURVE, DEFAULT_PROMPT)
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import (  # noqa: F401  (is_power_of_two, ... re-exported)
    Request, gb, is_power_of_two, proportional_split)
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node, resolve_link
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import check_topology, resolve_nodes

NO_PREDICTION: Dict[str, Optional[float]] = {"decode_tok_s": None, "aggregate_tok_s": None, "ttft_s": None,
                                             "physical_limit_tok_s": None, "aggregate_limit_tok_s": None,
                                             "bytes_per_token_gb": None}


@dataclass
class Candidate:
    backend: str
    tensor_parallel: int
    pipeline_parallel: int
    nodes_used: List[str]
    fits: bool = False
    rejected: bool = False
    deployable: bool = True
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


def _enumerate(n_nodes: int, names: Sequence[str], tp: Optional[int], pp: Optional[int]) -> List[Tuple[str, int, int]]:
    out = []
    for name in names:
        for used in range(n_nodes, 0, -1):
            for t, p in backends.get(name).shapes(used):
                if (tp is None or t == tp) and (pp is None or p == pp):
                    out.append((name, t, p))
    return out


def _positive_int(value: Any, variable: str, default: Optional[int]) -> Optional[int]:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError("%s must be a positive integer, got %r" % (variable, value), variable="llmlab_" + variable,
                        fix="give a whole number of at least 1")
    return value


def _fit_hints(c: Candidate, be: Backend, nodes: List[Node], req: Request) -> List[str]:
    """When a candidate does not fit: a smaller quantization that would, and how many nodes would."""
    hints = []
    need = sum(c.memory_per_node_gb.values())
    overhead = be.runtime_overhead_gb
    for q in sorted(be.quants, key=lambda x: -QUANTS[x]):
        if QUANTS[q] >= QUANTS[req.quant]:
            continue
        scale = QUANTS[q] / QUANTS[req.quant]
        ok = True
        for n in nodes:
            weights_share = (c.memory_per_node_gb[n.name] - overhead)
            if weights_share * scale + overhead > n.usable_memory_gb:
                ok = False
        if ok:
            hints.append("%s would fit on these nodes" % q)
            break
    per_node = min(n.usable_memory_gb for n in nodes) - overhead
    if per_node > 0:
        want = int(math.ceil((need - overhead * len(nodes)) / per_node))
        if want > len(nodes):
            hints.append("about %d nodes like %s would hold it in %s" % (want, nodes[0].name, req.quant))
    return hints


def _margin(be: Backend, t: int, p: int, used: List[Node], req: Request, mem: Mapping[str, float], worst: str,
            margin_gb: float) -> str:
    """How much room the fullest node keeps, and how much more context (or how many more sequences) that room
    holds: the KV cache is what grows."""
    wider = dataclasses.replace(req, context_tokens=req.context_tokens * 2)
    per_token = (be.memory(t, p, used, wider)[0][worst] - mem[worst]) / req.context_tokens   # bytes per token
    node = next(n for n in used if n.name == worst)
    kv = per_token * req.context_tokens
    runtime = be.overhead_gb(node) * 1e9
    out = "margin: %.1f GB (%.1f %% of %s's usable memory), after weights %.1f GB, KV cache %.2f GB, runtime %.1f GB" \
        % (margin_gb, 100.0 * margin_gb / node.usable_memory_gb, worst, (mem[worst] - kv - runtime) / 1e9, kv / 1e9,
           runtime / 1e9)
    if per_token > 0:
        more = int(margin_gb * 1e9 / per_token)
        out += "; the KV cache takes %.2f MB per token of context there: room for about %d more tokens of it " \
               "(the model's own context limit still applies)" % (per_token / 1e6, more)
    return out


def _evaluate(name: str, t: int, p: int, used: List[Node], req: Request, deployable: bool) -> Candidate:
    be = backends.get(name)
    cand = Candidate(backend=name, tensor_parallel=t, pipeline_parallel=p, nodes_used=[n.name for n in used],
                     deployable=deployable)
    cand.usable_memory_gb = {n.name: n.usable_memory_gb for n in used}
    problems = be.problems(t, p, used, req)
    if problems:
        cand.rejected = True
        cand.predicted = dict(NO_PREDICTION)
        cand.reasons = ["rejected: " + p_ for p_ in problems]
    else:
        mem, settings = be.memory(t, p, used, req)
        cand.settings = settings
        cand.memory_per_node_gb = {k: gb(v) for k, v in mem.items()}
        short = {n.name: cand.memory_per_node_gb[n.name] - n.usable_memory_gb for n in used}
        cand.fits = all(v <= 0 for v in short.values())
        cand.predicted, notes = be.predict(t, p, used, req, settings)
        worst = max(short, key=lambda k: short[k])
        if cand.fits:
            cand.reasons.append("fits: %.1f GB of %.1f GB usable on the fullest node (%s)"
                                % (cand.memory_per_node_gb[worst], cand.usable_memory_gb[worst], worst))
            cand.reasons.append(_margin(be, t, p, used, req, mem, worst, -short[worst]))
        else:
            cand.reasons.append("does not fit: %s needs %.1f GB, %.1f GB more than its %.1f GB usable"
                                % (worst, cand.memory_per_node_gb[worst], short[worst], cand.usable_memory_gb[worst]))
            cand.reasons += ["hint: " + h for h in _fit_hints(cand, be, used, req)]
        cand.reasons += notes
        cand.reasons.append("predicted %.1f tok/s per sequence (physical limit %.1f), first token in %.2f s"
                            % (cand.predicted["decode_tok_s"] or 0.0, cand.predicted["physical_limit_tok_s"] or 0.0,
                               cand.predicted["ttft_s"] or 0.0))
    if not deployable:
        cand.reasons.append("not deployable: this collection has no role llmlab.cluster.%s yet" % name)
    return cand


def _deployable_names(deployable: Optional[Sequence[str]]) -> List[str]:
    """The registry's backends that have a role (all of them when ``deployable`` is None: planning ahead)."""
    if deployable is None:
        return list(backends.NAMES)
    return [n for n in backends.NAMES if n in set(deployable)]


def _footprints(can_deploy: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    return {n: dict(b.footprint(), deployable=n in can_deploy, title=b.title) for n, b in backends.REGISTRY.items()}


def _api(head: Node, api_address: Optional[str], api_port: int, model_id: str) -> Dict[str, Any]:
    address = api_address or head.management_address
    return {"host": head.name, "address": address, "port": int(api_port),
            "url": "http://%s:%d" % (address, int(api_port)) if address else None,
            "served_model_name": model_id, "key_required": True}


def plan_parallel(nodes: Any, topology: Any = "single", link: Any = None, model: Any = None, quant: Any = "bf16",
                  backend: Any = "auto", tensor_parallel: Any = None, pipeline_parallel: Any = None,
                  context_tokens: Any = None, prompt_tokens: Any = None, concurrency: Any = None,
                  fail_on_no_fit: bool = True, api_address: Optional[str] = None,
                  api_port: int = DEFAULT_API_PORT, deployable: Optional[Sequence[str]] = None,
                  fabric: Optional[Mapping[str, Any]] = None, curve: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Enumerate and rank the candidate plans. Returns the chosen plan with ``candidates`` best first.

    ``deployable``: the backends that have a role (None: every backend, for planning ahead). ``auto`` chooses among
    them only; candidates of the others are kept, ranked after, with the reason. ``fabric``: the fabric plan, whose
    node addresses the services bind to.

    ``api`` in the result is where the head serves clients: ``api_address`` when given, else the head's management
    address (None when the inventory names it by DNS name only)."""
    resolved = resolve_nodes(nodes)
    check_topology(topology, len(resolved))
    if model is None:
        raise PlanError("no model given", variable="llmlab_model", fix="set llmlab_model, e.g. Qwen/Qwen3-235B-A22B")
    m = resolve_model(model)
    q = normalize_quant(quant)
    if backend not in backends.CHOICES:
        raise PlanError("unknown backend %r" % (backend,), variable="llmlab_backend",
                        fix="use one of: %s" % ", ".join(backends.CHOICES))
    can_deploy = _deployable_names(deployable)
    if backend not in (backends.AUTO, backends.NONE) and backend not in can_deploy:
        raise PlanError("backend %s is planned by this collection but not deployable: it has no role "
                        "llmlab.cluster.%s yet" % (backend, backend), variable="llmlab_backend",
                        fix="use one of %s, auto or none" % (", ".join(can_deploy) or "(no backend has a role)"))
    if link is None:
        link = resolved[0].switch_link if topology == "switch" else resolved[0].p2p_link
    req = Request(model=m, quant=q, link=resolve_link(link),
                  context_tokens=_positive_int(context_tokens, "context_tokens", DEFAULT_CONTEXT) or DEFAULT_CONTEXT,
                  prompt_tokens=_positive_int(prompt_tokens, "prompt_tokens", DEFAULT_PROMPT) or DEFAULT_PROMPT,
                  concurrency=_positive_int(concurrency, "concurrency", 1) or 1)
    if req.prompt_tokens > req.context_tokens:
        raise PlanError("prompt_tokens %d is more than context_tokens %d" % (req.prompt_tokens, req.context_tokens),
                        variable="llmlab_prompt_tokens", fix="raise llmlab_context_tokens or lower llmlab_prompt_tokens")
    common = {"model": m.as_dict(), "quant": q, "link": req.link, "context_tokens": req.context_tokens,
              "prompt_tokens": req.prompt_tokens, "concurrency": req.concurrency, "deployable_backends": can_deploy,
              "backends": _footprints(can_deploy)}
    if backend == backends.NONE:
        return _serve_nothing(common)
    tp = _positive_int(tensor_parallel, "tensor_parallel", None)
    pp = _positive_int(pipeline_parallel, "pipeline_parallel", None)
    if (tp or 1) * (pp or 1) > len(resolved):
        raise PlanError("tensor_parallel %d x pipeline_parallel %d needs %d nodes; the cluster has %d"
                        % (tp or 1, pp or 1, (tp or 1) * (pp or 1), len(resolved)), variable="llmlab_tensor_parallel",
                        fix="lower llmlab_tensor_parallel / llmlab_pipeline_parallel or add nodes")
    names = backends.NAMES if backend == backends.AUTO else (backend,)
    shapes = _enumerate(len(resolved), names, tp, pp)
    if not shapes:
        raise PlanError("no %s plan has TP=%s and PP=%s" % (backend, tp, pp), variable="llmlab_tensor_parallel",
                        fix="; ".join(backends.get(n).shape_rule for n in names))
    candidates = [_evaluate(be, t, p, resolved[: t * p], req, be in can_deploy) for be, t, p in shapes]

    order = {b: i for i, b in enumerate(backends.NAMES)}

    def rank(c: Candidate) -> Tuple[int, int, int, float, int, int]:
        return (0 if c.deployable else 1, 1 if c.rejected else 0, 0 if c.fits else 1,
                -(c.predicted.get("aggregate_tok_s") or 0.0), len(c.nodes_used), order[c.backend])

    candidates.sort(key=rank)
    best = candidates[0]
    if not best.deployable:
        raise PlanError("no backend with a role can serve %s in %s: %s" % (m.id, q, _undeployable_why(candidates)),
                        variable="llmlab_backend",
                        fix="deployable backends here: %s. Choose a quantization one of them loads (llmlab_quant), "
                            "or wait for the role of the backend that would serve it"
                            % (", ".join(can_deploy) or "none"))
    if best.rejected or not best.fits:
        if best.rejected:  # nothing could run at all: every distinct reason, once
            why = "; ".join(dict.fromkeys(r[len("rejected: "):] for c in candidates for r in c.reasons
                                          if r.startswith("rejected: ")))
            raise PlanError("no candidate can run %s in %s on %d node(s): %s%s"
                            % (m.id, q, len(resolved), why, _undeployable_note(candidates)),
                            variable="llmlab_backend",
                            fix="choose a backend, quantization and node count that go together (the reasons say "
                                "what each backend needs), or llmlab_backend: auto")
        if fail_on_no_fit:
            raise PlanError("no plan fits %s in %s on %d node(s): %s%s"
                            % (m.id, q, len(resolved), "; ".join(best.reasons[:3]), _undeployable_note(candidates)),
                            variable="llmlab_model",
                            fix="use a smaller llmlab_quant or add nodes (see the hints), or set "
                                "llmlab_fail_on_no_fit: false to see every candidate")
    plan = best.as_dict()
    fitting = sum(1 for c in candidates if c.fits and not c.rejected and c.deployable)
    head = "chosen: %s TP=%d PP=%d on %s" % (best.backend, best.tensor_parallel, best.pipeline_parallel,
                                            ", ".join(best.nodes_used))
    head += (", the fastest of %d fitting candidates" % fitting) if best.fits else \
        ", the fastest candidate, but NOTHING FITS (llmlab_fail_on_no_fit is false)"
    plan["reasons"] = [head] + best.reasons + _idle_reasons(best, candidates, resolved, tp, pp)
    be = backends.get(best.backend)
    head_node = next(n for n in resolved if n.name == best.nodes_used[0])
    plan["api"] = dict(_api(head_node, api_address, api_port, m.id), endpoint=be.api_endpoint)
    plan["peer_ports"] = list(be.peer_ports.values())
    plan["ports"] = dict(be.peer_ports, api=str(int(api_port)))
    plan["containers"] = be.containers
    plan["services"] = be.services(plan, fabric)
    plan.update(common)
    plan["candidates"] = [c.as_dict() for c in candidates]
    plan["predicted_curve"] = _curve(best, resolved, req, curve)
    return plan


def _curve(best: Candidate, nodes: Sequence[Node], req: Request, curve: Optional[Sequence[int]]) -> List[Dict[str, Any]]:
    """The chosen shape on the same nodes, predicted at every concurrency of ``curve``: per-sequence and aggregate
    decode, first token, the batch's limits, and whether the KV cache of that many sequences still fits."""
    points = sorted({_positive_int(c, "concurrency_curve", None) or 1 for c in (curve or DEFAULT_CURVE)})
    if best.rejected:
        return []
    used = [n for n in nodes if n.name in best.nodes_used]
    out = []
    for c in points:
        cand = _evaluate(best.backend, best.tensor_parallel, best.pipeline_parallel, used,
                         dataclasses.replace(req, concurrency=c), best.deployable)
        out.append(dict(cand.predicted, concurrency=c, fits=cand.fits))
    return out


def _idle_reasons(best: Candidate, candidates: Sequence[Candidate], nodes: Sequence[Node], tp: Optional[int],
                  pp: Optional[int]) -> List[str]:
    """When the plan leaves nodes of the inventory idle: which, and the rule that idles them - the best deployable
    candidate on more nodes was rejected (and why), does not fit, or is not faster; or the pinned split is smaller."""
    used = len(best.nodes_used)
    if used == len(nodes):
        return []
    idle = ", ".join(n.name for n in nodes[used:])
    bigger = [c for c in candidates if len(c.nodes_used) > used and c.deployable]
    if not bigger:
        pins = ", ".join("%s=%d" % (k, v) for k, v in (("llmlab_tensor_parallel", tp), ("llmlab_pipeline_parallel", pp))
                         if v is not None)
        return ["idle: %s - %s gives %d node(s) work%s" % (idle, pins or "no shape of this backend", used,
                                                           "" if pins else " on more nodes")]
    other = bigger[0]   # the best of them, by the same ranking
    shape = "%s TP=%d PP=%d on %d nodes" % (other.backend, other.tensor_parallel, other.pipeline_parallel,
                                             len(other.nodes_used))
    if other.rejected or not other.fits:
        why = other.reasons[0]
    else:
        why = "not faster (%.1f tok/s aggregate against %.1f with fewer nodes, which win a tie)" % (
            other.predicted.get("aggregate_tok_s") or 0.0, best.predicted.get("aggregate_tok_s") or 0.0)
    return ["idle: %s - the best plan with more nodes (%s): %s" % (idle, shape, why)]


def _undeployable_why(candidates: Sequence[Candidate]) -> str:
    """Why the deployable backends cannot serve, and what a backend without a role would do."""
    deployable = [c for c in candidates if c.deployable]
    why = "; ".join(dict.fromkeys(r for c in deployable for r in c.reasons[:1])) or "no deployable backend"
    return why + _undeployable_note(candidates)


def _undeployable_note(candidates: Sequence[Candidate]) -> str:
    best = next((c for c in candidates if not c.deployable and c.fits and not c.rejected), None)
    if best is None:
        return ""
    return " (%s TP=%d PP=%d would fit, but has no role in this collection yet)" % (
        best.backend, best.tensor_parallel, best.pipeline_parallel)


def _serve_nothing(common: Mapping[str, Any]) -> Dict[str, Any]:
    """``llmlab_backend: none``: no backend runs; the backend stage removes every backend's services."""
    plan: Dict[str, Any] = {
        "backend": None, "tensor_parallel": 0, "pipeline_parallel": 0, "nodes_used": [], "head": None,
        "workers": [], "fits": True, "rejected": False, "memory_per_node_gb": {},
        "usable_memory_gb": {}, "predicted": dict(NO_PREDICTION), "settings": {}, "api": None, "peer_ports": [],
        "ports": {}, "containers": False, "services": {}, "candidates": [], "predicted_curve": [],
        "reasons": ["llmlab_backend is none: no backend runs; the backend stage removes every backend's services "
                    "and the fabric stays"],
    }
    plan.update(common)
    return plan
