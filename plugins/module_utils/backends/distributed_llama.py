# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""distributed-llama: every node holds 1/N of every layer (tensor parallel on the CPU cores), N a power of two.

The root (the plan's head) runs ``dllama-api`` on 127.0.0.1 behind a reverse proxy (nginx) that serves the plan's
API address with the key, ``/health`` and a body limit; every other node runs ``dllama worker`` on its fabric
address. Workers hold no model: the root streams their slices at every start, and workers connect to each other
too. There is no version handshake (root and workers exchange raw structs), so every node must run the same commit:
builds are grouped like llama.cpp's (``base.group_builds``) and a node pinned to another version fails preflight.

Field facts this module encodes (v0.16.4, reproduced in the lab):

* a worker closes its listening socket once the root has connected, so readiness is the socket in LISTEN state
  before the root starts and an ESTABLISHED one from the root afterwards (``connected_from``); a TCP connect-and-close
  kills a worker, so nothing probes its port;
* ``--net-turbo`` (on by default) busy-spins on the sockets; off unless the role asks for it;
* ``-march=native`` is the upstream default and makes binaries node-specific: builds use a portable level per CPU
  architecture unless the role asks for ``native`` (then every node builds its own).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import (
    Backend, Shape, build_nodes, fabric_address, group_builds, node_threads)
from ansible_collections.llmlab.cluster.plugins.module_utils.dllama import (  # noqa: F401 - the backend's rules
    WEIGHT_TYPES, model_problems, split_problems)
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import (
    Request, is_power_of_two, link_bytes_per_s)
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

OPTION_PREFIX = "llmlab_dllama_"
API_LOCAL_ADDRESS = "127.0.0.1"           # dllama-api has no authentication: only the proxy on the same node reaches it
API_LOCAL_PORT = 9990
# What upstream's Makefile sets (a CXXFLAGS given to make replaces them all), without -march/-mtune=native.
BASE_CXXFLAGS = ("-std=c++11", "-Werror", "-Wformat", "-Werror=format-security", "-O3")
# The instruction sets its kernels use (nn-cpu-ops: AVX2/F16C, NEON dot product and fp16) at a level every box of
# the kind has: GB10 (Cortex-X925/A725), Ryzen AI Max+ 395 (Zen 5), the lab's x86-64 hosts.
PORTABLE_MARCH = {"x86_64": "x86-64-v3", "aarch64": "armv8.2-a+dotprod+fp16"}
BUILDS = ("cpu", "vulkan")

SYNCS_PER_LAYER = 2
SYNC_FIXED_US = 125.0
SYNC_PER_PEER_US = 60.0


class DistributedLlama(Backend):
    name = "distributed_llama"
    title = "distributed-llama"
    quants = ("q4_0", "f32")
    accelerators = ("cpu", "cuda", "rocm")   # runs on the CPU cores (or Vulkan) of any box
    containers = False
    peer_ports = {"worker": "9999"}
    units = {"dllama-worker": "llmlab-dllama-worker.service", "dllama-api": "llmlab-dllama-api.service",
             "dllama-proxy": "llmlab-dllama-proxy.service"}
    api_endpoint = "chat"                    # dllama-api serves /v1/chat/completions and /v1/models only
    shape_rule = "distributed-llama splits tensors (TP=nodes, PP=1)"
    # the same CPU code path on every kind of box, so one efficiency for all of them
    decode_efficiency = dict.fromkeys(accelerators, 0.60)
    prefill_efficiency = dict.fromkeys(accelerators, 0.30)
    kv_bytes = 4.0
    runtime_overhead_gb = 0.3
    step_overhead_us = 500.0
    act_bytes = 1.0625                       # q80 buffers

    def shapes(self, used: int) -> List[Shape]:
        return [(used, 1)]

    def bandwidth(self, node: Node) -> float:
        """Its kernels run on the CPU cores, which on some boxes reach less of the memory than the GPU does
        (``cpu_mem_bw_gbs`` of the profile; Strix Halo)."""
        return (node.cpu_mem_bw_gbs or node.mem_bw_gbs) * 1e9

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        m = req.model
        return split_problems({"heads": m.heads, "kv_heads": m.kv_heads, "head_dim": m.head_dim, "dim": m.hidden,
                               "hidden_dim": m.ffn, "vocab": m.vocab, "weight_type": WEIGHT_TYPES.get(req.quant)}, tp)

    def memory(self, tp: int, pp: int, nodes: Sequence[Node],
               req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
        m = req.model
        weights, kv_total, overhead = self.totals(req)
        embed = m.vocab * m.hidden * 4.0          # the root keeps the embedding table in f32
        mem = {n.name: (weights + kv_total) / tp + overhead + (embed if i == 0 else 0.0) for i, n in enumerate(nodes)}
        return mem, {"buffer_float_type": "q80" if req.quant == "q4_0" else "f32",
                     "weights_float_type": "q40" if req.quant == "q4_0" else req.quant}

    def communication(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                      settings: Mapping[str, Any]) -> Tuple[float, float, List[str]]:
        m, link = req.model, req.link
        syncs = SYNCS_PER_LAYER * m.layers if tp > 1 else 0
        xfer = 4.0 * m.layers * (tp - 1) * m.hidden * self.act_bytes * req.concurrency
        per_sync = 2 * link["latency_us"] + SYNC_FIXED_US + SYNC_PER_PEER_US * (tp - 1)
        comm = syncs * per_sync * 1e-6 + xfer / link_bytes_per_s(link)
        pre_comm = syncs * per_sync * 1e-6 + req.prompt_tokens * xfer / link_bytes_per_s(link)
        notes = []
        if tp > 1:
            notes.append("%d nodes each hold 1/%d of every layer; %d synchronisations (%.0f kB) per token cost "
                         "%.2f ms" % (tp, tp, syncs, xfer / 1e3, comm * 1e3))
        return comm, pre_comm, notes

    def services(self, plan: Mapping[str, Any],
                 fabric: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """The proxy serves the API address; dllama-api listens on the root's loopback only; each worker on its
        fabric address, until the root and its peers connect (``connected_from``: who may hold its socket then)."""
        port = int(self.peer_ports["worker"])
        out = self.head_and_workers(plan, fabric, "dllama-proxy", "dllama-worker", port)
        head = plan["head"]
        out[head]["dllama-api"] = {"unit": self.units["dllama-api"], "port": API_LOCAL_PORT,
                                   "bind": API_LOCAL_ADDRESS}
        nodes = [head] + list(plan["workers"])
        for w in plan["workers"]:
            peers = [fabric_address(fabric, n) for n in nodes if n != w]
            out[w]["dllama-worker"]["connected_from"] = [a for a in peers if a]
        return out

    def deploy(self, plan: Mapping[str, Any], fabric: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
               options: Mapping[str, Any]) -> Dict[str, Any]:
        """Builds, then every service's command line. ``options``: the role's ``version``, ``commit``, ``source_id``
        (the archive's SHA-256), ``accelerator`` (cpu or vulkan), ``march`` (empty: the portable level of the node's
        architecture; ``native``: one build per node), ``cxxflags`` (extra), ``threads`` (0 = the node's CPUs),
        ``net_turbo``, ``prefix``, ``model_path``, ``tokenizer_path``, ``proxy_binary``, ``proxy_conf``,
        ``api_args``; the inventory may set the per-host ones as ``llmlab_dllama_<option>``."""
        builds = cluster_builds(plan, hostvars, options)
        head, workers = plan["head"], list(plan["workers"])
        services = plan["services"]
        port = int(self.peer_ports["worker"])
        bindir = "%s/current/bin" % options["prefix"]
        out: Dict[str, Dict[str, Dict[str, Any]]] = {}

        def common(host: str) -> List[str]:
            build = builds["builds"][builds["hosts"][host]]
            threads = _threads(hostvars, host, options)
            args = ["--nthreads", str(threads)]
            if build["inputs"]["accelerator"] == "vulkan":
                args = ["--nthreads", "1", "--gpu-index", "0"]    # its Vulkan path runs one thread on GPU 0
            return args + ["--net-turbo", "1" if options.get("net_turbo") else "0"]

        for w in workers:
            argv = ["%s/dllama" % bindir, "worker", "--host", services[w]["dllama-worker"]["bind"],
                    "--port", str(port)] + common(w)
            out[w] = {"dllama-worker": {"argv": argv, "env": {}}}
        s = plan["settings"]
        argv = ["%s/dllama-api" % bindir, "--host", API_LOCAL_ADDRESS, "--port", str(API_LOCAL_PORT),
                "--model", options["model_path"], "--tokenizer", options["tokenizer_path"],
                "--buffer-float-type", s["buffer_float_type"],
                "--max-seq-len", str(plan["context_tokens"])] + common(head)
        if workers:
            argv += ["--workers"] + workers_argument(workers, fabric, port)
        argv += [str(a) for a in options.get("api_args") or []]
        out[head] = {
            "dllama-api": {"argv": argv, "env": {}},
            "dllama-proxy": {"argv": [options["proxy_binary"], "-e", "stderr", "-c", options["proxy_conf"],
                                      "-g", "daemon off;"],
                             "env": {},
                             "upstream": "%s:%d" % (API_LOCAL_ADDRESS, API_LOCAL_PORT)},
        }
        return {"services": out, "builds": builds["builds"], "build_of": builds["hosts"],
                "weight_type": WEIGHT_TYPES[plan["quant"]]}


def workers_argument(workers: Sequence[str], fabric: Mapping[str, Any], port: int) -> List[str]:
    """distributed-llama ``--workers`` arguments (space-separated on the command line), in the plan's order."""
    return ["%s:%d" % (fabric_address(fabric, w), port) for w in workers]


def _threads(hostvars: Mapping[str, Mapping[str, Any]], host: str, options: Mapping[str, Any]) -> int:
    """One thread per physical core (upstream: no more threads than cores): its threads spin-wait for each other at
    every step, so an SMT sibling or a core another node shares slows every token."""
    return node_threads(hostvars, host, OPTION_PREFIX, options, per="cores")


# --- builds ----------------------------------------------------------------------------------------------------

def make_flags(accelerator: str, arch: Optional[str], march: str = "", extra: Optional[Sequence[str]] = None,
               host: Optional[str] = None) -> Dict[str, Any]:
    """What ``make dllama dllama-api`` gets on one node: ``CXXFLAGS`` (upstream's, with a portable ``-march`` for the
    architecture unless ``march`` names one) and the make variables (``DLLAMA_VULKAN=1`` for Vulkan)."""
    if accelerator not in BUILDS:
        raise PlanError("distributed-llama has no %r build (it builds %s)" % (accelerator, " or ".join(BUILDS)),
                        host=host, variable="llmlab_dllama_accelerator",
                        fix="set llmlab_dllama_accelerator to one of %s" % ", ".join(BUILDS))
    level = march or PORTABLE_MARCH.get(str(arch))
    if not level:
        raise PlanError("no portable -march level for CPU architecture %r" % (arch,), host=host,
                        variable="llmlab_dllama_march",
                        fix="set llmlab_dllama_march (e.g. native, or a -march value gcc knows for that CPU)")
    flags = list(BASE_CXXFLAGS) + ["-march=%s" % level, "-mtune=%s" % ("native" if level == "native" else "generic")]
    variables: Dict[str, str] = {}
    if accelerator == "vulkan":
        flags.append("-DDLLAMA_VULKAN")         # upstream's Makefile adds it to the CXXFLAGS a command line replaces
        variables["DLLAMA_VULKAN"] = "1"
    for f in extra or []:
        if not isinstance(f, str) or not f.startswith("-"):
            raise PlanError("extra compiler flag %r is not an option" % (f,), host=host,
                            variable="llmlab_dllama_cxxflags", fix="give a list of strings like -DNDEBUG")
        flags.append(f)
    return {"cxxflags": flags, "variables": variables}


def cluster_builds(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
                   options: Mapping[str, Any]) -> Dict[str, Any]:
    """Group the plan's nodes into builds: one per version, archive, build kind (cpu/vulkan), flags, architecture
    and OS; with ``march: native`` one per node (the binaries then fit only the CPU they were built on).

    Raises PlanError when a node would run another version or archive than the root: workers and root exchange raw
    structs, and mixed commits corrupt silently."""
    nodes = []
    for n in build_nodes(plan, hostvars, OPTION_PREFIX, options,
                         ("accelerator", "march", "cxxflags", "version", "source_id")):
        accel = n["accelerator"] or ("vulkan" if n["profile_accelerator"] == "vulkan" else "cpu")
        flags = make_flags(accel, n["arch"], str(n["march"] or ""), n["cxxflags"], host=n["name"])
        inputs = {"version": str(n["version"]), "source_id": n["source_id"], "accelerator": accel,
                  "arch": n["arch"], "os": n["os"], **flags}
        if n["march"] == "native":
            inputs["host"] = n["name"]
        nodes.append(dict(n, version=str(n["version"]), inputs=inputs))
    out = group_builds(nodes, {"version": "llmlab_dllama_version"}, "distributed-llama",
                       "root and workers exchange raw structs with no version check, so mixed commits corrupt silently")
    for b in out["builds"].values():
        i = b["inputs"]
        b["make_args"] = ["CXXFLAGS=" + " ".join(i["cxxflags"])] + ["%s=%s" % kv for kv in sorted(i["variables"].items())]
    return out


BACKEND = DistributedLlama()
