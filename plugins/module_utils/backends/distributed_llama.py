# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""distributed-llama: every node holds 1/N of every layer (tensor parallel on the CPU cores), N a power of two.

Planned here; its role (``roles/distributed_llama``) has not landed yet, so the planner marks it not deployable.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend, Shape, fabric_address
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import (
    Request, is_power_of_two, link_bytes_per_s)
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

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
    units = {"dllama-worker": "llmlab-dllama-worker.service", "dllama-api": "llmlab-dllama-api.service"}
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

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        out = []
        if not is_power_of_two(tp):
            out.append("distributed-llama needs a power-of-two node count, not %d" % tp)
        if tp > req.model.kv_heads:
            out.append("distributed-llama cannot use more nodes (%d) than the model's %d KV heads"
                       % (tp, req.model.kv_heads))
        return out

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
        return self.head_and_workers(plan, fabric, "dllama-api", "dllama-worker", int(self.peer_ports["worker"]))


def workers_argument(workers: Sequence[str], fabric: Mapping[str, Any], port: int) -> List[str]:
    """distributed-llama ``--workers`` arguments (space-separated on the command line), in the plan's order."""
    return ["%s:%d" % (fabric_address(fabric, w), port) for w in workers]


BACKEND = DistributedLlama()
