#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: node_facts
short_description: What a cluster node has - architecture, memory, GPUs, NICs with their RoCE devices, OS, runtimes
version_added: "0.1.0"
description:
  - Reads, and never changes, what the planner and the preflight contract need to know of a node. Runs on the node.
  - Memory from /proc/meminfo (on unified-memory boxes such as GB10 it is the GPU's memory too, nvidia-smi reports
    none there); NVIDIA GPUs from C(nvidia-smi --query-gpu), AMD GPUs from C(rocminfo); network interfaces from
    /sys/class/net with the RoCE device behind each from /sys/class/infiniband/*/device/net.
  - Returns them as C(ansible_facts.llmlab_node) as well, so that C(hostvars) carry them.
author:
  - llmlab.cluster contributors
extends_documentation_fragment:
  - llmlab.cluster.read_only
options:
  sys_root:
    description: Where sysfs is mounted (for tests).
    type: path
    default: /sys
  builds_root:
    description:
      - Where backend roles install what they build, one directory each; the build in use is read from
        C(<directory>/current/build.json).
    type: path
    default: /opt/llmlab
"""

EXAMPLES = r"""
- name: Learn what each node has
  llmlab.cluster.node_facts:

- name: Its cabled ports
  ansible.builtin.debug:
    msg: "{{ ansible_facts.llmlab_node.nics | map(attribute='name') }}"
"""

RETURN = r"""
llmlab_node:
  description: The node's facts (also set as C(ansible_facts.llmlab_node)).
  returned: always
  type: dict
  contains:
    arch:
      description: Machine architecture (C(aarch64) on GB10, C(x86_64) on Strix Halo).
      type: str
    kernel:
      description: Kernel release.
      type: str
    cpus:
      description: CPUs this node may run on (its affinity mask, so a container's cpuset counts).
      type: int
    cores:
      description:
        - Physical cores under those CPUs (SMT siblings count once; from sysfs topology), or the CPU count when sysfs
          does not say.
      type: int
    builds:
      description:
        - The builds installed under O(builds_root), by directory (C(id), C(version), C(flags), ... as the role
          stamped them; C({error}) when the stamp is unreadable). Empty when none is installed.
      type: dict
    os:
      description: C(id), C(version_id), C(pretty_name), C(family) from /etc/os-release.
      type: dict
    memory_gb:
      description: MemTotal in GB.
      type: float
    memory_available_gb:
      description: MemAvailable in GB.
      type: float
    gpus:
      description: Each with C(vendor), C(name), C(memory_gb) (null on unified memory), C(driver), C(arch), C(unified_memory).
      type: list
      elements: dict
    unified_memory:
      description: True when the GPU uses system memory (GB10, Strix Halo) or there is no GPU.
      type: bool
    nics:
      description: Each with C(name), C(mac), C(mtu), C(speed_mbps), C(driver), C(virtual), C(carrier), C(operstate), C(rdma_device).
      type: list
      elements: dict
    runtimes:
      description: Container runtimes and GPU toolkits found on PATH (C(docker), C(podman), C(nvidia-ctk)), by name, with their version line.
      type: dict
"""

import glob
import json
import os
import platform

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.llmlab.cluster.plugins.module_utils.hwfacts import (
    NVIDIA_QUERY, parse_meminfo, parse_nvidia_smi, parse_os_release, parse_rocminfo, physical_cores, sysfs_nics)


def _text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""


def installed_builds(root: str) -> dict:
    """Every ``<root>/<name>/current/build.json`` stamp, by name."""
    builds = {}
    for stamp_path in sorted(glob.glob(os.path.join(root, "*", "current", "build.json"))):
        name = os.path.basename(os.path.dirname(os.path.dirname(stamp_path)))
        try:
            builds[name] = json.loads(_text(stamp_path))
        except ValueError:
            builds[name] = {"error": "unreadable build.json"}
    return builds


def main() -> None:
    module = AnsibleModule(argument_spec=dict(sys_root=dict(type="path", default="/sys"),
                                              builds_root=dict(type="path", default="/opt/llmlab")),
                           supports_check_mode=True)
    cpus = os.sched_getaffinity(0)
    facts = {"arch": platform.machine(), "kernel": platform.release(), "cpus": len(cpus),
             "cores": physical_cores(cpus, module.params["sys_root"]) or len(cpus),
             "os": parse_os_release(_text("/etc/os-release"))}
    facts["builds"] = installed_builds(module.params["builds_root"])
    facts.update(parse_meminfo(_text("/proc/meminfo")))
    gpus = []
    smi = module.get_bin_path("nvidia-smi")
    if smi:
        rc, out, _ = module.run_command([smi, "--query-gpu=" + NVIDIA_QUERY, "--format=csv,noheader,nounits"])
        if rc == 0:
            gpus += parse_nvidia_smi(out)
    rocminfo = module.get_bin_path("rocminfo")
    if rocminfo:
        rc, out, _ = module.run_command([rocminfo])
        if rc == 0:
            gpus += parse_rocminfo(out)
    facts["gpus"] = gpus
    facts["unified_memory"] = all(g["unified_memory"] for g in gpus)
    facts["nics"] = sysfs_nics(module.params["sys_root"])
    runtimes = {}
    for tool, args in (("docker", ["--version"]), ("podman", ["--version"]), ("nvidia-ctk", ["--version"])):
        path = module.get_bin_path(tool)
        if path:
            rc, out, _ = module.run_command([path] + args)
            runtimes[tool] = out.strip().splitlines()[0] if rc == 0 and out.strip() else path
    facts["runtimes"] = runtimes
    module.exit_json(changed=False, llmlab_node=facts, ansible_facts={"llmlab_node": facts})


if __name__ == "__main__":
    main()
