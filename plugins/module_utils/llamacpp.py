# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""llama.cpp builds: which nodes share one build, what CMake is told, and the build's identity.

llama.cpp RPC needs the *same build* on the head and every worker ("RPC server version mismatch" otherwise), and a
build costs minutes per node. So nodes are grouped by everything that changes the binaries (source, version, CMake
flags, CPU architecture, OS); each group is built once, on its first node, and copied to the others; the group's
build id is a hash of those inputs and is the stamp that decides a rebuild (never ``creates:``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

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

# The binaries we build and run; the RPC worker was renamed (rpc-server -> ggml-rpc-server).
SERVER_BINARY = "llama-server"
RPC_BINARIES = ("ggml-rpc-server", "rpc-server")


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


def build_id(inputs: Mapping[str, Any]) -> str:
    """A short, stable hash of everything that changes the binaries."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def plan_builds(nodes: Sequence[Mapping[str, Any]], source: Mapping[str, Any]) -> Dict[str, Any]:
    """Group nodes into builds.

    ``nodes``: in inventory order, each ``{name, arch, os, accelerator, cmake_flags (extra), version, source_id}``;
    ``version`` and ``source_id`` (the archive's sha256 or the git tag) are per host so that a host pinned to another
    build is caught here. ``source``: what the head uses, ``{version, source_id}``.

    Returns ``{builds: {id: {inputs, flags, builder, hosts}}, hosts: {name: id}}``. Raises PlanError when a node would
    run another llama.cpp version than the head: RPC refuses mismatched builds.
    """
    builds: Dict[str, Dict[str, Any]] = {}
    hosts: Dict[str, str] = {}
    for n in nodes:
        name = n["name"]
        for key in ("version", "source_id"):
            if n.get(key) != source.get(key):
                raise PlanError(
                    "%s would build llama.cpp %s %r, the head builds %r: RPC needs the same build on every node"
                    % (name, key.replace("_", " "), n.get(key), source.get(key)), host=name,
                    variable="llmlab_llamacpp_version" if key == "version" else "llmlab_llamacpp_source",
                    fix="set the llama.cpp version and source once for the whole cluster (group_vars), not per host")
        flags = cmake_flags(n["accelerator"], n.get("cmake_flags"), host=name)
        inputs = {"version": source["version"], "source_id": source["source_id"], "flags": flags,
                  "arch": n.get("arch"), "os": n.get("os")}
        bid = build_id(inputs)
        b = builds.setdefault(bid, {"inputs": inputs, "flags": flags, "builder": name, "hosts": []})
        b["hosts"].append(name)
        hosts[name] = bid
    return {"builds": builds, "hosts": hosts}


def cluster_builds(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
                   defaults: Mapping[str, Any]) -> Dict[str, Any]:
    """:func:`plan_builds` for the nodes a plan uses, from the inventory.

    Per host, ``llmlab_llamacpp_version`` / ``_source`` / ``_cmake_flags`` / ``_accelerator`` when the inventory sets
    them, else ``defaults`` (the role's); the accelerator otherwise comes from the host's profile, the architecture
    and OS from its ``llmlab_node`` facts (preflight).
    """
    from ansible_collections.llmlab.cluster.plugins.module_utils.render import inventory_nodes
    from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import resolve_node

    used = list(plan.get("nodes_used") or [])
    if not used:
        raise PlanError("the plan uses no node", variable="llmlab_nodes", fix="fix the plan's errors first")

    def pick(hv: Mapping[str, Any], key: str) -> Any:
        value = hv.get("llmlab_llamacpp_" + key)
        return defaults.get(key) if value in (None, "") else value

    nodes = []
    for spec in inventory_nodes(hostvars, used):
        hv = hostvars[spec["name"]]
        facts = hv.get("llmlab_node") or {}
        os_ = facts.get("os") or {}
        nodes.append({
            "name": spec["name"],
            "accelerator": pick(hv, "accelerator") or resolve_node(spec).accelerator,
            "arch": facts.get("arch"),
            "os": "%s-%s" % (os_.get("id"), os_.get("version_id")) if os_ else None,
            "cmake_flags": pick(hv, "cmake_flags") or [],
            "version": str(pick(hv, "version")),
            "source_id": "%s:%s" % (pick(hv, "source"), pick(hv, "version")),
        })
    head = nodes[0]
    return plan_builds(nodes, {"version": head["version"], "source_id": head["source_id"]})
