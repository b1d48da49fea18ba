# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vLLM on a Ray cluster: tensor parallel within a pipeline stage, pipeline stages one after another.

Every process runs in a container (NVIDIA's vLLM image on real boxes, the lab's CPU image in the lab). The executor
that spreads vLLM's ranks over the nodes is Ray's on GPUs (``--distributed-executor-backend ray``: a Ray head on the
plan's head, a Ray worker on every other node, ``vllm serve`` on the head) or vLLM's own multi-node mode (``mp``:
``vllm serve --nnodes N --node-rank R`` on every node, ``--headless`` on all but the head), which vLLM's CPU build
needs (it refuses Ray there) and which users may choose. Its role (``roles/vllm_ray``) has not landed yet, so the
planner marks it not deployable; ``deploy`` already computes every container's command line and environment.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend, Shape, fabric_address
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import Request, allreduce_s, hop_s
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

# Ray's ports, every one pinned so that the firewall can name it (Ray picks random ones otherwise); the dashboard
# listens on 127.0.0.1 only and is not a peer port.
RAY_PORTS = {"gcs": 6379, "client": 10001, "node_manager": 20380, "object_manager": 20381, "dashboard_agent": 20382,
             "dashboard_agent_grpc": 20383, "runtime_env_agent": 20384, "metrics": 20385}
RAY_WORKER_PORTS = (20400, 20499)
# What Ray does whatever --node-ip-address says (seen in the lab with Ray 2.60.0): the GCS, the raylet, the object
# manager, the dashboard agent's gRPC and metrics servers listen on every address, and the autoscaler monitor and the
# dashboard head open unpinned ports on every address too. So a node that runs Ray is named in the deploy answer's
# ``unpinned_port_nodes``: the fabric firewall closes every unprivileged TCP port there to new connections from
# anywhere but the node itself and cluster peers on fabric ports (the API port keeps its own rule). The verify stage
# accepts the wildcard for these services only, and checks their ports closed from the management network.
RAY_WILDCARD = ("Ray binds its gRPC servers and some unpinned ports on every address; the fabric firewall admits "
                "every unprivileged port of this node from cluster peers on fabric ports only")
RAY_DASHBOARD_PORT = 8265
CPU_KV_FLOOR_BYTES = 64 * 2 ** 20   # a rank's KV cache on the CPU build at the least (vLLM's blocks, a few requests)
# The role's rank watchdog (roles/vllm_ray/files/rank-watch.py), mounted read-only into every headless rank's
# container: it runs the rank and ends it when the head's torch.distributed store goes away, so that systemd starts
# it again and it joins the head's new group (a headless rank alone would wait on the old head for ever).
RANK_WATCH = "/usr/local/lib/llmlab/rank-watch.py"
RANK_WATCH_PYTHON = "python3"
CONTAINER_CACHE = "/var/cache/vllm"   # VLLM_CACHE_ROOT inside every container (the node's cache_dir mounted there)
TORCH_MASTER_PORT = 29500        # vLLM's mp executor: the torch.distributed store on the head
EXECUTORS = ("ray", "mp")
SECRET_API_KEY = "VLLM_API_KEY"  # vLLM reads its API key from this variable (kept out of argv and of the plan)
SECRET_RAY_TOKEN = "RAY_AUTH_TOKEN"

ALLREDUCE_FIXED_US = 40.0        # NCCL launch + sync per all-reduce (28-40 us measured between two GB10s)
PP_HOP_FIXED_US = 200.0          # pipeline stage hand-over (Ray compiled graph / NCCL send-recv)


class VllmRay(Backend):
    name = "vllm_ray"
    title = "vLLM on Ray"
    quants = ("bf16", "fp16", "fp8", "nvfp4", "mxfp4", "awq", "gptq")
    accelerators = ("cuda", "rocm", "cpu")   # cpu: vLLM's CPU build (the lab), uncalibrated
    containers = True
    peer_ports = dict({k: str(v) for k, v in RAY_PORTS.items()},
                      workers="%d-%d" % RAY_WORKER_PORTS, torch_store=str(TORCH_MASTER_PORT))
    units = {"ray-head": "llmlab-ray-head.service", "ray-worker": "llmlab-ray-worker.service",
             "vllm": "llmlab-vllm.service", "vllm-rank": "llmlab-vllm-rank.service"}
    shape_rule = "vLLM takes any TP x PP"
    decode_efficiency = {"cuda": 0.80, "rocm": 0.60, "cpu": 0.50}
    # per-token work of a batched step (attention, sampling, MoE dispatch) as a share of the GPU's compute: fitted
    # to the batched rows of the calibration table (gpt-oss-120b at 4-32, Qwen3-235B at 4 concurrent sequences)
    decode_compute_efficiency = {"cuda": 0.03, "rocm": 0.03, "cpu": 0.30}
    prefill_efficiency = {"cuda": 0.50, "rocm": 0.30, "cpu": 0.30}
    kv_bytes = 2.0
    runtime_overhead_gb = 3.0         # CUDA context, graphs, NCCL buffers
    # vLLM's CPU build (the lab): the API server, the engine core and a worker per rank, each a Python process with
    # torch loaded; measured in the lab (README, "vLLM in the lab")
    overhead_by_accelerator = {"cpu": 2.0}
    step_overhead_us = 300.0
    act_bytes = 2.0

    def overhead_gb(self, node: Node) -> float:
        return self.overhead_by_accelerator.get(node.accelerator, self.runtime_overhead_gb)

    def shapes(self, used: int) -> List[Shape]:
        return [(t, used // t) for t in range(used, 0, -1) if used % t == 0]

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        m = req.model
        out = []
        if m.heads % tp:
            out.append("TP=%d does not divide the %d attention heads" % (tp, m.heads))
        elif not m.kv_dim_per_layer and (m.kv_heads % tp if m.kv_heads >= tp else tp % m.kv_heads):
            # vLLM splits the KV heads over the TP ranks, or replicates them when there are fewer: one size must
            # divide the other (its attention layers assert it while loading, after every rank has started)
            out.append("TP=%d does not fit the %d KV heads (one must divide the other)" % (tp, m.kv_heads))
        if pp > 1 and not m.pp_supported:
            out.append("vLLM has no pipeline parallelism for %s (%s)" % (m.id, m.architecture))
        if pp > m.layers:
            out.append("PP=%d is more than the %d layers" % (pp, m.layers))
        return out

    def memory(self, tp: int, pp: int, nodes: Sequence[Node],
               req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
        m = req.model
        weights, kv_total, overhead = self.totals(req)
        # MLA keeps one latent per layer on every rank; otherwise a rank keeps its KV heads (at least one of them)
        kv_frac = 1.0 if m.kv_dim_per_layer else max(1.0 / tp, 1.0 / m.kv_heads)
        del overhead   # per accelerator instead (the CPU build carries no CUDA context)
        mem = {n.name: weights / (tp * pp) + kv_total / pp * kv_frac + self.overhead_gb(n) * 1e9 for n in nodes}
        executor, why = default_executor(tp * pp, [n.accelerator for n in nodes])
        return mem, {"distributed_executor_backend": executor, "executor_reason": why,
                     "kv_cache_fraction_per_rank": round(kv_frac, 4),
                     "kv_cache_gb_per_rank": round(kv_total / pp * kv_frac / 1e9, 3),
                     "accelerators": {n.name: n.accelerator for n in nodes}}

    def communication(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                      settings: Mapping[str, Any]) -> Tuple[float, float, List[str]]:
        m, c, link = req.model, req.concurrency, req.link
        size = c * m.hidden * self.act_bytes
        comm = allreduce_s(tp, m.layers, size, link, ALLREDUCE_FIXED_US)
        hops = (pp - 1) * hop_s(size, link, 1, PP_HOP_FIXED_US)
        pre = req.prompt_tokens * size
        pre_comm = allreduce_s(tp, m.layers, pre, link, ALLREDUCE_FIXED_US) \
            + (pp - 1) * hop_s(pre, link, 1, PP_HOP_FIXED_US)
        notes = []
        if tp > 1:
            notes.append("TP=%d: each node reads 1/%d of every layer; %d all-reduces per token cost %.2f ms"
                         % (tp, tp, 2 * m.layers, comm * 1e3))
        if pp > 1:
            notes.append("PP=%d: %d stage hand-overs per token cost %.2f ms" % (pp, pp - 1, hops * 1e3))
        if tp * pp > 1:
            notes.append("executor %s: %s" % (settings["distributed_executor_backend"], settings["executor_reason"]))
        return comm + hops, pre_comm, notes

    def services(self, plan: Mapping[str, Any],
                 fabric: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """With Ray: a Ray head beside vLLM on the head, a Ray worker on every other node. With vLLM's own
        multi-node mode (mp): a headless vLLM rank on every other node; the Ray cluster only when asked
        (``ray_cluster`` in the settings, e.g. to prove it in the lab)."""
        s = plan.get("settings") or {}
        executor = s.get("distributed_executor_backend", "ray")
        ray = executor == "ray" or bool(s.get("ray_cluster"))
        head, api = plan["head"], plan["api"]
        out: Dict[str, Dict[str, Dict[str, Any]]] = {head: {}}
        if ray and plan["workers"]:
            out[head]["ray-head"] = self._service("ray-head", RAY_PORTS["gcs"], fabric_address(fabric, head))
        out[head]["vllm"] = self._service("vllm", api["port"], api["address"])
        for w in plan["workers"]:
            out[w] = {}
            if ray:
                out[w]["ray-worker"] = self._service("ray-worker", RAY_PORTS["node_manager"], fabric_address(fabric, w))
            if executor == "mp":
                out[w]["vllm-rank"] = self._service("vllm-rank", None, fabric_address(fabric, w))
        return out

    def _service(self, name: str, port: Optional[int], bind: Optional[str]) -> Dict[str, Any]:
        out = {"unit": self.units[name], "port": port, "bind": bind, "container": {"name": "llmlab-" + name}}
        if name.startswith("ray-"):
            out["wildcard_bind"] = RAY_WILDCARD
        return out

    def deploy(self, plan: Mapping[str, Any], fabric: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
               options: Mapping[str, Any]) -> Dict[str, Any]:
        """Every container's command and environment. ``options``: the role's ``image``, ``executor`` (auto, ray,
        mp), ``ray_cluster`` (auto, true, false), ``model_path`` (the model directory, the same path on every node),
        ``cache_dir`` (the node's directory for vLLM's compile cache, or empty), ``gpu_memory_utilization``,
        ``object_store_gb`` (Ray's object store per node), ``ipc_host`` (the host's
        IPC namespace) or ``shm_size`` (a private /dev/shm), ``serve_args``
        (more ``vllm serve`` arguments) and ``env`` (more environment for every container). Secrets (the API key,
        Ray's token) are not here: ``secret_env`` names the variables the role fills from Vault."""
        settings = dict(plan["settings"])
        executor = choose_executor(settings, options.get("executor") or "auto")
        ray_cluster = options.get("ray_cluster", "auto")
        settings.update(distributed_executor_backend=executor,
                        ray_cluster=(executor == "ray") if ray_cluster in ("auto", None, "") else _truthy(ray_cluster))
        laid_out = dict(plan, settings=settings)
        services = self.services(laid_out, fabric)
        head, workers = plan["head"], list(plan["workers"])
        ranks = [head] + workers
        head_ip = fabric_address(fabric, head) if workers else None
        out: Dict[str, Dict[str, Dict[str, Any]]] = {}
        for host, per in services.items():
            acc = settings["accelerators"].get(host, "cuda")
            base_env = dict(comm_env(fabric, host) if workers else {}, HF_HUB_OFFLINE="1")
            if options.get("cache_dir"):
                base_env["VLLM_CACHE_ROOT"] = CONTAINER_CACHE
            base_env.update(accelerator_env(acc, settings))
            base_env.update({str(k): str(v) for k, v in (options.get("env") or {}).items()})
            out[host] = {}
            for name, svc in per.items():
                if name.startswith("ray-"):
                    argv = ray_start_argv(name == "ray-head", svc["bind"], head_ip, acc, options)
                    env = dict(base_env, RAY_AUTH_MODE="token")
                    secrets = [SECRET_RAY_TOKEN]
                else:
                    argv = serve_argv(plan, executor, ranks.index(host), len(ranks), head_ip, options)
                    env = dict(base_env)
                    secrets = [SECRET_API_KEY] if name == "vllm" else []
                    if executor == "ray":
                        env.update(RAY_AUTH_MODE="token", RAY_ADDRESS="%s:%d" % (head_ip, RAY_PORTS["gcs"]),
                                   VLLM_DISTRIBUTED_EXECUTOR_CONFIG=SPREAD)
                        secrets.append(SECRET_RAY_TOKEN)
                container = container_options(svc["container"]["name"], acc, fabric, host, options)
                if name == "vllm-rank" and options.get("conf_dir"):
                    # a headless rank does not notice its group broke: the role's watchdog runs it and ends it then
                    argv = [RANK_WATCH_PYTHON, RANK_WATCH, "%s:%d" % (head_ip, TORCH_MASTER_PORT), "--"] + argv
                    container["volumes"].append("%s/rank-watch.py:%s:ro" % (options["conf_dir"], RANK_WATCH))
                out[host][name] = dict(svc, argv=argv, env=env, secret_env=secrets, container=container)
        ray_nodes = [h for h in ranks if {"ray-head", "ray-worker"} & set(services.get(h, {}))]
        return {"services": out, "executor": executor, "executor_reason": executor_reason(settings, options),
                "ray_cluster": settings["ray_cluster"], "ray_nodes": ray_nodes, "unpinned_port_nodes": ray_nodes}


def _truthy(value: Any) -> bool:
    """An inventory's boolean, also when a template made it a string ("True", "false", "yes")."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


SPREAD = '{"placement_group_options":{"strategy":"SPREAD"}}'   # one GPU per node (eugr/spark-vllm-docker#227)


def default_executor(ranks: int, accelerators: Sequence[str]) -> Tuple[str, str]:
    """The executor a plan gets when nobody chooses one, and why."""
    if ranks == 1:
        return "uni", "one rank, nothing to distribute"
    if "cpu" in accelerators:
        return "mp", "vLLM's CPU build has no Ray executor (current platform cpu does not support ray)"
    return "ray", "the Ray executor spreads one rank per GPU node (--distributed-executor-backend ray)"


def choose_executor(settings: Mapping[str, Any], asked: str) -> str:
    """The executor that runs: the plan's, or the one the inventory asks for (``llmlab_vllm_executor``)."""
    planned = settings["distributed_executor_backend"]
    if asked in ("auto", "", None) or planned == "uni":
        return planned
    if asked not in EXECUTORS:
        raise PlanError("llmlab_vllm_executor is %r" % asked, variable="llmlab_vllm_executor",
                        fix="use auto, ray or mp")
    if asked == "ray" and "cpu" in settings["accelerators"].values():
        raise PlanError("vLLM's CPU build refuses the Ray executor (current platform cpu does not support ray); "
                        "these nodes have no GPU", variable="llmlab_vllm_executor",
                        fix="use llmlab_vllm_executor: mp (or auto) on CPU nodes")
    return asked


def executor_reason(settings: Mapping[str, Any], options: Mapping[str, Any]) -> str:
    if settings["distributed_executor_backend"] != "uni" and options.get("executor") in EXECUTORS:
        return "chosen by llmlab_vllm_executor"
    return settings["executor_reason"]


def accelerator_env(accelerator: str, settings: Mapping[str, Any]) -> Dict[str, str]:
    """What vLLM's CPU build needs besides its KV cache size (cpu_kv_cache_bytes): its OpenMP threads left unbound
    (a lab node shares its cores with the other nodes)."""
    if accelerator != "cpu":
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": "nobind"}


def cpu_kv_cache_bytes(settings: Mapping[str, Any]) -> int:
    """The KV cache of a rank on the CPU build, in bytes: the plan's, at least CPU_KV_FLOOR_BYTES, whole MiB.
    (``--kv-cache-memory-bytes``; the older VLLM_CPU_KVCACHE_SPACE counts whole GiB, 1 GiB at the least, which is a
    hundred times what the lab's model needs and most of a lab node's memory.)"""
    planned = float(settings.get("kv_cache_gb_per_rank") or 0) * 1e9
    mib = 2 ** 20
    return int(-(-max(planned, CPU_KV_FLOOR_BYTES) // mib)) * mib


def ray_start_argv(head: bool, address: str, head_ip: Optional[str], accelerator: str,
                   options: Mapping[str, Any]) -> List[str]:
    """``ray start`` for the head or a worker: every port pinned, bound to the node's fabric address."""
    argv = ["ray", "start", "--block", "--disable-usage-stats", "--node-ip-address=%s" % address]
    if head:
        argv += ["--head", "--port=%d" % RAY_PORTS["gcs"], "--ray-client-server-port=%d" % RAY_PORTS["client"],
                 "--dashboard-host=127.0.0.1", "--dashboard-port=%d" % RAY_DASHBOARD_PORT]
    else:
        argv += ["--address=%s:%d" % (head_ip, RAY_PORTS["gcs"])]
    argv += ["--node-manager-port=%d" % RAY_PORTS["node_manager"],
             "--object-manager-port=%d" % RAY_PORTS["object_manager"],
             "--dashboard-agent-listen-port=%d" % RAY_PORTS["dashboard_agent"],
             "--dashboard-agent-grpc-port=%d" % RAY_PORTS["dashboard_agent_grpc"],
             "--runtime-env-agent-port=%d" % RAY_PORTS["runtime_env_agent"],
             "--metrics-export-port=%d" % RAY_PORTS["metrics"],
             "--min-worker-port=%d" % RAY_WORKER_PORTS[0], "--max-worker-port=%d" % RAY_WORKER_PORTS[1],
             "--num-gpus=%d" % (0 if accelerator == "cpu" else 1),
             "--object-store-memory=%d" % int(float(options.get("object_store_gb") or 4) * 1e9)]
    return argv


def serve_argv(plan: Mapping[str, Any], executor: str, rank: int, ranks: int, head_ip: Optional[str],
               options: Mapping[str, Any]) -> List[str]:
    """``vllm serve`` on the head (rank 0) or, with vLLM's own multi-node mode, a headless rank on another node."""
    argv = ["vllm", "serve", options["model_path"],
            "--tensor-parallel-size", str(plan["tensor_parallel"]),
            "--pipeline-parallel-size", str(plan["pipeline_parallel"]),
            "--max-model-len", str(plan["context_tokens"])]
    if rank == 0:
        api = plan["api"]
        argv += ["--served-model-name", api["served_model_name"], "--host", api["address"], "--port", str(api["port"]),
                 # usage.prompt_tokens_details.cached_tokens: what each request's prefill took from the prefix cache
                 "--enable-prompt-tokens-details"]
    if executor in EXECUTORS:
        argv += ["--distributed-executor-backend", executor]
    if executor == "mp" and ranks > 1:
        argv += ["--nnodes", str(ranks), "--node-rank", str(rank), "--master-addr", str(head_ip),
                 "--master-port", str(TORCH_MASTER_PORT)]
        if rank:
            argv.append("--headless")
    if "cpu" not in plan["settings"]["accelerators"].values():
        argv += ["--gpu-memory-utilization", str(options.get("gpu_memory_utilization") or 0.8)]
    else:
        argv += ["--kv-cache-memory-bytes", str(cpu_kv_cache_bytes(plan["settings"]))]
    return argv + [str(a) for a in options.get("serve_args") or []]


def container_options(name: str, accelerator: str, fabric: Optional[Mapping[str, Any]], host: str,
                      options: Mapping[str, Any]) -> Dict[str, Any]:
    """How the container runs: host network and IPC, the model directory read-only at the same path, the GPUs,
    and the RDMA devices with unlimited locked memory when the node has RoCE ports."""
    rdma = ((fabric or {}).get("hosts", {}).get(host) or {}).get("rdma_devices") or []
    ipc_host = _truthy(options.get("ipc_host", True))
    model_dir = options["model_path"]
    volumes = ["%s:%s:ro" % (model_dir, model_dir)]
    if options.get("cache_dir"):
        # vLLM's compile cache (torch.compile's graphs and Inductor's C++ builds): kept on the node, so that a
        # restarted container loads its compiled model instead of compiling it again
        volumes.append("%s:%s" % (options["cache_dir"], CONTAINER_CACHE))
    return {
        "name": name, "image": options["image"], "network_mode": "host",
        # the host's IPC namespace (and its /dev/shm), or a private one with a /dev/shm of shm_size
        "ipc_mode": "host" if ipc_host else "private",
        "shm_size": None if ipc_host else (options.get("shm_size") or "10g"),
        "gpus": accelerator != "cpu",
        "devices": ["/dev/infiniband"] if rdma else [],
        "ulimits": ["memlock:-1:-1"] if rdma else [],
        "volumes": volumes,
    }


def comm_env(fabric: Mapping[str, Any], host: str) -> Dict[str, str]:
    """The NCCL / Gloo / Ray environment a node needs before ``ray start`` (vllm#6803)."""
    h = fabric["hosts"].get(host)
    if h is None:
        raise PlanError("host %s is not in the fabric plan" % host, host=host, variable="llmlab_nodes",
                        fix="add the host to the group llmlab_nodes")
    ifaces = [i["name"] for i in h["interfaces"]]
    env = {
        "VLLM_HOST_IP": h["node_address"],
        "RAY_memory_monitor_refresh_ms": "0",
    }
    if ifaces:
        env["NCCL_SOCKET_IFNAME"] = ",".join(ifaces)
        if not h.get("loopback"):
            # the node's address is on that port (a switch): Gloo and TensorPipe bind there. A node address on lo
            # (direct cables, rings) is reachable from every peer where one port's link address is not: they
            # bind to what the node's name resolves to instead, which the role makes the node address (the
            # containers' /etc/hosts).
            env["GLOO_SOCKET_IFNAME"] = ifaces[0]
            env["TP_SOCKET_IFNAME"] = ifaces[0]
    if h.get("rdma_devices"):
        env["NCCL_IB_HCA"] = ",".join(h["rdma_devices"])
        env["UCX_NET_DEVICES"] = ",".join("%s:1" % d for d in h["rdma_devices"])
    return env


BACKEND = VllmRay()
