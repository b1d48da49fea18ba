"""The backend registry: each backend module's shapes, rules, memory, prediction, settings, services and command lines;
what "deployable" means to the planner; and llmlab_backend: none."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import backends, render
from ansible_collections.llmlab.cluster.plugins.module_utils.backends import distributed_llama, llamacpp_rpc, vllm_ray
from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import Request
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import resolve_link, resolve_node
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SIM3 = [{"name": n, "profile": "sim"} for n in ("node1", "node2", "node3")]


def nodes(profile: str, n: int) -> List[Dict[str, Any]]:
    return [{"name": "%s-%d" % (profile, i), "profile": profile} for i in range(n)]


def req(model: str, quant: str, link: str = "cx7_200g", context: int = 4096, prompt: int = 128,
        concurrency: int = 1) -> Request:
    return Request(model=resolve_model(model), quant=quant, link=resolve_link(link), context_tokens=context,
                   prompt_tokens=prompt, concurrency=concurrency)


# --- the registry ------------------------------------------------------------------------------------------------

def test_every_backend_has_a_module_and_the_choices_add_auto_and_none() -> None:
    assert set(backends.NAMES) == {"vllm_ray", "llamacpp_rpc", "distributed_llama"}
    assert backends.CHOICES == ("auto",) + backends.NAMES + ("none",)
    for name, be in backends.REGISTRY.items():
        assert be.name == name and be.title and be.quants and be.accelerators and be.units and be.peer_ports
        assert set(be.decode_efficiency) == set(be.accelerators) == set(be.prefill_efficiency)
    with pytest.raises(PlanError) as err:
        backends.get("tgi")
    assert err.value.variable == "llmlab_backend"


def test_unit_names_are_unique_across_backends() -> None:
    units = [u for be in backends.REGISTRY.values() for u in be.units.values()]
    assert len(units) == len(set(units))


@pytest.mark.parametrize("name", sorted(backends.NAMES))
def test_deployable_backends_have_a_role_with_the_four_task_files(name: str) -> None:
    role = os.path.join(ROOT, "roles", name)
    if not os.path.isfile(os.path.join(role, "tasks", "main.yml")):
        pytest.skip("%s has no role tasks yet: the planner marks it not deployable" % name)
    for f in ("main", "validate", "verify", "absent"):
        assert os.path.isfile(os.path.join(role, "tasks", f + ".yml")), "roles/%s/tasks/%s.yml" % (name, f)
    assert os.path.isfile(os.path.join(ROOT, "playbooks", name + ".yml"))


# --- shapes and rules, table-driven --------------------------------------------------------------------------

@pytest.mark.parametrize("be, used, shapes", [
    (vllm_ray.BACKEND, 4, [(4, 1), (2, 2), (1, 4)]),
    (vllm_ray.BACKEND, 3, [(3, 1), (1, 3)]),
    (llamacpp_rpc.BACKEND, 3, [(1, 3)]),
    (distributed_llama.BACKEND, 4, [(4, 1)]),
])
def test_shapes(be: Any, used: int, shapes: List[Any]) -> None:
    assert be.shapes(used) == shapes
    assert be.default_shape(used) == shapes[0]


@pytest.mark.parametrize("be, model, quant, tp, pp, profile, words", [
    (vllm_ray.BACKEND, "Qwen/Qwen3-235B-A22B", "fp8", 3, 1, "gb10", ["TP=3 does not divide the 64 attention heads"]),
    (vllm_ray.BACKEND, "tiny", "fp16", 2, 1, "sim", []),          # vLLM's CPU build: the lab
    # 12 attention heads divide by 3, the 4 KV heads neither divide by 3 nor divide 3 (found in the lab: vLLM started
    # and failed while loading); 8 KV heads with TP=16 are replicated, which vLLM accepts
    (vllm_ray.BACKEND, "tiny", "fp16", 3, 1, "sim", ["TP=3 does not fit the 4 KV heads (one must divide the other)"]),
    (vllm_ray.BACKEND, "tiny", "fp16", 4, 1, "sim", []),
    (vllm_ray.BACKEND, "Qwen/Qwen3-235B-A22B", "q4_k_m", 1, 1, "gb10", ["vllm_ray cannot load q4_k_m weights"]),
    (llamacpp_rpc.BACKEND, "Qwen/Qwen3-235B-A22B", "fp8", 1, 3, "gb10", ["llamacpp_rpc cannot load fp8 weights"]),
    (llamacpp_rpc.BACKEND, "tiny", "fp16", 1, 13, "sim", ["13 nodes are more than the 12 layers to split"]),
    (distributed_llama.BACKEND, "meta-llama/Llama-3.1-70B-Instruct", "q4_0", 3, 1, "strix_halo",
     ["distributed-llama needs a power-of-two node count, not 3"]),
    (distributed_llama.BACKEND, "meta-llama/Llama-3.1-70B-Instruct", "q4_0", 16, 1, "strix_halo",
     ["cannot use more nodes (16) than the model's 8 KV heads"]),
    (distributed_llama.BACKEND, "meta-llama/Llama-3.1-70B-Instruct", "q8_0", 2, 1, "strix_halo",
     ["distributed_llama cannot load q8_0 weights (it loads q4_0, f32)"]),
    (llamacpp_rpc.BACKEND, "tiny", "fp16", 1, 3, "sim", []),
])
def test_problems(be: Any, model: str, quant: str, tp: int, pp: int, profile: str, words: List[str]) -> None:
    ns = [resolve_node(n) for n in nodes(profile, tp * pp)]
    problems = be.problems(tp, pp, ns, req(model, quant))
    assert all(any(w in p for p in problems) for w in words), problems
    assert bool(problems) == bool(words)


def test_a_node_whose_accelerator_a_backend_does_not_run_on_is_named() -> None:
    ns = [resolve_node(n) for n in nodes("gb10", 2)]
    ns[1] = dataclasses.replace(ns[1], accelerator="metal")
    problems = vllm_ray.BACKEND.problems(2, 1, ns, req("Qwen/Qwen3-235B-A22B", "fp8"))
    assert problems == ["vllm_ray needs a cuda or rocm or cpu accelerator; %s (profile gb10) has metal" % ns[1].name]


# --- memory and settings -------------------------------------------------------------------------------------

def test_llamacpp_memory_follows_the_layer_split_and_gives_the_device_order() -> None:
    ns = [resolve_node(n) for n in nodes("gb10", 3)]
    mem, s = llamacpp_rpc.BACKEND.memory(1, 3, ns, req("meta-llama/Llama-3.1-70B-Instruct", "q8_0"))
    assert s["layer_split"] == {"gb10-0": 27, "gb10-1": 27, "gb10-2": 26}
    assert s["device_order"] == ["gb10-1", "gb10-2", "gb10-0"] and s["n_gpu_layers"] == 81
    assert mem["gb10-0"] == mem["gb10-1"] > mem["gb10-2"] > llamacpp_rpc.BACKEND.runtime_overhead_gb * 1e9


def test_vllm_memory_divides_weights_over_every_rank_and_sets_the_executor() -> None:
    ns = [resolve_node(n) for n in nodes("gb10", 2)]
    r = req("openai/gpt-oss-120b", "mxfp4")
    one, s1 = vllm_ray.BACKEND.memory(1, 1, ns[:1], r)
    two, s2 = vllm_ray.BACKEND.memory(2, 1, ns, r)
    overhead = vllm_ray.BACKEND.runtime_overhead_gb * 1e9
    assert two["gb10-0"] - overhead < (one["gb10-0"] - overhead) / 2 * 1.01
    assert (s1["distributed_executor_backend"], s2["distributed_executor_backend"]) == ("uni", "ray")


def test_distributed_llama_keeps_the_embedding_on_the_root_and_buffers_in_q80() -> None:
    ns = [resolve_node(n) for n in nodes("strix_halo", 2)]
    mem, s = distributed_llama.BACKEND.memory(2, 1, ns, req("meta-llama/Llama-3.1-70B-Instruct", "q4_0"))
    m = resolve_model("meta-llama/Llama-3.1-70B-Instruct")
    assert mem["strix_halo-0"] - mem["strix_halo-1"] == pytest.approx(m.vocab * m.hidden * 4.0)
    assert s == {"buffer_float_type": "q80", "weights_float_type": "q40"}


# --- prediction ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("be, model, quant, shape, profile, link", [
    (vllm_ray.BACKEND, "openai/gpt-oss-120b", "mxfp4", (2, 1), "gb10", "cx7_200g"),
    (vllm_ray.BACKEND, "Qwen/Qwen3-235B-A22B", "fp8", (1, 3), "gb10", "cx7_200g"),
    (llamacpp_rpc.BACKEND, "meta-llama/Llama-3.1-70B-Instruct", "q4_k_m", (1, 2), "strix_halo", "eth_5g"),
    (distributed_llama.BACKEND, "meta-llama/Llama-3.1-70B-Instruct", "q4_0", (4, 1), "strix_halo", "eth_5g"),
])
def test_prediction_pays_for_communication_and_stays_below_the_limit(be: Any, model: str, quant: str, shape: Any,
                                                                     profile: str, link: str) -> None:
    tp, pp = shape
    ns = [resolve_node(n) for n in nodes(profile, tp * pp)]
    r = req(model, quant, link=link)
    _, settings = be.memory(tp, pp, ns, r)
    pred, notes = be.predict(tp, pp, ns, r, settings)
    comm, _, _ = be.communication(tp, pp, ns, r, settings)
    assert comm > 0 and notes, "a multi-node shape pays for its links and says so"
    assert 0 < pred["decode_tok_s"] <= pred["physical_limit_tok_s"]
    assert pred["ttft_s"] > 1.0 / pred["decode_tok_s"] * 0.99
    # on a link 100x slower, the same shape is slower
    slow = Request(model=r.model, quant=quant, link={"gbps": r.link["gbps"] / 100, "latency_us": r.link["latency_us"]
                                                     * 100}, context_tokens=4096, prompt_tokens=128, concurrency=1)
    assert be.predict(tp, pp, ns, slow, settings)[0]["decode_tok_s"] < pred["decode_tok_s"]


# --- services and command lines ------------------------------------------------------------------------------

def _lab_plan(**kw: Any) -> Dict[str, Any]:
    ns = [dict(n, management_address="172.30.0.1%d" % i) for i, n in enumerate(SIM3)]
    fabric = plan_fabric(ns, "ring")
    plan = plan_parallel(ns, "ring", model="tiny", quant="fp16", backend="llamacpp_rpc", pipeline_parallel=3,
                         fabric=fabric, **kw)
    return {"fabric": fabric, "plan": plan}


def test_the_plan_says_what_every_node_runs_and_where_it_listens() -> None:
    p = _lab_plan()["plan"]
    assert p["services"] == {
        "node1": {"llama-server": {"unit": "llmlab-llama-server.service", "port": 8080, "bind": "172.30.0.10"}},
        "node2": {"rpc-server": {"unit": "llmlab-rpc-server.service", "port": 50052, "bind": "10.213.0.2"}},
        "node3": {"rpc-server": {"unit": "llmlab-rpc-server.service", "port": 50052, "bind": "10.213.0.3"}},
    }
    assert p["ports"] == {"rpc": "50052", "api": "8080"} and p["peer_ports"] == ["50052"]
    assert p["api"]["served_model_name"] == "llmlab/tiny-llama-test" and p["api"]["key_required"] is True
    assert p["containers"] is False
    assert p["backends"]["llamacpp_rpc"]["units"] == llamacpp_rpc.BACKEND.units
    assert p["backends"]["vllm_ray"]["containers"] is True


OPTIONS = {"version": "0c1e570", "source": "archive", "cmake_flags": [], "accelerator": "", "threads": 0,
           "rpc_binary": "ggml-rpc-server", "prefix": "/opt/llmlab/llamacpp", "conf_dir": "/etc/llmlab/llamacpp",
           "model_path": "/var/lib/llmlab/models/tiny.gguf", "slots": 4, "server_args": ["--temp", "0"],
           "rpc_cache": True, "rpc_cache_dir": "/var/cache/llmlab/rpc"}
FACTS = {"arch": "x86_64", "os": {"id": "debian", "version_id": "12"}, "cpus": 2}


def test_llamacpp_command_lines_from_the_plan_and_the_role_options() -> None:
    lp = _lab_plan()
    hv = {n: {"llmlab_profile": "sim", "llmlab_node": FACTS} for n in ("node1", "node2", "node3")}
    hv["node3"]["llmlab_llamacpp_threads"] = 1      # a host_vars override
    out = render.backend_deploy(lp, hv, OPTIONS)["plan"]
    rpc = out["services"]["node2"]["rpc-server"]
    assert rpc["argv"] == ["/opt/llmlab/llamacpp/current/bin/ggml-rpc-server", "-H", "10.213.0.2", "-p", "50052",
                           "-t", "2", "-c"]
    assert rpc["env"] == {"LLAMA_CACHE": "/var/cache/llmlab/rpc"} and rpc["unit"] == "llmlab-rpc-server.service"
    assert out["services"]["node3"]["rpc-server"]["argv"][-2] == "1"
    server = out["services"]["node1"]["llama-server"]["argv"]
    assert server[0] == "/opt/llmlab/llamacpp/current/bin/llama-server"
    flags = dict(zip(server[1::2], server[2::2]))
    assert flags["--rpc"] == "10.213.0.2:50052,10.213.0.3:50052"       # never the head itself
    assert flags["--host"] == "172.30.0.10" and flags["--alias"] == "llmlab/tiny-llama-test"
    assert flags["--tensor-split"] == "0.5,0.5" and flags["--n-gpu-layers"] == "9"
    assert server[-2:] == ["--temp", "0"]
    assert len(out["deploy"]["builds"]) == 1 and out["deploy"]["build_of"]["node3"] in out["deploy"]["builds"]
    without_cache = render.backend_deploy(lp, hv, dict(OPTIONS, rpc_cache=False))["plan"]["services"]["node2"]
    assert "-c" not in without_cache["rpc-server"]["argv"] and without_cache["rpc-server"]["env"] == {}


def test_llamacpp_alone_has_no_rpc_list_and_a_worker_on_another_build_is_named() -> None:
    lp = _lab_plan()
    lp1 = dict(lp, plan=plan_parallel(SIM3, "ring", model="tiny", quant="fp16", backend="llamacpp_rpc",
                                      pipeline_parallel=1, fabric=lp["fabric"], api_address="172.30.0.10"))
    hv = {n: {"llmlab_profile": "sim", "llmlab_node": FACTS} for n in ("node1", "node2", "node3")}
    argv = render.backend_deploy(lp1, hv, OPTIONS)["plan"]["services"]["node1"]["llama-server"]["argv"]
    assert "--rpc" not in argv and "--tensor-split" not in argv
    hv["node2"]["llmlab_llamacpp_version"] = "b6000"
    with pytest.raises(PlanError) as err:
        render.backend_deploy(lp, hv, OPTIONS)
    assert err.value.host == "node2" and err.value.variable == "llmlab_llamacpp_version"
    del hv["node2"]["llmlab_llamacpp_version"], hv["node2"]["llmlab_node"]
    with pytest.raises(PlanError) as err:
        render.backend_deploy(lp, hv, OPTIONS)
    assert err.value.host == "node2" and err.value.variable == "llmlab_llamacpp_threads"


def test_vllm_environment_lists_both_cx7_halves() -> None:
    ns = [{"name": n, "profile": "gb10"} for n in ("a", "b")]
    env = vllm_ray.comm_env(plan_fabric(ns, "direct"), "a")
    assert env["VLLM_HOST_IP"] == "10.213.0.1"
    assert env["NCCL_IB_HCA"] == "rocep1s0f1,roceP2p1s0f1"
    assert env["NCCL_SOCKET_IFNAME"] == "enp1s0f1np1,enP2p1s0f1np1"
    assert env["RAY_memory_monitor_refresh_ms"] == "0"
    with pytest.raises(PlanError) as err:
        vllm_ray.comm_env(plan_fabric(ns, "direct"), "c")
    assert err.value.host == "c"


def test_distributed_llama_workers_in_the_plan_order() -> None:
    ns = [{"name": "n%d" % i, "profile": "strix_halo"} for i in range(4)]
    fabric = plan_fabric(ns, "switch")
    plan = plan_parallel(ns, "switch", model="meta-llama/Llama-3.1-70B-Instruct", quant="q40",
                         backend="distributed_llama", tensor_parallel=4, fabric=fabric)
    assert distributed_llama.workers_argument(plan["workers"], fabric, 9999) == \
        ["10.213.0.2:9999", "10.213.0.3:9999", "10.213.0.4:9999"]
    assert plan["services"]["n1"]["dllama-worker"]["bind"] == "10.213.0.2"


# --- deployable ----------------------------------------------------------------------------------------------

def test_auto_chooses_among_deployable_backends_only() -> None:
    case = dict(nodes=nodes("gb10", 2), topology="direct", model="openai/gpt-oss-120b", quant="mxfp4")
    assert plan_parallel(**case)["backend"] == "vllm_ray"              # planning ahead: every backend counts
    plan = plan_parallel(deployable=["llamacpp_rpc"], **case)
    assert plan["backend"] == "llamacpp_rpc" and plan["deployable_backends"] == ["llamacpp_rpc"]
    vllm = [c for c in plan["candidates"] if c["backend"] == "vllm_ray"]
    assert vllm and all(not c["deployable"] for c in vllm)
    assert all("not deployable" in c["reasons"][-1] for c in vllm)
    assert plan["candidates"].index(vllm[0]) > max(i for i, c in enumerate(plan["candidates"]) if c["deployable"])
    table = render.plan_table(plan_fabric(case["nodes"], "direct"), plan)
    assert any("fits, no role" in line for line in table)


def test_nothing_deployable_fails_and_says_what_would_have_served() -> None:
    with pytest.raises(PlanError) as err:
        plan_parallel(nodes("gb10", 3), "ring", model="Qwen/Qwen3-235B-A22B", quant="fp8", deployable=["llamacpp_rpc"])
    msg = str(err.value)
    assert "llamacpp_rpc cannot load fp8" in msg and "vllm_ray TP=1 PP=3 would fit, but has no role" in msg
    assert err.value.variable == "llmlab_backend"


def test_pinning_an_undeployable_backend_fails_naming_the_variable_and_the_fix() -> None:
    with pytest.raises(PlanError) as err:
        plan_parallel(nodes("gb10", 2), "direct", model="openai/gpt-oss-120b", quant="mxfp4", backend="vllm_ray",
                      deployable=["llamacpp_rpc"])
    assert err.value.variable == "llmlab_backend" and "not deployable" in str(err.value)
    assert "llamacpp_rpc, auto or none" in err.value.fix


def test_none_serves_nothing_and_lists_what_to_remove() -> None:
    plan = plan_parallel(SIM3, "ring", model="tiny", quant="fp16", backend="none", deployable=["llamacpp_rpc"],
                         pipeline_parallel=3)
    assert plan["backend"] is None and plan["services"] == {} and plan["api"] is None and plan["peer_ports"] == []
    assert plan["deployable_backends"] == ["llamacpp_rpc"] and "none" in plan["reasons"][0]
    lines = render.plan_table(plan_fabric(SIM3, "ring"), plan)
    assert lines[-1].startswith("why: llmlab_backend is none")


# --- the fabric part every backend's firewall uses ----------------------------------------------------------

def test_fabric_publishes_cluster_addresses_and_sysctls() -> None:
    fabric = plan_fabric(SIM3, "ring")
    assert fabric["cluster_addresses"][:3] == ["10.213.0.1", "10.213.0.129", "10.213.0.133"]
    assert len(fabric["cluster_addresses"]) == len(set(fabric["cluster_addresses"])) == 3 + 3 * 4
    assert fabric["hosts"]["node1"]["sysctls"] == {
        "net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2",
        "net.ipv4.conf.all.ignore_routes_with_linkdown": "1",
        "net.ipv4.conf.default.ignore_routes_with_linkdown": "1"}
    switch = plan_fabric(SIM3, "switch")
    assert switch["hosts"]["node1"]["sysctls"] == {} and set(switch["sysctl_keys"]) >= set(
        fabric["hosts"]["node1"]["sysctls"])
