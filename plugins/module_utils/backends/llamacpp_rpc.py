# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""llama.cpp RPC: the head runs llama-server with the model, every worker lends its memory and compute through
rpc-server; the layers are split in proportion to each node's usable memory and run one node after another.

Builds: llama.cpp RPC needs the *same build* on the head and every worker ("RPC server version mismatch" otherwise),
and a build costs minutes per node. So nodes are grouped by everything that changes the binaries (source, version,
CMake flags, CPU architecture, OS); each group is built once, on its first node, and copied to the others; the
group's build id is a hash of those inputs and is the stamp that decides a rebuild (never ``creates:``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import (
    Backend, Components, Shape, build_nodes, fabric_address, group_builds, node_threads)
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import Request, hop_s, proportional_split
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

RPC_ROUND_TRIPS = 3              # set input, compute graph, get output, per remote device
RPC_FIXED_US = 150.0
RPC_TENSOR_BYTES = 296           # sizeof(rpc_tensor) in ggml-rpc.cpp: what every graph node costs on the wire
GRAPH_NODES_PER_LAYER = 30       # nodes of a transformer block's graph (norms, projections, rope, attention, FFN)

# What every build needs: RPC, static binaries that copy to identical nodes, no tests/examples/web UI, no OpenSSL
# (the API sits behind the fabric firewall; TLS belongs to a proxy), no native CPU tuning (the build is copied).
COMMON_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_RPC=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
)

# The GPU backend per accelerator (field notes: GB10 is sm_121, Strix Halo gfx1151 with HIP, or Vulkan).
ACCEL_FLAGS: Dict[str, Sequence[str]] = {
    "cuda": ("-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=121a-real"),
    "rocm": ("-DGGML_HIP=ON", "-DGPU_TARGETS=gfx1151"),
    "vulkan": ("-DGGML_VULKAN=ON",),
    "cpu": (),
}

SERVER_BINARY = "llama-server"
OPTION_PREFIX = "llmlab_llamacpp_"


class LlamacppRpc(Backend):
    name = "llamacpp_rpc"
    title = "llama.cpp RPC"
    quants = ("f32", "bf16", "fp16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "q3_k_m", "q2_k", "mxfp4")
    accelerators = ("cuda", "rocm", "cpu")
    containers = False
    peer_ports = {"rpc": "50052"}
    units = {"rpc-server": "llmlab-rpc-server.service", "llama-server": "llmlab-llama-server.service"}
    firewall_tables = ("llmlab_api",)   # its API table before the fabric firewall took the API over: removed by absent
    shape_rule = "llama.cpp RPC splits layers (TP=1, PP=nodes)"
    decode_efficiency = {"cuda": 0.87, "rocm": 0.84, "cpu": 0.60}
    prefill_efficiency = {"cuda": 0.35, "rocm": 0.20, "cpu": 0.50}
    kv_bytes = 2.0
    runtime_overhead_gb = 0.5
    step_overhead_us = 200.0
    act_bytes = 4.0

    def shapes(self, used: int) -> List[Shape]:
        return [(1, used)]

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        if pp > req.model.layers:
            return ["%d nodes are more than the %d layers to split" % (pp, req.model.layers)]
        return []

    def memory(self, tp: int, pp: int, nodes: Sequence[Node],
               req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
        m = req.model
        weights, kv_total, overhead = self.totals(req)
        layers = proportional_split(m.layers, [n.usable_memory_gb for n in nodes])
        mem = {n.name: (weights + kv_total) * l / m.layers + overhead for n, l in zip(nodes, layers)}
        settings: Dict[str, Any] = {"layer_split": {n.name: l for n, l in zip(nodes, layers)}}
        settings.update(device_split(nodes, layers, m.layers))
        return mem, settings

    def compute(self, tp: int, nodes: Sequence[Node], req: Request, step: Mapping[str, float],
                settings: Mapping[str, Any]) -> Components:
        """The nodes of a layer split work one after another, each on its share of the layers."""
        m = req.model
        split: Mapping[str, int] = settings["layer_split"]
        share = {n.name: split[n.name] / float(m.layers) for n in nodes}
        times = [self.node_step(n, share[n.name], step, req) for n in nodes]
        pfe = {n.name: self.prefill_efficiency[n.accelerator] for n in nodes}
        tfl = {n.name: n.compute_tflops * 1e12 for n in nodes}
        flops = self._prefill_flops(req)
        floor = self._prefill_floor_bytes(req, step)
        return {
            "decode": sum(t for t, _ in times),
            "limit": sum(lim for _, lim in times),
            "prefill": sum(flops * share[n.name] / (tfl[n.name] * pfe[n.name]) for n in nodes),
            "prefill_floor": sum(floor * share[n.name] / self.bandwidth(n) for n in nodes),
        }

    def communication(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                      settings: Mapping[str, Any]) -> Tuple[float, float, List[str]]:
        """Per remote device and token: its round trips (the input in, the graph computed, the output back), the
        serialized graph of its layers (one rpc_tensor per node of the graph) and the activations, over the link."""
        m, c = req.model, req.concurrency
        split: Mapping[str, int] = settings["layer_split"]
        remote = nodes[1:]
        act = 2 * c * m.hidden * self.act_bytes
        comm = pre_comm = 0.0
        graph_total = 0.0
        for n in remote:
            graph = split[n.name] * GRAPH_NODES_PER_LAYER * RPC_TENSOR_BYTES
            graph_total += graph
            comm += hop_s(graph + act, req.link, RPC_ROUND_TRIPS, RPC_FIXED_US)
            pre_comm += hop_s(graph + req.prompt_tokens * act, req.link, RPC_ROUND_TRIPS, RPC_FIXED_US)
        notes = []
        if remote:
            notes.append("layers split %s: the nodes work one after another; %d RPC device(s) cost %.2f ms per "
                         "token (%d round trips each, %.0f kB of graph and activations over %.1f Gb/s)"
                         % (", ".join("%s %d" % kv for kv in split.items()), len(remote), comm * 1e3,
                            RPC_ROUND_TRIPS, (graph_total + len(remote) * act) / 1e3, req.link["gbps"]))
        return comm, pre_comm, notes

    def services(self, plan: Mapping[str, Any],
                 fabric: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        return self.head_and_workers(plan, fabric, "llama-server", "rpc-server", int(self.peer_ports["rpc"]))

    def deploy(self, plan: Mapping[str, Any], fabric: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
               options: Mapping[str, Any]) -> Dict[str, Any]:
        """Builds, then every service's command line. ``options``: the role's ``version``, ``source``,
        ``cmake_flags``, ``accelerator``, ``threads`` (0 = the node's CPUs), ``rpc_binary``, ``prefix``,
        ``conf_dir``, ``model_path``, ``slots``, ``server_args``, ``rpc_cache``, ``rpc_cache_dir``; the inventory may
        set the per-host ones as ``llmlab_llamacpp_<option>``."""
        builds = cluster_builds(plan, hostvars, options)
        head, workers = plan["head"], list(plan["workers"])
        services = plan["services"]
        rpc_port = int(self.peer_ports["rpc"])
        bindir = "%s/current/bin" % options["prefix"]
        out: Dict[str, Dict[str, Dict[str, Any]]] = {}
        for w in workers:
            argv = ["%s/%s" % (bindir, options["rpc_binary"]), "-H", services[w]["rpc-server"]["bind"],
                    "-p", str(rpc_port), "-t", str(_threads(hostvars, w, options))]
            env = {}
            if options.get("rpc_cache"):
                argv.append("-c")
                env["LLAMA_CACHE"] = options["rpc_cache_dir"]
            out[w] = {"rpc-server": {"argv": argv, "env": env}}
        s = plan["settings"]
        api = plan["api"]
        argv = ["%s/%s" % (bindir, SERVER_BINARY),
                "--model", options["model_path"], "--alias", api["served_model_name"],
                "--host", api["address"], "--port", str(api["port"]),
                "--api-key-file", "%s/api-keys" % options["conf_dir"],
                "--metrics", "--no-webui", "--fit", "off",
                "--ctx-size", str(plan["context_tokens"]),
                "--parallel", str(options["slots"]),
                "--threads", str(_threads(hostvars, head, options)),
                "--n-gpu-layers", str(s["n_gpu_layers"])]
        if workers:
            argv += ["--rpc", rpc_servers(workers, fabric, rpc_port),
                     "--tensor-split", ",".join(str(x) for x in s["tensor_split"])]
        argv += [str(a) for a in options.get("server_args") or []]
        out[head] = {"llama-server": {"argv": argv, "env": {}}}
        return {"services": out, "builds": builds["builds"], "build_of": builds["hosts"]}


def device_split(nodes: Sequence[Node], layers: Sequence[int], n_layers: int) -> Dict[str, Any]:
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


def rpc_servers(workers: Sequence[str], fabric: Mapping[str, Any], port: int) -> str:
    """llama.cpp ``--rpc`` value: every worker's fabric address and port, never the head itself."""
    return ",".join("%s:%d" % (fabric_address(fabric, w), port) for w in workers)


def _threads(hostvars: Mapping[str, Mapping[str, Any]], host: str, options: Mapping[str, Any]) -> int:
    return node_threads(hostvars, host, OPTION_PREFIX, options)


# --- builds ----------------------------------------------------------------------------------------------------

def cmake_flags(accelerator: str, extra: Optional[Sequence[str]] = None, host: Optional[str] = None) -> List[str]:
    """CMake flags for one node: the common ones, its accelerator's, then the user's extra ones."""
    if accelerator not in ACCEL_FLAGS:
        raise PlanError("llama.cpp has no build for accelerator %r (known: %s)" % (accelerator, ", ".join(ACCEL_FLAGS)),
                        host=host, variable="llmlab_llamacpp_accelerator",
                        fix="set llmlab_llamacpp_accelerator to one of %s" % ", ".join(ACCEL_FLAGS))
    flags = list(COMMON_FLAGS) + list(ACCEL_FLAGS[accelerator])
    for f in extra or []:
        if not isinstance(f, str) or not f.startswith("-D"):
            raise PlanError("extra CMake flag %r is not a -D<NAME>=<VALUE> definition" % (f,), host=host,
                            variable="llmlab_llamacpp_cmake_flags", fix="give a list of strings like -DGGML_AVX512=ON")
        flags.append(f)
    return flags


def plan_builds(nodes: Sequence[Mapping[str, Any]], source: Mapping[str, Any]) -> Dict[str, Any]:
    """Group nodes into builds.

    ``nodes``: in inventory order, each ``{name, arch, os, accelerator, cmake_flags (extra), version, source_id}``;
    ``version`` and ``source_id`` (the archive's sha256 or the git tag) are per host so that a host pinned to another
    build is caught here. ``source``: what the head uses, ``{version, source_id}``.

    Returns ``{builds: {id: {inputs, flags, builder, hosts}}, hosts: {name: id}}``. Raises PlanError when a node would
    run another llama.cpp version than the head: RPC refuses mismatched builds.
    """
    grouped = []
    for n in nodes:
        flags = cmake_flags(n["accelerator"], n.get("cmake_flags"), host=n["name"])
        grouped.append(dict(n, inputs={"version": source["version"], "source_id": source["source_id"],
                                       "flags": flags, "arch": n.get("arch"), "os": n.get("os")}))
    out = group_builds(grouped, {"version": "llmlab_llamacpp_version", "source_id": "llmlab_llamacpp_source"},
                       "llama.cpp", "RPC needs the same build on every node", reference=source)
    for b in out["builds"].values():
        b["flags"] = b["inputs"]["flags"]
    return out


def cluster_builds(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
                   defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """:func:`plan_builds` for the nodes a plan uses, from the inventory.

    Per host, ``llmlab_llamacpp_version`` / ``_source`` / ``_cmake_flags`` / ``_accelerator`` when the inventory sets
    them, else ``defaults`` (the role's); the accelerator otherwise comes from the host's profile, the architecture
    and OS from its ``llmlab_node`` facts (preflight).
    """
    nodes = [{
        "name": n["name"], "arch": n["arch"], "os": n["os"],
        "accelerator": n["accelerator"] or n["profile_accelerator"],
        "cmake_flags": n["cmake_flags"] or [],
        "version": str(n["version"]),
        "source_id": "%s:%s" % (n["source"], n["version"]),
    } for n in build_nodes(plan, hostvars, OPTION_PREFIX, defaults,
                           ("accelerator", "cmake_flags", "version", "source"))]
    head = nodes[0]
    return plan_builds(nodes, {"version": head["version"], "source_id": head["source_id"]})


BACKEND = LlamacppRpc()
