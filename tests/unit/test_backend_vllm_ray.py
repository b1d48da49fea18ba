"""vLLM on Ray: the executor the plan chooses and why, what each node runs, and every container's command line,
environment and run options as the backend module computes them (the role only templates them)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import render
from ansible_collections.llmlab.cluster.plugins.module_utils.backends import vllm_ray
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric

OPTIONS = {"image": "nvcr.io/nvidia/vllm:26.05-py3", "executor": "auto", "ray_cluster": "auto",
           "model_path": "/var/lib/llmlab/models/hf", "gpu_memory_utilization": 0.8, "object_store_gb": 4,
           "shm_size": "10g", "serve_args": [], "env": {}}


def _gb10(n: int, **kw: Any) -> Dict[str, Any]:
    ns = [{"name": "spark%d" % i, "profile": "gb10", "management_address": "192.168.1.5%d" % i} for i in range(n)]
    topology = "direct" if n == 2 else "ring"
    fabric = plan_fabric(ns, topology)
    plan = plan_parallel(ns, topology, model="openai/gpt-oss-120b", quant="mxfp4", backend="vllm_ray",
                         fabric=fabric, **kw)
    return {"fabric": fabric, "plan": plan}


def _lab(**kw: Any) -> Dict[str, Any]:
    ns = [{"name": "node%d" % i, "profile": "sim", "management_address": "172.30.0.1%d" % i} for i in (1, 2, 3)]
    fabric = plan_fabric(ns, "ring")
    plan = plan_parallel(ns, "ring", model="tiny", quant="fp16", backend="vllm_ray", pipeline_parallel=3,
                         fabric=fabric, fail_on_no_fit=False, **kw)
    return {"fabric": fabric, "plan": plan}


def _flag(argv: Any, name: str) -> str:
    """The value of ``--name=value`` or ``--name value`` in argv."""
    for i, a in enumerate(argv):
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
        if a == name:
            return argv[i + 1]
    raise AssertionError("%s not in %s" % (name, argv))


def test_two_gb10s_run_tp2_on_rays_executor_with_every_ray_port_pinned_on_the_fabric() -> None:
    lp = _gb10(2)
    assert lp["plan"]["settings"]["distributed_executor_backend"] == "ray"
    out = render.backend_deploy(lp, {}, OPTIONS)["plan"]
    svc = out["services"]
    assert sorted(svc["spark0"]) == ["ray-head", "vllm"] and sorted(svc["spark1"]) == ["ray-worker"]
    head, worker, serve = svc["spark0"]["ray-head"], svc["spark1"]["ray-worker"], svc["spark0"]["vllm"]
    assert head["argv"][:3] == ["ray", "start", "--block"] and "--head" in head["argv"]
    assert _flag(head["argv"], "--node-ip-address") == "10.213.0.1"
    assert _flag(head["argv"], "--dashboard-host") == "127.0.0.1"
    assert _flag(worker["argv"], "--address") == "10.213.0.1:6379"
    assert _flag(worker["argv"], "--node-ip-address") == "10.213.0.2"
    for argv in (head["argv"], worker["argv"]):
        pinned = {int(_flag(argv, "--" + flag)) for flag in (
            "node-manager-port", "object-manager-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "metrics-export-port")}
        assert pinned <= {int(p) for p in lp["plan"]["peer_ports"] if "-" not in p}
        assert (_flag(argv, "--min-worker-port"), _flag(argv, "--max-worker-port")) == ("20400", "20499")
        assert _flag(argv, "--num-gpus") == "1"
    assert serve["argv"][:3] == ["vllm", "serve", "/var/lib/llmlab/models/hf"]
    assert _flag(serve["argv"], "--distributed-executor-backend") == "ray"
    assert _flag(serve["argv"], "--tensor-parallel-size") == "2"
    assert _flag(serve["argv"], "--host") == "192.168.1.50" and _flag(serve["argv"], "--port") == "8080"
    assert _flag(serve["argv"], "--served-model-name") == lp["plan"]["api"]["served_model_name"]
    assert "--nnodes" not in serve["argv"] and "--headless" not in serve["argv"]
    assert "--enable-prompt-tokens-details" in serve["argv"]   # the benchmark reads cached tokens from usage
    # the environment is set before `ray start` (vllm#6803), on both CX7 halves
    for s in (head, worker, serve):
        halves = s["env"]["NCCL_IB_HCA"].split(",")
        assert [h[:9] for h in halves] == ["rocep1s0f", "roceP2p1s"] and s["env"]["HF_HUB_OFFLINE"] == "1"
        assert s["env"]["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" in s["secret_env"]
        assert s["container"]["gpus"] and s["container"]["devices"] == ["/dev/infiniband"]
        assert s["container"]["ulimits"] == ["memlock:-1:-1"] and s["container"]["network_mode"] == "host"
    assert worker["env"]["VLLM_HOST_IP"] == "10.213.0.2"
    assert serve["env"]["VLLM_DISTRIBUTED_EXECUTOR_CONFIG"] == vllm_ray.SPREAD
    assert serve["secret_env"] == ["VLLM_API_KEY", "RAY_AUTH_TOKEN"]
    assert out["deploy"]["executor"] == "ray" and out["deploy"]["ray_cluster"] is True


def test_secrets_never_reach_the_plan() -> None:
    out = render.backend_deploy(_gb10(2), {}, OPTIONS)["plan"]
    for per in out["services"].values():
        for s in per.values():
            assert not {"VLLM_API_KEY", "RAY_AUTH_TOKEN"} & set(s["env"])
            assert "--api-key" not in s["argv"]


def test_the_mp_executor_runs_a_headless_rank_on_every_other_node_and_no_ray() -> None:
    out = render.backend_deploy(_gb10(2), {}, dict(OPTIONS, executor="mp"))["plan"]
    svc = out["services"]
    assert sorted(svc["spark0"]) == ["vllm"] and sorted(svc["spark1"]) == ["vllm-rank"]
    head, rank = svc["spark0"]["vllm"]["argv"], svc["spark1"]["vllm-rank"]["argv"]
    assert [_flag(head, f) for f in ("--nnodes", "--node-rank", "--master-addr", "--master-port")] == \
        ["2", "0", "10.213.0.1", "29500"]
    assert _flag(rank, "--node-rank") == "1" and "--headless" in rank
    assert "--host" not in rank and "--served-model-name" not in rank and "--enable-prompt-tokens-details" not in rank
    assert svc["spark1"]["vllm-rank"]["secret_env"] == [] and svc["spark1"]["vllm-rank"]["unit"] == \
        "llmlab-vllm-rank.service"
    assert out["deploy"] == {"executor": "mp", "executor_reason": "chosen by llmlab_vllm_executor",
                             "ray_cluster": False, "ray_nodes": [], "unpinned_port_nodes": []}


def test_the_lab_runs_vllms_own_executor_beside_a_real_ray_cluster() -> None:
    lp = _lab()
    assert lp["plan"]["settings"]["distributed_executor_backend"] == "mp"
    assert any(r.startswith("executor mp: vLLM's CPU build has no Ray executor") for r in lp["plan"]["reasons"])
    out = render.backend_deploy(lp, {}, dict(OPTIONS, ray_cluster=True, image="llmlab/vllm-cpu:lab"))["plan"]
    svc = out["services"]
    assert sorted(svc["node1"]) == ["ray-head", "vllm"]
    assert sorted(svc["node2"]) == sorted(svc["node3"]) == ["ray-worker", "vllm-rank"]
    serve = svc["node1"]["vllm"]
    assert _flag(serve["argv"], "--pipeline-parallel-size") == "3" and _flag(serve["argv"], "--nnodes") == "3"
    assert _flag(svc["node3"]["vllm-rank"]["argv"], "--node-rank") == "2"
    assert "--gpu-memory-utilization" not in serve["argv"]
    assert serve["env"]["VLLM_CPU_OMP_THREADS_BIND"] == "nobind" and "VLLM_CPU_KVCACHE_SPACE" not in serve["env"]
    # the plan's KV cache per rank (8 MB for the tiny model at 2k tokens), at least 64 MiB, in whole MiB
    assert _flag(serve["argv"], "--kv-cache-memory-bytes") == str(64 * 2 ** 20)
    assert _flag(svc["node2"]["vllm-rank"]["argv"], "--kv-cache-memory-bytes") == str(64 * 2 ** 20)
    assert vllm_ray.cpu_kv_cache_bytes({"kv_cache_gb_per_rank": 0.5}) == 477 * 2 ** 20
    assert "RAY_ADDRESS" not in serve["env"]
    assert _flag(svc["node2"]["ray-worker"]["argv"], "--num-gpus") == "0"
    assert not serve["container"]["gpus"] and serve["container"]["devices"] == []
    assert serve["container"]["image"] == "llmlab/vllm-cpu:lab" and serve["container"]["name"] == "llmlab-vllm"
    # the plan names each container before the role's options complete it: always a dict under the same key
    assert lp["plan"]["services"]["node1"]["vllm"]["container"] == {"name": "llmlab-vllm"}
    assert serve["container"]["volumes"] == ["/var/lib/llmlab/models/hf:/var/lib/llmlab/models/hf:ro"]
    assert svc["node2"]["ray-worker"]["bind"] == "10.213.0.2" and svc["node2"]["ray-worker"]["port"] == 20380
    # Ray listens on every address whatever it is told: said in the plan, with what closes it, for Ray only
    assert "fabric firewall" in svc["node2"]["ray-worker"]["wildcard_bind"]
    assert "wildcard_bind" not in serve and "wildcard_bind" not in svc["node2"]["vllm-rank"]
    assert out["deploy"]["unpinned_port_nodes"] == ["node1", "node2", "node3"]


def test_every_headless_rank_runs_under_the_roles_watchdog_of_the_heads_store() -> None:
    lp = _lab()
    out = render.backend_deploy(lp, {}, dict(OPTIONS, conf_dir="/etc/llmlab/vllm"))["plan"]["services"]
    for node in ("node2", "node3"):
        rank = out[node]["vllm-rank"]
        assert rank["argv"][:4] == ["python3", vllm_ray.RANK_WATCH, "10.213.0.1:29500", "--"]
        assert rank["argv"][4:6] == ["vllm", "serve"] and "--headless" in rank["argv"]
        assert "/etc/llmlab/vllm/rank-watch.py:%s:ro" % vllm_ray.RANK_WATCH in rank["container"]["volumes"]
    head = out["node1"]["vllm"]
    assert head["argv"][:2] == ["vllm", "serve"] and not any("rank-watch" in v for v in head["container"]["volumes"])


def test_a_compile_cache_dir_is_mounted_into_every_container_and_named_to_vllm() -> None:
    lp = _lab()
    out = render.backend_deploy(lp, {}, dict(OPTIONS, ray_cluster=True, cache_dir="/var/cache/llmlab/vllm"))["plan"]
    for per in out["services"].values():
        for svc in per.values():
            assert "/var/cache/llmlab/vllm:/var/cache/vllm" in svc["container"]["volumes"]
            assert svc["env"]["VLLM_CACHE_ROOT"] == "/var/cache/vllm"
    bare = render.backend_deploy(lp, {}, dict(OPTIONS, cache_dir=""))["plan"]["services"]["node1"]["vllm"]
    assert "VLLM_CACHE_ROOT" not in bare["env"] and len(bare["container"]["volumes"]) == 1


@pytest.mark.parametrize("executor, words", [
    ("ray", "vLLM's CPU build refuses the Ray executor"),
    ("nccl", "llmlab_vllm_executor is 'nccl'"),
])
def test_an_executor_the_nodes_cannot_run_fails_naming_the_variable(executor: str, words: str) -> None:
    with pytest.raises(PlanError) as err:
        render.backend_deploy(_lab(), {}, dict(OPTIONS, executor=executor))
    assert words in str(err.value) and err.value.variable == "llmlab_vllm_executor"


def test_one_node_needs_no_executor_and_no_ray() -> None:
    lp = _gb10(2, tensor_parallel=1, pipeline_parallel=1)
    out = render.backend_deploy(lp, {}, dict(OPTIONS, executor="ray"))["plan"]
    assert lp["plan"]["settings"]["distributed_executor_backend"] == "uni"
    head = lp["plan"]["head"]
    assert list(out["services"]) == [head] and list(out["services"][head]) == ["vllm"]
    argv = out["services"][head]["vllm"]["argv"]
    assert "--distributed-executor-backend" not in argv and "NCCL_SOCKET_IFNAME" not in out["services"][head]["vllm"]["env"]


def test_gloo_binds_to_the_node_address_where_it_is_on_lo_and_to_the_port_on_a_switch() -> None:
    """On cables (direct, ring) the node address is on lo and every peer routes to it, where one port's link address
    is reachable from one neighbour only: no GLOO/TP_SOCKET_IFNAME, the name resolves to the node address (the role
    writes the containers' /etc/hosts). On a switch the node address is on the port: bind there."""
    lp = _lab()
    lab = render.backend_deploy(lp, {}, dict(OPTIONS, ray_cluster=True))["plan"]["services"]
    env = lab["node2"]["vllm-rank"]["env"]
    ports = [i["name"] for i in lp["fabric"]["hosts"]["node2"]["interfaces"]]
    assert env["VLLM_HOST_IP"] == "10.213.0.2" and env["NCCL_SOCKET_IFNAME"].split(",") == ports
    assert "GLOO_SOCKET_IFNAME" not in env and "TP_SOCKET_IFNAME" not in env
    ns = [{"name": "node%d" % i, "profile": "sim", "management_address": "172.30.0.1%d" % i} for i in (1, 2)]
    fabric = plan_fabric(ns, "switch")
    plan = plan_parallel(ns, "switch", model="tiny", quant="fp16", backend="vllm_ray", tensor_parallel=2,
                         fabric=fabric)
    sw = render.backend_deploy({"fabric": fabric, "plan": plan}, {}, OPTIONS)["plan"]["services"]
    port = fabric["hosts"]["node2"]["interfaces"][0]["name"]
    assert sw["node2"]["vllm-rank"]["env"]["GLOO_SOCKET_IFNAME"] == port


def test_the_lab_plan_fits_a_lab_node_and_names_the_ray_nodes() -> None:
    lp = _lab()
    assert lp["plan"]["fits"] and max(lp["plan"]["memory_per_node_gb"].values()) < 3.0
    out = render.backend_deploy(lp, {}, dict(OPTIONS, ray_cluster="True"))["plan"]
    assert out["deploy"]["ray_nodes"] == ["node1", "node2", "node3"] and out["deploy"]["ray_cluster"] is True
    off = render.backend_deploy(lp, {}, dict(OPTIONS, ray_cluster="false"))["plan"]
    assert off["deploy"]["ray_nodes"] == [] and "ray-worker" not in off["services"]["node2"]


@pytest.mark.parametrize("ipc_host, ipc, shm", [(True, "host", None), ("False", "private", "1g")])
def test_containers_share_the_hosts_ipc_or_get_a_private_shm(ipc_host: Any, ipc: str, shm: Any) -> None:
    out = render.backend_deploy(_gb10(2), {}, dict(OPTIONS, ipc_host=ipc_host, shm_size="1g"))["plan"]
    c = out["services"]["spark0"]["vllm"]["container"]
    assert (c["ipc_mode"], c["shm_size"]) == (ipc, shm)
