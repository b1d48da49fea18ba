# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parsers for what a node tells about itself: /proc/meminfo, os-release, nvidia-smi, rocminfo and sysfs NICs.

Pure functions over text and a sysfs root, so that the recorded outputs of a GB10 box, a Strix Halo box and a lab
node can be tested anywhere. The module ``node_facts`` runs the tools and feeds them here.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, Iterable, List, Optional

NVIDIA_QUERY = "name,memory.total,driver_version,compute_cap"
_APU_GFX = re.compile(r"^gfx115\d$")  # Strix Halo (gfx1151) and its Strix Point siblings share system memory


def parse_meminfo(text: str) -> Dict[str, float]:
    """MemTotal and MemAvailable in GB (10^9 bytes, as the planner counts)."""
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if key in ("MemTotal", "MemAvailable") and fields:
            out[key] = int(fields[0]) * 1024 / 1e9
    return {"memory_gb": round(out.get("MemTotal", 0.0), 2),
            "memory_available_gb": round(out.get("MemAvailable", 0.0), 2)}


def parse_os_release(text: str) -> Dict[str, Optional[str]]:
    kv: Dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            kv[k.strip()] = v.strip().strip('"')
    like = kv.get("ID_LIKE", "").split()
    family = kv.get("ID", "")
    for fam in ("debian", "fedora", "rhel", "suse", "arch"):
        if kv.get("ID") == fam or fam in like:
            family = fam
            break
    return {"id": kv.get("ID"), "version_id": kv.get("VERSION_ID"), "pretty_name": kv.get("PRETTY_NAME"),
            "family": family or None}


def _na(value: str) -> Optional[str]:
    value = value.strip()
    return None if not value or value.startswith("[") else value


def parse_nvidia_smi(csv_text: str) -> List[Dict[str, Any]]:
    """``nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader,nounits``.

    GB10 reports ``[N/A]`` for memory: its GPU has no memory of its own (unified memory)."""
    gpus = []
    for line in csv_text.splitlines():
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 4:
            continue
        name, mem, driver, cap = cells[:4]
        mem_mib = _na(mem)
        gpus.append({"vendor": "nvidia", "name": name, "memory_gb": round(int(mem_mib) * 1048576 / 1e9, 2)
                     if mem_mib and mem_mib.isdigit() else None, "driver": _na(driver), "arch": _na(cap),
                     "unified_memory": mem_mib is None})
    return gpus


def parse_rocminfo(text: str) -> List[Dict[str, Any]]:
    """The GPU agents of ``rocminfo`` (blocks with ``Device Type: GPU``)."""
    gpus = []
    for block in re.split(r"\n\*{3,}\s*\nAgent \d+\s*\n\*{3,}\s*\n", "\n" + text):
        fields: Dict[str, str] = {}
        for line in block.splitlines():
            m = re.match(r"^\s{2}(\w[\w .]*?):\s+(.*?)\s*$", line)
            if m and m.group(1) not in fields:
                fields[m.group(1)] = m.group(2)
        if fields.get("Device Type") == "GPU":
            gfx = fields.get("Name", "")
            gpus.append({"vendor": "amd", "name": fields.get("Marketing Name", gfx), "memory_gb": None,
                         "driver": None, "arch": gfx, "unified_memory": bool(_APU_GFX.match(gfx))})
    return gpus


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:  # absent, or EINVAL (speed of a link that is down)
        return None


def physical_cores(cpus: Iterable[int], sys_root: str = "/sys") -> Optional[int]:
    """How many physical cores the given CPUs (an affinity mask) sit on: SMT siblings share a (package, core) pair in
    sysfs. None when sysfs does not say (the caller then counts CPUs)."""
    cores = set()
    for cpu in cpus:
        topo = os.path.join(sys_root, "devices", "system", "cpu", "cpu%d" % cpu, "topology")
        package, core = _read(os.path.join(topo, "physical_package_id")), _read(os.path.join(topo, "core_id"))
        if package is None or core is None:
            return None
        cores.add((package, core))
    return len(cores) or None


def sysfs_nics(sys_root: str = "/sys") -> List[Dict[str, Any]]:
    """Every network interface but lo, with what sysfs says of it and the RoCE device behind it."""
    net = os.path.join(sys_root, "class", "net")
    rdma: Dict[str, str] = {}
    ib = os.path.join(sys_root, "class", "infiniband")
    if os.path.isdir(ib):
        for dev in sorted(os.listdir(ib)):
            ndir = os.path.join(ib, dev, "device", "net")
            if os.path.isdir(ndir):
                for netdev in os.listdir(ndir):
                    rdma[netdev] = dev
    nics = []
    for name in sorted(os.listdir(net)) if os.path.isdir(net) else []:
        if name == "lo":
            continue
        base = os.path.join(net, name)
        speed = _read(os.path.join(base, "speed"))
        driver_link = os.path.join(base, "device", "driver")
        carrier = _read(os.path.join(base, "carrier"))
        mtu = _read(os.path.join(base, "mtu"))
        nics.append({
            "name": name,
            "mac": _read(os.path.join(base, "address")),
            "mtu": int(mtu) if mtu and mtu.isdigit() else None,
            "speed_mbps": int(speed) if speed and speed.lstrip("-").isdigit() and int(speed) > 0 else None,
            "driver": os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None,
            "virtual": not os.path.exists(os.path.join(base, "device")),
            "carrier": carrier == "1",
            "operstate": _read(os.path.join(base, "operstate")),
            "rdma_device": rdma.get(name),
        })
    return nics
