# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""vLLM on a Ray cluster: tensor parallel within a pipeline stage, pipeline stages one after another.

Planned here; its role (``roles/vllm_ray``) has not landed yet, so the planner marks it not deployable.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend, Shape, fabric_address
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import Request, allreduce_s, hop_s
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

ALLREDUCE_FIXED_US = 40.0        # NCCL launch + sync per all-reduce (28-40 us measured between two GB10s)
PP_HOP_FIXED_US = 200.0          # pipeline stage hand-over (Ray compiled graph / NCCL send-recv)


class VllmRay(Backend):
    name = "vllm_ray"
    title = "vLLM on Ray"
    quants = ("bf16", "fp16", "fp8", "nvfp4", "mxfp4")
    accelerators = ("cuda", "rocm")
    containers = True
    # Ray's ports are pinned so that a firewall can name them (GCS, dashboard, client, workers, node/object
    # managers) and torch.distributed's store
    peer_ports = {"gcs": "6379", "dashboard": "8265", "client": "10001", "workers": "10002-10100",
                  "node_manager": "20380", "object_manager": "20381", "torch_store": "29500"}
    units = {"ray-head": "llmlab-ray-head.service", "ray-worker": "llmlab-ray-worker.service",
             "vllm": "llmlab-vllm.service"}
    shape_rule = "vLLM takes any TP x PP"
    decode_efficiency = {"cuda": 0.80, "rocm": 0.60}
    prefill_efficiency = {"cuda": 0.50, "rocm": 0.30}
    kv_bytes = 2.0
    runtime_overhead_gb = 3.0
    step_overhead_us = 300.0
    act_bytes = 2.0

    def shapes(self, used: int) -> List[Shape]:
        return [(t, used // t) for t in range(used, 0, -1) if used % t == 0]

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        m = req.model
        out = []
        if m.heads % tp:
            out.append("TP=%d does not divide the %d attention heads" % (tp, m.heads))
        if pp > 1 and not m.pp_supported:
            out.append("vLLM has no pipeline parallelism for %s (%s)" % (m.id, m.architecture))
        if pp > m.layers:
            out.append("PP=%d is more than the %d layers" % (pp, m.layers))
        return out

    def memory(self, tp: int, pp: int, nodes: Sequence[Node],
               req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
        m = req.model
        weights, kv_total, overhead = self.totals(req)
        # MLA keeps one latent per layer on every rank; otherwise a rank keeps its KV heads (at least one of them)
        kv_frac = 1.0 if m.kv_dim_per_layer else max(1.0 / tp, 1.0 / m.kv_heads)
        mem = {n.name: weights / (tp * pp) + kv_total / pp * kv_frac + overhead for n in nodes}
        return mem, {"distributed_executor_backend": "ray" if tp * pp > 1 else "mp",
                     "kv_cache_fraction_per_rank": round(kv_frac, 4)}

    def communication(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                      settings: Mapping[str, Any]) -> Tuple[float, float, List[str]]:
        m, c, link = req.model, req.concurrency, req.link
        size = c * m.hidden * self.act_bytes
        comm = allreduce_s(tp, m.layers, size, link, ALLREDUCE_FIXED_US)
        hops = (pp - 1) * hop_s(size, link, 1, PP_HOP_FIXED_US)
        pre = req.prompt_tokens * size
        pre_comm = allreduce_s(tp, m.layers, pre, link, ALLREDUCE_FIXED_US) \
            + (pp - 1) * hop_s(pre, link, 1, PP_HOP_FIXED_US)
        notes = []
        if tp > 1:
            notes.append("TP=%d: each node reads 1/%d of every layer; %d all-reduces per token cost %.2f ms"
                         % (tp, tp, 2 * m.layers, comm * 1e3))
        if pp > 1:
            notes.append("PP=%d: %d stage hand-overs per token cost %.2f ms" % (pp, pp - 1, hops * 1e3))
        return comm + hops, pre_comm, notes

    def services(self, head: str, workers: Sequence[str], fabric: Optional[Mapping[str, Any]],
                 api: Mapping[str, Any]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        gcs = int(self.peer_ports["gcs"])
        out: Dict[str, Dict[str, Dict[str, Any]]] = {head: {
            "ray-head": {"unit": self.units["ray-head"], "port": gcs, "bind": fabric_address(fabric, head)},
            "vllm": {"unit": self.units["vllm"], "port": api["port"], "bind": api["address"]}}}
        for w in workers:
            out[w] = {"ray-worker": {"unit": self.units["ray-worker"], "port": None, "bind": fabric_address(fabric, w)}}
        return out


def comm_env(fabric: Mapping[str, Any], host: str) -> Dict[str, str]:
    """The NCCL / Gloo / Ray environment a node needs before ``ray start`` (vllm#6803)."""
    h = fabric["hosts"].get(host)
    if h is None:
        raise PlanError("host %s is not in the fabric plan" % host, host=host, variable="llmlab_nodes",
                        fix="add the host to the group llmlab_nodes")
    ifaces = [i["name"] for i in h["interfaces"]]
    env = {
        "VLLM_HOST_IP": h["node_address"],
        "RAY_memory_monitor_refresh_ms": "0",
    }
    if ifaces:
        env["NCCL_SOCKET_IFNAME"] = ",".join(ifaces)
        env["GLOO_SOCKET_IFNAME"] = ifaces[0]
        env["TP_SOCKET_IFNAME"] = ifaces[0]
    if h.get("rdma_devices"):
        env["NCCL_IB_HCA"] = ",".join(h["rdma_devices"])
        env["UCX_NET_DEVICES"] = ",".join("%s:1" % d for d in h["rdma_devices"])
    return env


BACKEND = VllmRay()
