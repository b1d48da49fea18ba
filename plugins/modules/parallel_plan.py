#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: parallel_plan
short_description: Choose the backend and the model split, check memory and predict speed, on the controller
version_added: "0.1.0"
description:
  - Enumerates every candidate plan of every backend in the collection's registry (each backend module under
    C(plugins/module_utils/backends) gives its shapes - tensor x pipeline parallel, a layer split, a power-of-two
    node count - its memory, its speed and its rules) for the cluster's nodes, model, quantization, context and
    concurrency; computes the memory each node needs and the predicted decode speed and time to first token; and
    ranks them.
  - Candidates that cannot work are kept in C(candidates) with the reason they were rejected; candidates of a
    backend that is not deployable (no role) are kept with that reason and ranked after the deployable ones.
  - The chosen plan also says what every node runs (C(services)), its named ports and where the API is.
  - Pure computation on the controller; it reads and changes nothing on any host.
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
      - The cluster's nodes in inventory order, the first is the head. Each a dict with C(name), C(profile) and
        optionally C(memory_gb), C(usable_memory_gb), C(mem_bw_gbs), C(compute_tflops), C(accelerator).
    type: list
    elements: dict
    required: true
  topology:
    description: How the nodes are connected.
    type: str
    choices: [single, direct, ring, switch]
    default: single
  link:
    description:
      - The fabric link, by name (C(cx7_200g), C(eth_5g), C(eth_10g), C(usb4_10g), C(veth)) or a dict with C(gbps)
        and C(latency_us). Defaults to the head's profile link for the topology.
    type: raw
  model:
    description: A catalog id or alias (any case), a dict of dimensions, or the path of a Hugging Face config.json.
    type: raw
    required: true
  quant:
    description: Weight quantization, e.g. C(bf16), C(fp8), C(nvfp4), C(mxfp4), C(q4_k_m), C(q40).
    type: str
    default: bf16
  backend:
    description:
      - A backend of the registry (docs/backends.md lists them), C(auto) to let the planner choose among the
        deployable ones, or C(none) to serve nothing (every backend's services are removed, the fabric stays).
    type: str
    default: auto
  deployable:
    description:
      - The backends that can be deployed (those with a role; the plan role passes them). Omitted, every backend
        counts as deployable, for planning ahead.
    type: list
    elements: str
  fabric:
    description: The C(fabric) of M(llmlab.cluster.fabric_plan), whose node addresses the services bind to.
    type: dict
  tensor_parallel:
    description: Pin the tensor-parallel size.
    type: int
  pipeline_parallel:
    description: Pin the pipeline-parallel size (for llama.cpp RPC, the number of nodes in the layer split).
    type: int
  context_tokens:
    description: Context length each sequence's KV cache is sized for.
    type: int
    default: 8192
  prompt_tokens:
    description: Prompt length used for the time to first token and for the KV cache read while decoding.
    type: int
    default: 512
  concurrency:
    description: Sequences served at once.
    type: int
    default: 1
  concurrency_curve:
    description:
      - Concurrencies the chosen plan is also predicted at (C(plan.predicted_curve)), the curve a benchmark sweep
        is drawn against.
    type: list
    elements: int
    default: [1, 2, 4, 8, 16, 32]
  fail_on_no_fit:
    description: Fail when no candidate fits. When false, the best candidate is returned with C(fits=false).
    type: bool
    default: true
  api_address:
    description: Where the head serves clients; empty takes the head's management address (C(ansible_host)).
    type: str
  api_port:
    description: The head's API port.
    type: int
    default: 8080
"""

EXAMPLES = r"""
- name: Can three GB10 boxes serve Qwen3-235B in FP8?
  llmlab.cluster.parallel_plan:
    topology: ring
    link: cx7_200g
    model: Qwen/Qwen3-235B-A22B
    quant: fp8
    nodes:
      - {name: gx10-a, profile: gb10}
      - {name: gx10-b, profile: gb10}
      - {name: gx10-c, profile: gb10}
  delegate_to: localhost
  run_once: true
  register: parallel
"""

RETURN = r"""
plan:
  description: The chosen plan, with every candidate.
  returned: success
  type: dict
  contains:
    backend:
      description: The chosen backend.
      type: str
    tensor_parallel:
      description: Tensor-parallel size.
      type: int
    pipeline_parallel:
      description: Pipeline-parallel size (for llama.cpp RPC, the nodes in the layer split).
      type: int
    nodes_used:
      description: The nodes the plan uses, head first.
      type: list
      elements: str
    head:
      description: The node that serves the API.
      type: str
    workers:
      description: The other nodes the plan uses.
      type: list
      elements: str
    fits:
      description: Whether every node has the memory the plan needs.
      type: bool
    memory_per_node_gb:
      description: Memory each node needs (weights share + KV cache + runtime overhead), by node name.
      type: dict
    predicted:
      description: C(decode_tok_s) per sequence, C(aggregate_tok_s), C(ttft_s), C(physical_limit_tok_s).
      type: dict
    settings:
      description: The settings the backend's split implies (docs/backends.md; e.g. a layer split by node with
        the device order, tensor split and offloaded layer count of that backend's own terms).
      type: dict
    api:
      description: Where the head serves clients - C(host), C(address), C(port), C(url) (null without an address),
        C(served_model_name) (the model id clients send) and C(key_required); null when nothing is served.
      type: dict
    services:
      description: What every node of the plan runs - host, then service name, then C(unit) (the systemd unit),
        C(port) and C(bind) (the address it listens on).
      type: dict
    ports:
      description: The plan's named ports (the backend's peer ports and C(api)).
      type: dict
    peer_ports:
      description: TCP ports or ranges the nodes open to cluster peers (the fabric firewall admits peers only).
      type: list
      elements: str
    containers:
      description: Whether the backend runs in containers (the container runtime stage runs for it).
      type: bool
    deployable_backends:
      description: The backends that have a role.
      type: list
      elements: str
    backends:
      description: Every backend of the registry with what a node may hold of it (C(units), C(firewall_tables),
        C(peer_ports), C(containers)) and whether it is C(deployable), so that another plan can remove it.
      type: dict
    reasons:
      description: Why, in plain words.
      type: list
      elements: str
    candidates:
      description: Every candidate in the same shape, best first, rejected ones last with the reason.
      type: list
      elements: dict
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import netaddr  # noqa: F401  (the planner's address arithmetic)
    from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
    NETADDR_ERROR = None
except ImportError:
    NETADDR_ERROR = traceback.format_exc()

from ansible_collections.llmlab.cluster.plugins.module_utils.constants import (
    DEFAULT_API_PORT, DEFAULT_CONTEXT, DEFAULT_CURVE, DEFAULT_PROMPT, TOPOLOGIES)
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="list", elements="dict", required=True),
            topology=dict(type="str", default="single", choices=sorted(TOPOLOGIES)),
            link=dict(type="raw"),
            model=dict(type="raw", required=True),
            quant=dict(type="str", default="bf16"),
            backend=dict(type="str", default="auto"),
            deployable=dict(type="list", elements="str"),
            fabric=dict(type="dict"),
            tensor_parallel=dict(type="int"),
            pipeline_parallel=dict(type="int"),
            context_tokens=dict(type="int", default=DEFAULT_CONTEXT),
            prompt_tokens=dict(type="int", default=DEFAULT_PROMPT),
            concurrency=dict(type="int", default=1),
            concurrency_curve=dict(type="list", elements="int", default=list(DEFAULT_CURVE)),
            fail_on_no_fit=dict(type="bool", default=True),
            api_address=dict(type="str"),
            api_port=dict(type="int", default=DEFAULT_API_PORT),
        ),
        supports_check_mode=True,
    )
    if NETADDR_ERROR:
        module.fail_json(msg=missing_required_lib("netaddr"), exception=NETADDR_ERROR)
    p = module.params
    try:
        plan = plan_parallel(p["nodes"], topology=p["topology"], link=p["link"], model=p["model"], quant=p["quant"],
                             backend=p["backend"], tensor_parallel=p["tensor_parallel"],
                             pipeline_parallel=p["pipeline_parallel"], context_tokens=p["context_tokens"],
                             prompt_tokens=p["prompt_tokens"], concurrency=p["concurrency"],
                             fail_on_no_fit=p["fail_on_no_fit"], api_address=p["api_address"] or None,
                             api_port=p["api_port"], deployable=p["deployable"], fabric=p["fabric"],
                             curve=p["concurrency_curve"])
    except PlanError as exc:
        module.fail_json(msg=str(exc), error=exc.as_dict())
    module.exit_json(changed=False, plan=plan)


if __name__ == "__main__":
    main()
