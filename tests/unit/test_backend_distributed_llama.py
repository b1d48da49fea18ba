"""distributed-llama's room: build grouping, every command line, where each service listens, and the rules that
refuse a node count or a model file before anything is changed."""
from __future__ import annotations

import os
from typing import Any, Dict, List

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import render
from ansible_collections.llmlab.cluster.plugins.module_utils.backends import distributed_llama as dl
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend
from ansible_collections.llmlab.cluster.plugins.module_utils.dllama import read_model_header
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric
from tools import tiny_dllama

OPTIONS = {"version": "0.16.4", "source_id": "1827a8fa", "accelerator": "", "march": "", "cxxflags": [],
           "threads": 0, "net_turbo": False, "prefix": "/opt/llmlab/dllama", "model_path": "/m/x.m",
           "tokenizer_path": "/m/x.t", "proxy_binary": "/usr/sbin/nginx", "proxy_conf": "/etc/p.conf", "api_args": []}


def lab(n: int = 4, topology: str = "switch", **hostvars: Any) -> Dict[str, Any]:
    ns = [{"name": "node%d" % (i + 1), "profile": "sim"} for i in range(n)]
    fabric = plan_fabric(ns, topology)
    plan = plan_parallel(ns, topology, model="llmlab/tiny-llama-test", quant="q4_0", backend="distributed_llama",
                         context_tokens=1024, tensor_parallel=n, fabric=fabric)
    facts = {"arch": "x86_64", "os": {"id": "debian", "version_id": "12"}, "cpus": 2}
    hv = {x["name"]: dict({"llmlab_profile": "sim", "llmlab_node": facts}, **hostvars.get(x["name"], {}))
          for x in ns}
    return {"fabric": fabric, "plan": plan, "hostvars": hv}


def deploy(c: Dict[str, Any], **options: Any) -> Dict[str, Any]:
    return dl.BACKEND.deploy(c["plan"], c["fabric"], c["hostvars"], dict(OPTIONS, **options))


def test_four_nodes_root_behind_the_proxy_workers_on_the_fabric() -> None:
    c = lab()
    plan, fabric = c["plan"], c["fabric"]
    assert (plan["backend"], plan["tensor_parallel"], plan["api"]["endpoint"]) == ("distributed_llama", 4, "chat")
    out = deploy(c)
    addr = {h: fabric["hosts"][h]["node_address"] for h in fabric["hosts"]}
    w = out["services"]["node3"]["dllama-worker"]["argv"]
    assert w == ["/opt/llmlab/dllama/current/bin/dllama", "worker", "--host", addr["node3"], "--port", "9999",
                 "--nthreads", "2", "--net-turbo", "0"]
    api = out["services"]["node1"]["dllama-api"]["argv"]
    i = api.index("--workers")
    assert api[i + 1:] == ["%s:9999" % addr[h] for h in ("node2", "node3", "node4")]   # the plan's order
    assert api[api.index("--host") + 1] == "127.0.0.1" and api[api.index("--max-seq-len") + 1] == "1024"
    assert api[api.index("--buffer-float-type") + 1] == "q80" and out["weight_type"] == "q40"
    assert out["services"]["node1"]["dllama-proxy"]["upstream"] == "127.0.0.1:9990"
    (b,) = out["builds"].values()                     # four identical boxes, one build, made on the root
    assert b["builder"] == "node1" and b["hosts"] == ["node1", "node2", "node3", "node4"]
    assert "-march=x86-64-v3" in b["inputs"]["cxxflags"] and "-O3" in b["inputs"]["cxxflags"]


def test_where_each_service_listens() -> None:
    c = lab()
    s, fabric = c["plan"]["services"], c["fabric"]
    addr = {h: fabric["hosts"][h]["node_address"] for h in fabric["hosts"]}
    assert s["node1"]["dllama-api"]["bind"] == "127.0.0.1"
    assert s["node1"]["dllama-proxy"]["bind"] == c["plan"]["api"]["address"]
    assert s["node2"]["dllama-worker"]["bind"] == addr["node2"]
    # once the root connects a worker stops listening: the root and the other workers may hold its socket
    assert s["node2"]["dllama-worker"]["connected_from"] == [addr["node1"], addr["node3"], addr["node4"]]


@pytest.mark.parametrize("facts, pinned, expected", [
    ({"cpus": 32, "cores": 16}, None, "16"),     # Strix Halo: SMT siblings would spin-wait against each other
    ({"cpus": 20, "cores": 20}, None, "20"),     # GB10: no SMT
    ({"cpus": 8}, None, "8"),                    # facts from before cores were read: the CPUs
    ({"cpus": 32, "cores": 16}, 1, "1"),         # pinned (the lab: its nodes share the host's cores)
])
def test_threads_default_to_the_physical_cores(facts: Dict[str, Any], pinned: Any, expected: str) -> None:
    c = lab(2, "direct")
    c["hostvars"]["node2"]["llmlab_node"] = dict(c["hostvars"]["node2"]["llmlab_node"], **facts)
    if pinned is not None:
        c["hostvars"]["node2"]["llmlab_dllama_threads"] = pinned
    w = deploy(c)["services"]["node2"]["dllama-worker"]["argv"]
    assert w[w.index("--nthreads") + 1] == expected


def test_native_march_builds_on_every_node_and_vulkan_runs_one_thread_on_gpu0() -> None:
    out = deploy(lab(), march="native")
    assert sorted(b["builder"] for b in out["builds"].values()) == ["node1", "node2", "node3", "node4"]
    out = deploy(lab(2, "direct"), accelerator="vulkan")
    (b,) = out["builds"].values()
    assert b["inputs"]["variables"] == {"DLLAMA_VULKAN": "1"} and "-DDLLAMA_VULKAN" in b["inputs"]["cxxflags"]
    assert b["make_args"][0].startswith("CXXFLAGS=-std=c++11 ") and b["make_args"][1:] == ["DLLAMA_VULKAN=1"]
    w = out["services"]["node2"]["dllama-worker"]["argv"]
    assert w[w.index("--nthreads"):w.index("--nthreads") + 4] == ["--nthreads", "1", "--gpu-index", "0"]


def test_a_worker_pinned_to_another_version_is_refused() -> None:
    with pytest.raises(PlanError) as e:
        deploy(lab(node3={"llmlab_dllama_version": "0.16.3"}))
    assert e.value.host == "node3" and e.value.variable == "llmlab_dllama_version" and "raw structs" in str(e.value)


def test_unknown_build_kind_and_architecture_name_the_variable() -> None:
    with pytest.raises(PlanError) as e:
        deploy(lab(), accelerator="cuda")
    assert e.value.variable == "llmlab_dllama_accelerator"
    c = lab()
    c["hostvars"]["node2"]["llmlab_node"] = {"arch": "riscv64", "cpus": 4}
    with pytest.raises(PlanError) as e:
        deploy(c)
    assert e.value.host == "node2" and e.value.variable == "llmlab_dllama_march"


@pytest.mark.parametrize("nodes, words", [
    (1, []), (2, []), (4, []),
    (3, ["power-of-two node count, not 3", "KV heads (4) is not divisible by 3"]),
    (8, ["more nodes (8) than the model's 4 KV heads", "attention heads (12) is not divisible by 8"]),
])
def test_split_rules_on_the_lab_model(nodes: int, words: List[str]) -> None:
    dims = {"heads": 12, "kv_heads": 4, "head_dim": 64, "dim": 768, "hidden_dim": 2048, "vocab": 320,
            "weight_type": "q40"}
    found = dl.split_problems(dims, nodes)
    assert all(any(w in p for p in found) for w in words) and (found == []) == (words == [])


def test_q40_slices_must_hold_whole_blocks() -> None:
    dims = {"heads": 8, "kv_heads": 8, "head_dim": 8, "dim": 64, "hidden_dim": 96, "vocab": 64,
            "weight_type": "q40"}
    assert dl.split_problems(dict(dims, weight_type="f32"), 2) == []
    (p,) = dl.split_problems(dims, 2)
    assert "q40 blocks hold 32 values" in p and "feed-forward slice 48" in p and "KV slice 32" not in p


@pytest.fixture(scope="module")
def tiny_m(tmp_path_factory: Any) -> str:
    d = str(tmp_path_factory.mktemp("dllama"))
    tiny_dllama.main([d])
    return os.path.join(d, tiny_dllama.names("llmlab/tiny-llama-test", "q40")[0])


def test_the_lab_model_file_fits_the_plan(tiny_m: str) -> None:
    h = read_model_header(tiny_m)
    plan = lab()["plan"]
    assert dl.model_problems(h, 4, plan["model"], "q4_0") == []
    assert dl.model_problems(h, 4, dict(plan["model"], layers=16), "q4_0") == [
        "its layers is 12, the plan's model llmlab/tiny-llama-test has 16"]
    assert dl.model_problems(h, 4, plan["model"], "f32") == ["its weights are q40, the plan's quantization f32 is f32"]
    assert "not a whole model" in dl.model_problems(dict(h, file_size=h["file_size"] - 1), 4)[0]
    assert "loads q40 (with q80 buffers) or f32" in dl.model_problems(dict(h, weight_type="f16"), 4)[0]


def test_base_backend_without_a_role_computes_no_command_line() -> None:
    c = lab(2, "direct")
    with pytest.raises(PlanError) as err:
        Backend().deploy(c["plan"], c["fabric"], {}, {})
    assert "has no role" in str(err.value) and err.value.variable == "llmlab_backend"
    assert render  # the filter that calls deploy is tested with the roles' options in tests/integration
