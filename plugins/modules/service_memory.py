#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_memory
short_description: The memory a node's services hold now and at their peak, read from /proc
version_added: "0.3.0"
description:
  - Reads, and never changes, the memory of services. For each, the processes under its systemd unit's main process
    and, when it runs a container, under the container's first process (C(docker inspect)); for each process its
    resident set (C(VmRSS)) and its peak resident set (C(VmHWM)) from C(/proc/<pid>/status).
  - A service's C(peak_rss_mb) is the sum of its processes' peaks, an upper bound of the service's peak (the processes
    need not have peaked at once). A service that is not running has no processes and 0 MB.
  - Needs no Python packages beyond the standard library; the C(docker) command only for services with a container.
author:
  - llmlab.cluster contributors
extends_documentation_fragment:
  - llmlab.cluster.read_only
options:
  services:
    description:
      - Service name -> C(unit) (a systemd unit) and optionally C(container) (a dict with the container's C(name),
        as the plan's C(services) give it).
    type: dict
    required: true
  proc:
    description: Where procfs is mounted (for tests).
    type: path
    default: /proc
"""

EXAMPLES = r"""
- name: What this node's planned services hold
  llmlab.cluster.service_memory:
    services: "{{ llmlab_plan.plan.services[inventory_hostname] }}"
  register: memory
"""

RETURN = r"""
services:
  description: By service, C(unit), C(pids), C(rss_mb) and C(peak_rss_mb).
  returned: success
  type: dict
  sample: {vllm: {unit: llmlab-vllm.service, pids: [812, 901], rss_mb: 2012.4, peak_rss_mb: 2210.0}}
total_peak_rss_mb:
  description: The sum of the services' C(peak_rss_mb).
  returned: success
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmlab.cluster.plugins.module_utils.procmem import tree_memory


def _pid(module: AnsibleModule, argv: list) -> int:
    rc, out, _ = module.run_command(argv)
    value = out.strip()
    return int(value) if rc == 0 and value.isdigit() else 0


def main() -> None:
    module = AnsibleModule(argument_spec=dict(services=dict(type="dict", required=True),
                                              proc=dict(type="path", default="/proc")),
                           supports_check_mode=True)
    systemctl = module.get_bin_path("systemctl", required=True)
    docker = module.get_bin_path("docker")
    out = {}
    for name, svc in sorted(module.params["services"].items()):
        if not isinstance(svc, dict) or not svc.get("unit"):
            module.fail_json(msg="service %s has no unit: %r" % (name, svc))
        roots = [_pid(module, [systemctl, "show", "--property", "MainPID", "--value", svc["unit"]])]
        container = (svc.get("container") or {}).get("name")
        if container and docker:
            roots.append(_pid(module, [docker, "inspect", "--format", "{{.State.Pid}}", container]))
        out[name] = dict(tree_memory(roots, module.params["proc"]), unit=svc["unit"])
    module.exit_json(changed=False, services=out,
                     total_peak_rss_mb=round(sum(s["peak_rss_mb"] for s in out.values()), 1))


if __name__ == "__main__":
    main()
