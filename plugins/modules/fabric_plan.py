#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fabric_plan
short_description: Compute the cluster fabric plan (links, addresses, routes) on the controller
version_added: "0.1.0"
description:
  - Computes, from the cluster's nodes and how they are cabled, one point-to-point subnet per cable (on ConnectX-7
    one per logical half of a port), a stable fabric address per node, the static routes with their metrics or the
    choice of OSPF for rings of four or more, and whether each node must forward.
  - Pure computation on the controller; it reads and changes nothing on any host.
  - Bad input fails with a message that names the host, the inventory variable and the fix.
author:
  - llmlab.cluster contributors
attributes:
  check_mode:
    support: full
    description: Computes the same plan in check mode; nothing is ever changed.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  nodes:
    description:
      - The cluster's nodes in inventory order. Each is a dict with C(name) and C(profile) and optionally
        C(ports), C(switch_port), C(mtu), C(management_address) and any other profile figure to override.
    type: list
    elements: dict
    required: true
  topology:
    description: How the nodes are connected.
    type: str
    choices: [single, direct, ring, switch]
    required: true
  cables:
    description:
      - Physical cables, each a pair of C(host:port) strings. When empty, port 1 of node i is cabled to port 0 of
        node i+1 (around the ring).
    type: list
    elements: raw
    default: []
  pool:
    description: The address pool for node addresses and link subnets. It must not overlap the management network.
    type: str
    default: 10.213.0.0/24
  mtu:
    description: MTU of every fabric link. Defaults to the profile's (9000 on ConnectX-7).
    type: int
  management_networks:
    description: Networks the pool must not overlap, besides each node's management address.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Plan the fabric of a three-box GB10 ring
  llmlab.cluster.fabric_plan:
    topology: ring
    nodes:
      - {name: gx10-a, profile: gb10}
      - {name: gx10-b, profile: gb10}
      - {name: gx10-c, profile: gb10}
  delegate_to: localhost
  run_once: true
  register: fabric

- name: Explicit cabling, NVIDIA's convention (N1 P0 to N2 P1, ...)
  llmlab.cluster.fabric_plan:
    topology: ring
    nodes: "{{ nodes }}"
    cables:
      - [gx10-a:enp1s0f0np0, gx10-b:enp1s0f1np1]
      - [gx10-b:enp1s0f0np0, gx10-c:enp1s0f1np1]
      - [gx10-c:enp1s0f0np0, gx10-a:enp1s0f1np1]
    pool: 10.99.0.0/24
"""

RETURN = r"""
fabric:
  description: The fabric plan.
  returned: success
  type: dict
  contains:
    topology:
      description: The topology planned.
      type: str
      sample: ring
    routing:
      description: C(static) or C(ospf) (rings of four or more).
      type: str
      sample: static
    pool:
      description: The address pool in CIDR form.
      type: str
      sample: 10.213.0.0/24
    nodes:
      description: Node names in inventory order.
      type: list
      elements: str
    links:
      description: Logical links, each with C(name), C(a), C(b) (C(host:port)), C(subnet) and C(mtu).
      type: list
      elements: dict
    hosts:
      description:
        - By host name, C(node_address) (the address services bind to), C(loopback) (whether it lives on C(lo)),
          C(forwarding), C(rp_filter), C(ignore_routes_with_linkdown), C(interfaces) (each C(name), C(address) in
          CIDR form, C(mtu), C(peer), C(peer_address), C(link)), C(routes) (each C(to), C(via), C(dev), C(metric),
          C(src)), C(ospf) (or null) and C(rdma_devices).
      type: dict
error:
  description: On failure, the host, the variable and the fix, as in the message.
  returned: failure
  type: dict
  sample: {host: gx10-b, variable: llmlab_cables, fix: "use one of: enp1s0f0np0, ..."}
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import netaddr  # noqa: F401  (the planner's address arithmetic)
    from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric
    NETADDR_ERROR = None
except ImportError:
    NETADDR_ERROR = traceback.format_exc()

from ansible_collections.llmlab.cluster.plugins.module_utils.constants import DEFAULT_POOL, TOPOLOGIES
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            topology=dict(type="str", required=True, choices=sorted(TOPOLOGIES)),
            cables=dict(type="list", elements="raw", default=[]),
            pool=dict(type="str", default=DEFAULT_POOL),
            mtu=dict(type="int"),
            management_networks=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    if NETADDR_ERROR:
        module.fail_json(msg=missing_required_lib("netaddr"), exception=NETADDR_ERROR)
    p = module.params
    try:
        fabric = plan_fabric(p["nodes"], p["topology"], cables=p["cables"], pool=p["pool"], mtu=p["mtu"],
                             management_networks=p["management_networks"])
    except PlanError as exc:
        module.fail_json(msg=str(exc), error=exc.as_dict())
    module.exit_json(changed=False, fabric=fabric)


if __name__ == "__main__":
    main()
