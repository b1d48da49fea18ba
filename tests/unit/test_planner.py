"""The parallelism planner: expected choices, bad input, and properties (physical limits, ranking, memory)."""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ansible_collections.llmlab.cluster.plugins.module_utils import catalog
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils import backends
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import (
    is_power_of_two, plan_parallel, proportional_split)
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import resolve_node


def nodes(profile: str, n: int, **over: Any) -> List[Dict[str, Any]]:
    return [dict({"name": "%s-%d" % (profile, i), "profile": profile}, **over) for i in range(n)]


# --- the choices a user would expect --------------------------------------------------------------------------

@pytest.mark.parametrize("case,backend,tp,pp,used", [
    # three GB10 boxes, Qwen3-235B in FP8: 235 GB of weights need all three; TP=3 cannot divide 64 heads -> PP=3
    (dict(nodes=nodes("gb10", 3), topology="ring", model="Qwen/Qwen3-235B-A22B", quant="fp8"), "vllm_ray", 1, 3, 3),
    # two GB10 boxes, gpt-oss-120b: it fits one box, but TP=2 reads half the weights per node and wins
    (dict(nodes=nodes("gb10", 2), topology="direct", model="openai/gpt-oss-120b", quant="mxfp4"), "vllm_ray", 2, 1, 2),
    # a GGUF quant on GB10s: only llama.cpp loads it; a model that fits one box stays on one box (no RPC hops)
    (dict(nodes=nodes("gb10", 3), topology="ring", model="Qwen/Qwen2.5-72B-Instruct", quant="q4_k_m"),
     "llamacpp_rpc", 1, 1, 1),
    # four Framework boxes on 5GbE, 405B in Q4_K_M: 246 GB needs three of them; llama.cpp splits the layers
    (dict(nodes=nodes("strix_halo", 4), topology="switch", model="meta-llama/Llama-3.1-405B-Instruct",
          quant="q4_k_m"), "llamacpp_rpc", 1, 3, 3),
    # Q40 weights: distributed-llama on a power-of-two node count
    (dict(nodes=nodes("strix_halo", 4), topology="switch", model="meta-llama/Llama-3.1-405B-Instruct", quant="q40",
          backend="distributed_llama"), "distributed_llama", 4, 1, 4),
    # the lab: tiny model, every node in the layer split when asked to
    (dict(nodes=nodes("sim", 3), topology="ring", model="llmlab/tiny-llama-test", quant="fp16",
          backend="llamacpp_rpc", pipeline_parallel=3), "llamacpp_rpc", 1, 3, 3),
])
def test_expected_choices(case: Dict[str, Any], backend: str, tp: int, pp: int, used: int) -> None:
    plan = plan_parallel(**case)
    assert (plan["backend"], plan["tensor_parallel"], plan["pipeline_parallel"], len(plan["nodes_used"])) == \
        (backend, tp, pp, used), plan["reasons"]
    assert plan["fits"] and plan["reasons"][0].startswith("chosen:")
    assert plan["head"] == plan["nodes_used"][0] and plan["workers"] == plan["nodes_used"][1:]


def test_lab_layer_split_and_tensor_split() -> None:
    plan = plan_parallel(nodes("sim", 3), "ring", model="tiny", quant="fp16", backend="llamacpp_rpc",
                         pipeline_parallel=3)
    assert plan["settings"]["layer_split"] == {"sim-0": 4, "sim-1": 4, "sim-2": 4}
    assert sum(plan["settings"]["tensor_split"]) == pytest.approx(1.0)


def test_llamacpp_device_order_cpu_head_keeps_its_layers_on_the_cpu() -> None:
    # llama.cpp puts --rpc devices first; a CPU head is no device: -ngl leaves its 4 layers (the first) local
    s = plan_parallel(nodes("sim", 3), "ring", model="tiny", quant="fp16", backend="llamacpp_rpc",
                      pipeline_parallel=3)["settings"]
    assert (s["device_order"], s["tensor_split"], s["n_gpu_layers"], s["head_device"]) == \
        (["sim-1", "sim-2"], [0.5, 0.5], 12 + 1 - 4, False)


def test_llamacpp_device_order_gpu_head_comes_last() -> None:
    s = plan_parallel(nodes("gb10", 3), "ring", model="meta-llama/Llama-3.1-70B-Instruct", quant="q8_0",
                      backend="llamacpp_rpc", pipeline_parallel=3)["settings"]
    assert s["device_order"] == ["gb10-1", "gb10-2", "gb10-0"] and s["n_gpu_layers"] == 81 and s["head_device"]
    assert s["tensor_split"] == [round(l / 80, 4) for l in (s["layer_split"][n] for n in s["device_order"])]


def test_layer_split_follows_usable_memory() -> None:
    mixed = [{"name": "big", "profile": "gb10"}, {"name": "small", "profile": "gb10", "usable_memory_gb": 55.0}]
    plan = plan_parallel(mixed, "direct", model="meta-llama/Llama-3.1-70B-Instruct", quant="q8_0",
                         backend="llamacpp_rpc", pipeline_parallel=2)
    assert plan["settings"]["layer_split"] == {"big": 54, "small": 26}


def test_rejected_candidates_say_why() -> None:
    plan = plan_parallel(nodes("gb10", 3), "ring", model="Qwen/Qwen3-235B-A22B", quant="fp8")
    reasons = {(c["backend"], c["tensor_parallel"], c["pipeline_parallel"]): c["reasons"][0]
               for c in plan["candidates"] if c["rejected"]}
    assert reasons[("vllm_ray", 3, 1)] == "rejected: TP=3 does not divide the 64 attention heads"
    assert "cannot load fp8" in reasons[("llamacpp_rpc", 1, 3)]
    assert "power-of-two" in " ".join(" ".join(c["reasons"]) for c in plan["candidates"]
                                      if c["backend"] == "distributed_llama" and c["tensor_parallel"] == 3)


def test_vllm_on_cpu_nodes_runs_its_own_executor_and_needs_pp_support() -> None:
    plan = plan_parallel(nodes("sim", 2), "direct", model="tiny", quant="fp16", backend="vllm_ray",
                         fail_on_no_fit=False)  # 3 GB of runtime overhead: more than a lab profile holds
    assert plan["settings"]["distributed_executor_backend"] == "mp"
    assert any("executor mp: vLLM's CPU build has no Ray executor" in r for r in plan["reasons"])
    custom = {"id": "odd", "architecture": "OddForCausalLM", "params_total_b": 400, "layers": 60, "hidden": 8192,
              "heads": 64}
    plan = plan_parallel(nodes("gb10", 4), "ring", model=custom, quant="fp8", backend="vllm_ray",
                         fail_on_no_fit=False)
    pp = [c for c in plan["candidates"] if c["pipeline_parallel"] > 1]
    assert pp and all(c["rejected"] and "no pipeline parallelism" in " ".join(c["reasons"]) for c in pp)
    assert plan["tensor_parallel"] == 4 and plan["fits"]


def test_kv_cache_replicates_when_tp_exceeds_kv_heads() -> None:
    plan = plan_parallel(nodes("generic", 8, memory_gb=80, mem_bw_gbs=2000), "switch", model="Qwen/Qwen3-235B-A22B",
                         quant="fp8", backend="vllm_ray", tensor_parallel=8, link="eth_10g")
    assert plan["settings"]["kv_cache_fraction_per_rank"] == 0.25  # 4 KV heads: every rank keeps one of four


def test_too_big_says_by_how_much_and_what_would_fit() -> None:
    with pytest.raises(PlanError) as err:
        plan_parallel(nodes("gb10", 3), "ring", model="deepseek-ai/DeepSeek-R1", quant="bf16")
    assert "no plan fits deepseek-ai/DeepSeek-R1 in bf16 on 3 node(s)" in str(err.value)
    assert err.value.variable == "llmlab_model"
    plan = plan_parallel(nodes("gb10", 3), "ring", model="deepseek-ai/DeepSeek-R1", quant="bf16",
                         fail_on_no_fit=False)
    assert not plan["fits"] and "NOTHING FITS" in plan["reasons"][0]
    text = " ".join(plan["reasons"])
    assert "more than its 115.0 GB usable" in text
    assert "hint: nvfp4 would fit" in text or "hint: mxfp4 would fit" in text or "nodes like" in text
    # DeepSeek-R1 in Q2_K on three boxes does fit (the hint for llama.cpp says so)
    ok = plan_parallel(nodes("gb10", 3), "ring", model="deepseek-ai/DeepSeek-R1", quant="q2_k")
    assert ok["fits"] and ok["backend"] == "llamacpp_rpc"


@pytest.mark.parametrize("kwargs,words,variable", [
    (dict(backend="distributed_llama", tensor_parallel=3),
     "no candidate can run meta-llama/Llama-3.1-8B-Instruct in q4_0 on 3 node(s): distributed-llama needs a "
     "power-of-two node count, not 3", "llmlab_backend"),
    (dict(backend="distributed_llama", quant="fp16"),
     "distributed_llama cannot load fp16 weights (it loads q4_0, f32); distributed-llama needs a power-of-two node "
     "count, not 3", "llmlab_backend"),
    (dict(backend="mlx"), "unknown backend", "llmlab_backend"),
    (dict(quant="q1"), "unknown quantization", "llmlab_quant"),
    (dict(model="nope/nope"), "not in the catalog", "llmlab_model"),
    (dict(model=None), "no model", "llmlab_model"),
    (dict(tensor_parallel=2, pipeline_parallel=2), "needs 4 nodes; the cluster has 3", "llmlab_tensor_parallel"),
    (dict(backend="llamacpp_rpc", tensor_parallel=2), "no llamacpp_rpc plan has TP=2", "llmlab_tensor_parallel"),
    (dict(concurrency=0), "positive integer", "llmlab_concurrency"),
    (dict(prompt_tokens=9000, context_tokens=4096), "more than context_tokens", "llmlab_prompt_tokens"),
    (dict(link="infiniband"), "unknown link", "llmlab_link"),
    (dict(link={"latency_us": 3}), "numeric gbps", "llmlab_link"),
])
def test_bad_input(kwargs: Dict[str, Any], words: str, variable: str) -> None:
    args = dict(nodes=nodes("gb10", 3), topology="ring", model="meta-llama/Llama-3.1-8B-Instruct", quant="q4_0")
    args.update(kwargs)
    with pytest.raises(PlanError) as err:
        plan_parallel(**args)
    assert words in str(err.value)
    assert err.value.variable == variable and err.value.fix


def test_generic_profile_needs_its_figures() -> None:
    with pytest.raises(PlanError) as err:
        resolve_node({"name": "box", "profile": "generic"})
    assert (err.value.host, err.value.variable) == ("box", "llmlab_profile_overrides")


def test_proportional_split() -> None:
    assert proportional_split(10, [1, 1, 1]) == [4, 3, 3]
    assert proportional_split(94, [110, 110]) == [47, 47]
    assert proportional_split(3, [1000, 1, 1]) == [1, 1, 1]
    with pytest.raises(ValueError):
        proportional_split(2, [1, 1, 1])


# --- properties -----------------------------------------------------------------------------------------------

MODELS = sorted(catalog.catalog())


@st.composite
def requests(draw: Any) -> Dict[str, Any]:
    profile = draw(st.sampled_from(["gb10", "strix_halo", "generic", "sim"]))
    n = draw(st.integers(min_value=1, max_value=8))
    over: Dict[str, Any] = {}
    if profile == "generic":
        over = {"memory_gb": draw(st.sampled_from([24.0, 48.0, 80.0])),
                "mem_bw_gbs": draw(st.sampled_from([400.0, 936.0, 2000.0]))}
    topology = "single" if n == 1 else ("direct" if n == 2 else draw(st.sampled_from(["ring", "switch"])))
    return dict(nodes=nodes(profile, n, **over), topology=topology, model=draw(st.sampled_from(MODELS)),
                quant=draw(st.sampled_from(sorted(catalog.QUANTS))), fail_on_no_fit=False,
                concurrency=draw(st.integers(min_value=1, max_value=16)),
                prompt_tokens=draw(st.sampled_from([16, 512, 4096])), context_tokens=8192)


@settings(max_examples=200, deadline=None)
@given(requests())
def test_plan_properties(req: Dict[str, Any]) -> None:
    try:
        plan = plan_parallel(**req)
    except PlanError as exc:
        assert "no candidate can run" in str(exc)  # only when every candidate is structurally impossible
        return
    model = catalog.resolve_model(req["model"])
    bpw = catalog.bytes_per_weight(req["quant"])
    by_name = {n["name"]: resolve_node(n) for n in req["nodes"]}
    c_list = plan["candidates"]
    # ranking: structurally valid before rejected, fitting before not, faster before slower
    keys = [(c["rejected"], not c["fits"], -(c["predicted"]["aggregate_tok_s"] or 0)) for c in c_list]
    assert keys == sorted(keys)
    for c in c_list:
        if c["rejected"]:
            assert c["predicted"]["decode_tok_s"] is None and c["reasons"][0].startswith("rejected:")
            continue
        used = [by_name[n] for n in c["nodes_used"]]
        assert c["tensor_parallel"] * c["pipeline_parallel"] == len(used)
        # no prediction above the physical limit: every node reading at full bandwidth at once
        bound = sum(n.mem_bw_gbs for n in used) * 1e9 / (model.params_active_b * 1e9 * bpw)
        assert c["predicted"]["decode_tok_s"] <= bound
        assert c["predicted"]["aggregate_tok_s"] <= bound * req["concurrency"]
        assert c["predicted"]["decode_tok_s"] <= c["predicted"]["physical_limit_tok_s"]
        assert c["predicted"]["ttft_s"] > 0
        # memory: fits exactly when every node's need is within its usable memory
        assert c["fits"] == all(c["memory_per_node_gb"][n.name] <= n.usable_memory_gb for n in used)
        # the weight shares add up to the whole model
        shares = sum(c["memory_per_node_gb"].values()) - sum(backends.get(c["backend"]).overhead_gb(n) for n in used)
        assert shares >= model.params_total_b * bpw * 0.999 - 0.01 * len(used)
        if c["backend"] == "vllm_ray":
            assert model.heads % c["tensor_parallel"] == 0
        if c["backend"] == "distributed_llama":
            assert is_power_of_two(c["tensor_parallel"]) and c["tensor_parallel"] <= model.kv_heads
        if c["backend"] == "llamacpp_rpc":
            split = c["settings"]["layer_split"]
            assert sum(split.values()) == model.layers and min(split.values()) >= 1
        assert c["reasons"]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(["gb10", "strix_halo"]))
def test_longer_prompts_never_speed_things_up(model_id: str, profile: str) -> None:
    def run(prompt: int) -> Dict[str, Any]:
        return plan_parallel(nodes(profile, 2), "direct", model=model_id, quant="q4_0", backend="llamacpp_rpc",
                             pipeline_parallel=2, prompt_tokens=prompt, context_tokens=32768, fail_on_no_fit=False)
    short, long_ = run(128), run(16384)
    assert long_["predicted"]["decode_tok_s"] <= short["predicted"]["decode_tok_s"]
    assert long_["predicted"]["ttft_s"] > short["predicted"]["ttft_s"]


def test_the_api_is_served_by_the_head_on_its_management_address_unless_told() -> None:
    ns = [dict(n, management_address="192.168.1.5%d" % i) for i, n in enumerate(nodes("gb10", 2))]
    plan = plan_parallel(ns, "direct", model="meta-llama/Llama-3.1-70B-Instruct", quant="q8_0",
                         backend="llamacpp_rpc", pipeline_parallel=2)
    assert plan["api"] == {"host": "gb10-0", "address": "192.168.1.50", "port": 8080, "url": "http://192.168.1.50:8080",
                           "served_model_name": "meta-llama/Llama-3.1-70B-Instruct", "key_required": True,
                           "endpoint": "completions"}
    plan = plan_parallel(ns, "direct", model="meta-llama/Llama-3.1-70B-Instruct", quant="q8_0",
                         backend="llamacpp_rpc", pipeline_parallel=2, api_address="10.0.0.9", api_port=9000)
    assert plan["api"] == {"host": "gb10-0", "address": "10.0.0.9", "port": 9000, "url": "http://10.0.0.9:9000",
                           "served_model_name": "meta-llama/Llama-3.1-70B-Instruct", "key_required": True,
                           "endpoint": "completions"}


@pytest.mark.parametrize("case, idle", [
    # llama.cpp's layer split runs one node after another: a third box adds a hop and no speed
    (dict(nodes=nodes("gb10", 3), topology="ring", model="Qwen/Qwen3-235B-A22B", quant="q4_k_m",
          deployable=["llamacpp_rpc"]), "idle: gb10-2 - the best plan with more nodes (llamacpp_rpc TP=1 PP=3 on 3 "
                                        "nodes): not faster"),
    # distributed-llama on three boxes: the rule is the power of two
    (dict(nodes=nodes("strix_halo", 3), topology="switch", model="meta-llama/Llama-3.1-70B-Instruct", quant="q40",
          backend="distributed_llama"), "idle: strix_halo-2 - the best plan with more nodes (distributed_llama TP=3 "
                                        "PP=1 on 3 nodes): rejected: distributed-llama needs a power-of-two node "
                                        "count, not 3"),
    # a pinned split
    (dict(nodes=nodes("sim", 3), topology="ring", model="tiny", quant="fp16", backend="llamacpp_rpc",
          pipeline_parallel=2), "idle: sim-2 - llmlab_pipeline_parallel=2 gives 2 node(s) work"),
])
def test_idle_nodes_are_named_with_the_rule_that_idles_them(case: Dict[str, Any], idle: str) -> None:
    reasons = plan_parallel(**case)["reasons"]
    assert any(r.startswith(idle) for r in reasons), reasons


def test_no_idle_reason_when_every_node_works() -> None:
    plan = plan_parallel(nodes("gb10", 2), "direct", model="openai/gpt-oss-120b", quant="mxfp4")
    assert len(plan["nodes_used"]) == 2 and not [r for r in plan["reasons"] if r.startswith("idle")]


@settings(max_examples=150, deadline=None)
@given(requests(), st.integers(min_value=1, max_value=24))
def test_batches_never_beat_their_limit_and_more_sequences_never_lower_the_aggregate(req: Dict[str, Any],
                                                                                      more: int) -> None:
    """For any cluster, model, quantization and batch: no candidate's per-sequence or aggregate prediction exceeds the
    physical limit of the same batch, and with the shape kept, adding sequences never lowers the aggregate while the
    plan still fits (memory is what ends the climb)."""
    try:
        plan = plan_parallel(**req)
    except PlanError:
        return
    for c in plan["candidates"]:
        if c["rejected"]:
            continue
        p = c["predicted"]
        assert p["decode_tok_s"] <= p["physical_limit_tok_s"]
        assert p["aggregate_tok_s"] <= p["aggregate_limit_tok_s"]
    best = plan["candidates"][0]
    if best["rejected"] or not best["fits"]:
        return
    pins = dict(req, backend=best["backend"], tensor_parallel=best["tensor_parallel"],
                pipeline_parallel=best["pipeline_parallel"], nodes=[n for n in req["nodes"]
                                                                    if n["name"] in best["nodes_used"]])
    pins["topology"] = "single" if len(pins["nodes"]) == 1 else req["topology"]
    if pins["topology"] == "ring" and len(pins["nodes"]) < 3:
        pins["topology"] = "direct"
    larger = plan_parallel(**dict(pins, concurrency=req["concurrency"] + more))
    event("larger batch fits: %s" % larger["fits"])
    if larger["fits"]:
        assert larger["predicted"]["aggregate_tok_s"] >= best["predicted"]["aggregate_tok_s"]
        assert larger["predicted"]["decode_tok_s"] <= best["predicted"]["decode_tok_s"]
