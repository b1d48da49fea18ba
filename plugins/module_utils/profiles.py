# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hardware profiles and links: data, plus the one function that merges a host's overrides into them.

Every figure here is a default: a host may override any of them (``llmlab_profile_overrides`` in the
inventory, or the keys of a node dict given to the modules).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

# ConnectX-7 on GB10: two QSFP cages, each seen as two PCIe x4 netdevs ("halves"), each with a RoCE device.
_CX7_PORTS = ["enp1s0f0np0", "enp1s0f1np1"]
_CX7_HALVES = {"enp1s0f0np0": "enP2p1s0f0np0", "enp1s0f1np1": "enP2p1s0f1np1"}
_CX7_RDMA = {
    "enp1s0f0np0": "rocep1s0f0",
    "enp1s0f1np1": "rocep1s0f1",
    "enP2p1s0f0np0": "roceP2p1s0f0",
    "enP2p1s0f1np1": "roceP2p1s0f1",
}

PROFILES: Dict[str, Dict[str, Any]] = {
    "gb10": {
        "description": "NVIDIA GB10 (DGX Spark, ASUS Ascent GX10, Lenovo ThinkStation PGX)",
        "arch": "aarch64",
        "accelerator": "cuda",
        "gpus": 1,
        "memory_gb": 128.0,
        # DGX OS gives the GPU about 119.7 GiB (128.5 GB) of the 128 GiB; vLLM takes 0.9 of it in NVIDIA's two-Spark
        # Llama 3.1 405B recipe (--gpu-memory-utilization 0.9), leaving the rest to the OS and the CPU side
        "usable_memory_gb": 115.0,
        "mem_bw_gbs": 273.0,
        "cpu_mem_bw_gbs": None,      # the CPU cores: not measured apart here (None = mem_bw_gbs)
        "compute_tflops": 100.0,     # dense BF16 tensor throughput, order of magnitude, for prefill
        "unified_memory": True,
        "ports": _CX7_PORTS,
        "port_halves": _CX7_HALVES,
        "rdma_devices": _CX7_RDMA,
        "switch_port": "enp1s0f0np0",
        "management_interface": "enP7s7",
        "p2p_link": "cx7_200g",
        "switch_link": "cx7_200g",
        "mtu": 9000,
    },
    "strix_halo": {
        "description": "AMD Ryzen AI Max+ 395 (Framework Desktop)",
        "arch": "x86_64",
        "accelerator": "rocm",
        "gpus": 1,
        "memory_gb": 128.0,
        "usable_memory_gb": 96.0,    # GPU-visible share set by GTT/TTM kernel arguments; up to ~120
        "mem_bw_gbs": 256.0,
        # the Zen 5 cores reach the memory through their CCDs' fabric links, not the GPU's: an estimate of what a
        # CPU engine (distributed-llama's CPU path, llama.cpp on the CPU) reads; override when measured
        "cpu_mem_bw_gbs": 120.0,
        "compute_tflops": 59.0,
        "unified_memory": True,
        # USB4/Thunderbolt networking for point-to-point cables, the built-in 5GbE port for a switch.
        # Names are the usual ones; set llmlab_profile_overrides.ports / switch_port if yours differ.
        "ports": ["thunderbolt0", "thunderbolt1"],
        "port_halves": {},
        "rdma_devices": {},
        "switch_port": "enp191s0",
        "management_interface": None,
        "p2p_link": "usb4_10g",
        "switch_link": "eth_5g",
        "mtu": 1500,
    },
    "generic": {
        "description": "Any box with one discrete GPU: memory_gb and mem_bw_gbs must be given",
        "arch": None,
        "accelerator": "cuda",
        "gpus": 1,
        "memory_gb": None,
        "usable_memory_gb": None,    # defaults to memory_gb when not given
        "mem_bw_gbs": None,
        "cpu_mem_bw_gbs": None,
        "compute_tflops": 50.0,
        "unified_memory": False,
        "ports": [],
        "port_halves": {},
        "rdma_devices": {},
        "switch_port": None,
        "management_interface": None,
        "p2p_link": "eth_10g",
        "switch_link": "eth_10g",
        "mtu": 1500,
    },
    "sim": {
        "description": "A node of the simulated lab: a systemd container on the CPU, cabled with veth pairs",
        "arch": None,
        "accelerator": "cpu",
        "gpus": 0,
        "memory_gb": 4.0,
        "usable_memory_gb": 3.0,
        "mem_bw_gbs": 8.0,
        "cpu_mem_bw_gbs": None,
        "compute_tflops": 0.05,
        "unified_memory": True,
        "ports": _CX7_PORTS,
        "port_halves": _CX7_HALVES,
        "rdma_devices": {},
        "switch_port": "enp191s0",
        "management_interface": "eth0",
        "p2p_link": "veth",
        "switch_link": "veth",
        "mtu": 9000,
    },
}

# Discrete GPUs by their datasheets, for sizing a cluster before buying it (``make size``): one card per node, cards
# of one box talking over PCIe (``pcie4_x16``). Usable memory: vLLM's default share (0.9).
# compute_tflops: dense FP16/BF16 tensor throughput with FP32 accumulate.
_GPUS = {
    "rtx3090": ("NVIDIA GeForce RTX 3090 (24 GB GDDR6X)", 24.0, 936.0, 71.0),
    "rtx4090": ("NVIDIA GeForce RTX 4090 (24 GB GDDR6X)", 24.0, 1008.0, 165.0),
    "rtx6000_ada": ("NVIDIA RTX 6000 Ada Generation (48 GB GDDR6 ECC)", 48.0, 960.0, 182.0),
    "a100_80gb": ("NVIDIA A100 80GB SXM (HBM2e)", 80.0, 2039.0, 312.0),
    "h100": ("NVIDIA H100 SXM 80GB (HBM3)", 80.0, 3350.0, 989.0),
}
for _name, (_desc, _mem, _bw, _tf) in _GPUS.items():
    PROFILES[_name] = dict(PROFILES["generic"], description=_desc, arch="x86_64", memory_gb=_mem,
                           usable_memory_gb=round(0.9 * _mem, 1), mem_bw_gbs=_bw, compute_tflops=_tf,
                           p2p_link="pcie4_x16", switch_link="pcie4_x16")
GPU_PROFILES = tuple(_GPUS)


# Links: usable bandwidth of one logical link and the one-way latency a small message pays through the
# software stack that uses it (NCCL/RPC/TCP), not the wire alone.
LINKS: Dict[str, Dict[str, float]] = {
    "cx7_200g": {"gbps": 92.0, "latency_us": 15.0},   # one of the two PCIe x4 halves of a 200G port
    "eth_10g": {"gbps": 9.4, "latency_us": 50.0},
    "eth_5g": {"gbps": 4.7, "latency_us": 60.0},
    "usb4_10g": {"gbps": 10.0, "latency_us": 80.0},
    "pcie4_x16": {"gbps": 200.0, "latency_us": 10.0},  # cards of one box (NCCL over PCIe 4.0 x16, ~25 GB/s)
    "veth": {"gbps": 10.0, "latency_us": 30.0},       # the lab's unshaped veth pairs
}

NUMERIC_FIELDS = ("memory_gb", "usable_memory_gb", "mem_bw_gbs", "cpu_mem_bw_gbs", "compute_tflops")
OVERRIDABLE = set(PROFILES["gb10"].keys()) - {"description"}


@dataclass
class Node:
    """One host with its profile resolved and its overrides applied."""

    name: str
    profile: str
    arch: Optional[str]
    accelerator: str
    gpus: int
    memory_gb: float
    usable_memory_gb: float
    mem_bw_gbs: float
    cpu_mem_bw_gbs: Optional[float]
    compute_tflops: float
    unified_memory: bool
    ports: List[str]
    port_halves: Dict[str, str]
    rdma_devices: Dict[str, str]
    switch_port: Optional[str]
    management_interface: Optional[str]
    p2p_link: str
    switch_link: str
    mtu: int
    management_address: Optional[str] = None
    fabric_address: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)

    def all_ports(self) -> List[str]:
        """Every netdev this node can have cabled: ports, their halves and the switch port."""
        out = list(self.ports)
        out += [self.port_halves[p] for p in self.ports if p in self.port_halves]
        if self.switch_port and self.switch_port not in out:
            out.append(self.switch_port)
        return out


def profile_names() -> List[str]:
    return sorted(PROFILES)


def resolve_node(spec: Mapping[str, Any]) -> Node:
    """Turn ``{"name": ..., "profile": ..., <overrides>}`` into a :class:`Node`."""
    if not isinstance(spec, Mapping):
        raise PlanError("every node must be a dict with at least 'name' and 'profile', got %r" % (spec,),
                        variable="nodes", fix="give each node as {name: HOST, profile: gb10|strix_halo|generic|sim}")
    name = spec.get("name")
    if not name or not isinstance(name, str):
        raise PlanError("a node has no name: %r" % (dict(spec),), variable="nodes",
                        fix="give every node a 'name' (its inventory hostname)")
    profile = spec.get("profile")
    if profile not in PROFILES:
        raise PlanError("unknown hardware profile %r" % (profile,), host=name, variable="llmlab_profile",
                        fix="set llmlab_profile to one of: %s" % ", ".join(profile_names()))
    data = copy.deepcopy(PROFILES[profile])
    data.pop("description")
    overrides = {k: v for k, v in spec.items() if k not in ("name", "profile") and v is not None}
    for key, value in overrides.items():
        if key in OVERRIDABLE or key in ("management_address", "fabric_address"):
            data[key] = value
    for key in NUMERIC_FIELDS:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise PlanError("%s must be a positive number, got %r" % (key, value), host=name,
                            variable="llmlab_profile_overrides.%s" % key, fix="give %s in GB or GB/s" % key)
        data[key] = float(value)
    if data["memory_gb"] is None or data["mem_bw_gbs"] is None:
        raise PlanError("profile %s needs memory_gb and mem_bw_gbs" % profile, host=name,
                        variable="llmlab_profile_overrides",
                        fix="set llmlab_profile_overrides: {memory_gb: 24, mem_bw_gbs: 936} (your GPU's figures)")
    if data["usable_memory_gb"] is None:
        data["usable_memory_gb"] = data["memory_gb"]
    if data["usable_memory_gb"] > data["memory_gb"]:
        raise PlanError("usable_memory_gb %.1f is more than memory_gb %.1f" % (data["usable_memory_gb"], data["memory_gb"]),
                        host=name, variable="llmlab_profile_overrides.usable_memory_gb",
                        fix="lower usable_memory_gb to at most memory_gb")
    if not isinstance(data["ports"], list) or not all(isinstance(p, str) for p in data["ports"]):
        raise PlanError("ports must be a list of interface names, got %r" % (data["ports"],), host=name,
                        variable="llmlab_profile_overrides.ports", fix="give ports as a YAML list of netdev names")
    mtu = data["mtu"]
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 1280 <= mtu <= 9216:
        raise PlanError("mtu must be an integer between 1280 and 9216, got %r" % (mtu,), host=name,
                        variable="llmlab_mtu", fix="use 9000 on ConnectX-7, 1500 elsewhere")
    for key in ("p2p_link", "switch_link"):
        if data[key] not in LINKS:
            raise PlanError("unknown link %r" % (data[key],), host=name, variable="llmlab_profile_overrides.%s" % key,
                            fix="use one of: %s" % ", ".join(sorted(LINKS)))
    extra = {k: v for k, v in overrides.items()
             if k not in OVERRIDABLE and k not in ("management_address", "fabric_address")}
    return Node(name=name, profile=profile, extra=extra, **data)


def resolve_link(link: Any) -> Dict[str, float]:
    """A link given by name (``cx7_200g``…) or as ``{"gbps": ..., "latency_us": ...}``."""
    if isinstance(link, str):
        if link not in LINKS:
            raise PlanError("unknown link %r" % link, variable="llmlab_link",
                            fix="use one of %s, or a dict {gbps: N, latency_us: N}" % ", ".join(sorted(LINKS)))
        return dict(LINKS[link])
    if isinstance(link, Mapping):
        try:
            gbps = float(link["gbps"])
            latency = float(link.get("latency_us", 50.0))
        except (KeyError, TypeError, ValueError):
            raise PlanError("a link dict needs a numeric gbps (and optionally latency_us), got %r" % (dict(link),),
                            variable="llmlab_link", fix="write llmlab_link: {gbps: 100, latency_us: 20}")
        if gbps <= 0 or latency < 0:
            raise PlanError("link gbps must be > 0 and latency_us >= 0", variable="llmlab_link",
                            fix="write llmlab_link: {gbps: 100, latency_us: 20}")
        return {"gbps": gbps, "latency_us": latency}
    raise PlanError("link must be a name or a dict, got %r" % (link,), variable="llmlab_link",
                    fix="use one of %s" % ", ".join(sorted(LINKS)))
