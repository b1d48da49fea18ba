# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every backend module answers. The planner asks these questions and never tests a backend's name.

A backend module owns everything about its backend: what it loads and runs on, the shapes it can take, the memory and
speed of a shape and why a shape cannot work, the ports its nodes open to each other, the services each node runs
(unit names, defined here once) and, once its role gives it its options, the exact command line and environment of
every service (``deploy``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import model_weight_bytes
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.perf import (
    MOE_EFFICIENCY, Request, decode_step, sig)
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node

Shape = Tuple[int, int]                      # (tensor parallel, pipeline parallel)
Components = Dict[str, float]                # decode/prefill compute, limit and communication, in seconds


class Backend:
    """One inference backend. Subclasses set the class attributes and override what differs."""

    name = ""
    title = ""                               # how people write it
    quants: Tuple[str, ...] = ()             # the quantizations it loads
    accelerators: Tuple[str, ...] = ()       # the node accelerators it runs on
    containers = False                       # whether its services run in containers (the runtime stage)
    peer_ports: Dict[str, str] = {}          # named TCP ports (or ranges) its nodes open to cluster peers
    units: Dict[str, str] = {}               # service -> systemd unit, every unit the backend may install
    firewall_tables: Tuple[str, ...] = ()    # nftables tables of its own (closed by its role's absent tasks)
    shape_rule = ""                          # how it splits a model, for messages
    api_endpoint = "completions"             # the OpenAI route verify probes: completions or chat (/v1/chat/...)
    # calibrated constants (change them only with the calibration table, which tests print)
    decode_efficiency: Dict[str, float] = {}
    prefill_efficiency: Dict[str, float] = {}
    kv_bytes = 2.0                           # bytes per KV-cache element
    runtime_overhead_gb = 0.0                # per node, besides weights and KV cache
    step_overhead_us = 0.0                   # per decode step
    # share of compute_tflops a decode step's per-token work reaches, by accelerator (the rest: 0.30)
    decode_compute_efficiency: Dict[str, float] = {}
    act_bytes = 2.0                          # bytes per activation element sent between nodes

    # --- shapes --------------------------------------------------------------------------------------------------
    def shapes(self, used: int) -> List[Shape]:
        """The (TP, PP) shapes it can take on ``used`` nodes, most tensor-parallel first."""
        raise NotImplementedError

    def default_shape(self, used: int) -> Shape:
        """The shape a published measurement on ``used`` nodes ran, when it does not say."""
        return self.shapes(used)[0]

    def problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        """Why this shape cannot run, in plain words (empty when it can)."""
        out = []
        if req.quant not in self.quants:
            out.append("%s cannot load %s weights (it loads %s)" % (self.name, req.quant, ", ".join(self.quants)))
        for n in nodes:
            if n.accelerator not in self.accelerators:
                out.append("%s needs a %s accelerator; %s (profile %s) has %s"
                           % (self.name, " or ".join(self.accelerators), n.name, n.profile, n.accelerator))
                break
        return out + self.shape_problems(tp, pp, nodes, req)

    def shape_problems(self, tp: int, pp: int, nodes: Sequence[Node], req: Request) -> List[str]:
        return []

    # --- memory and speed ----------------------------------------------------------------------------------------
    def memory(self, tp: int, pp: int, nodes: Sequence[Node],
               req: Request) -> Tuple[Dict[str, float], Dict[str, Any]]:
        """Bytes each node holds (weights share + KV cache share + overhead) and the settings the split implies."""
        raise NotImplementedError

    def kv_total_bytes(self, req: Request) -> float:
        m = req.model
        return float(m.kv_elements_per_token) * self.kv_bytes * req.context_tokens * req.concurrency

    def overhead_gb(self, node: Node) -> float:
        """The runtime's own memory on ``node``, besides weights and KV cache."""
        return self.runtime_overhead_gb

    def totals(self, req: Request) -> Tuple[float, float, float]:
        """Bytes of the whole model's weights, of the whole KV cache, and of the runtime's overhead on one node."""
        return model_weight_bytes(req.model, req.quant), self.kv_total_bytes(req), self.runtime_overhead_gb * 1e9

    def bandwidth(self, node: Node) -> float:
        """Bytes per second the engine this backend runs on reaches on ``node`` (the GPU's by default)."""
        return node.mem_bw_gbs * 1e9

    def node_step(self, node: Node, share: float, step: Mapping[str, float], req: Request) -> Tuple[float, float]:
        """Seconds ``node`` needs for ``share`` of a decode step - the larger of reading its bytes at the backend's
        efficiency and computing its FLOPs at the decode efficiency - and the least it could need at all (the fewest
        bytes at full bandwidth, the FLOPs at full compute): the step's time and its physical limit."""
        bw = self.bandwidth(node)
        tflops = node.compute_tflops * 1e12
        memory = share * step["total"] / (bw * self._efficiency(node, req))
        compute = share * step["flops"] / (tflops * self.decode_compute_efficiency.get(node.accelerator, 0.30))
        limit = max(share * step["min_total"] / bw, share * step["flops"] / tflops)
        return max(memory, compute), limit

    def compute(self, tp: int, nodes: Sequence[Node], req: Request, step: Mapping[str, float],
                settings: Mapping[str, Any]) -> Components:
        """Decode and prefill time on the nodes, without communication. Default: ``tp`` ranks work on every step at
        once (tensor parallel), bounded by the slowest node."""
        times = [self.node_step(n, 1.0 / tp, step, req) for n in nodes]
        pfe = {n.name: self.prefill_efficiency[n.accelerator] for n in nodes}
        tfl = {n.name: n.compute_tflops * 1e12 for n in nodes}
        return {
            "decode": max(t for t, _ in times),
            "limit": max(lim for _, lim in times),
            "prefill": self._prefill_flops(req) / (tp * min(tfl[n.name] * pfe[n.name] for n in nodes)),
            "prefill_floor": self._prefill_floor_bytes(req, step) / (tp * min(self.bandwidth(n) for n in nodes)),
        }

    def communication(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                      settings: Mapping[str, Any]) -> Tuple[float, float, List[str]]:
        """Seconds of communication per decode step and for the prefill, and what they are, in words."""
        return 0.0, 0.0, []

    def predict(self, tp: int, pp: int, nodes: Sequence[Node], req: Request,
                settings: Mapping[str, Any]) -> Tuple[Dict[str, Optional[float]], List[str]]:
        """Per-sequence and aggregate decode speed with ``req.concurrency`` sequences decoding together, time to
        first token when they all arrive at once, and the physical limits of the same batch."""
        c = req.concurrency
        step = decode_step(req.model, req.quant, c, req.prompt_tokens, self.kv_bytes)
        t = self.compute(tp, nodes, req, step, settings)
        comm, pre_comm, notes = self.communication(tp, pp, nodes, req, settings)
        step_s = t["decode"] + comm + self.step_overhead_us * 1e-6
        ttft = max(t["prefill"], t["prefill_floor"]) + pre_comm + step_s
        pred: Dict[str, Optional[float]] = {
            "decode_tok_s": sig(1.0 / step_s),
            "aggregate_tok_s": sig(c / step_s),
            "ttft_s": sig(ttft, up=True),
            "physical_limit_tok_s": sig(1.0 / t["limit"], up=True),
            "aggregate_limit_tok_s": sig(c / t["limit"], up=True),
            "bytes_per_token_gb": sig(step["total"] / c / 1e9, up=True),
        }
        if c > 1:
            notes.append(self._batch_note(req, step, t, step_s))
        return pred, notes

    def _batch_note(self, req: Request, step: Mapping[str, float], t: Mapping[str, float], step_s: float) -> str:
        m, c = req.model, req.concurrency
        what = "%.1f GB of weights" % (step["weights"] / 1e9)
        if m.is_moe:
            what += " (about %.0f of %d experts per layer)" % (step["experts"], m.experts)
        return ("batch of %d: a step reads %s once for all and %.2f GB of KV cache, %.0f ms a step; %.1f tok/s "
                "aggregate, at most %.1f (physical limit of the batch)"
                % (c, what, step["kv"] / 1e9, step_s * 1e3, c / step_s, c / t["limit"]))

    def _efficiency(self, node: Node, req: Request) -> float:
        moe = MOE_EFFICIENCY if req.model.is_moe else 1.0
        return self.decode_efficiency[node.accelerator] * moe

    @staticmethod
    def _prefill_flops(req: Request) -> float:
        return 2.0 * req.model.params_active_b * 1e9 * req.prompt_tokens * req.concurrency

    @staticmethod
    def _prefill_floor_bytes(req: Request, step: Mapping[str, float]) -> float:
        return model_weight_bytes(req.model, req.quant) if req.model.is_moe else step["weights"]

    # --- what the nodes run --------------------------------------------------------------------------------------
    def services(self, plan: Mapping[str, Any],
                 fabric: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """host -> service -> ``{unit, port, bind}``: what each node of the plan (its ``head``, ``workers``, ``api``
        and ``settings``) runs and where it listens."""
        raise NotImplementedError

    def head_and_workers(self, plan: Mapping[str, Any], fabric: Optional[Mapping[str, Any]], head_service: str,
                         worker_service: str, worker_port: Optional[int]) -> Dict[str, Dict[str, Dict[str, Any]]]:
        """The common layout: the head serves the API on its address, every worker one service on its fabric
        address."""
        api = plan["api"]
        out: Dict[str, Dict[str, Dict[str, Any]]] = {plan["head"]: {head_service: {
            "unit": self.units[head_service], "port": api["port"], "bind": api["address"]}}}
        for w in plan["workers"]:
            out[w] = {worker_service: {"unit": self.units[worker_service], "port": worker_port,
                                       "bind": fabric_address(fabric, w)}}
        return out

    def deploy(self, plan: Mapping[str, Any], fabric: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
               options: Mapping[str, Any]) -> Dict[str, Any]:
        """The exact command line and environment of every service, from the role's options. Returns
        ``{services: {host: {service: {argv, env}}}, ...}`` with whatever else the role applies (builds, ...)."""
        raise PlanError("%s has no role in this collection yet, so nothing computes how to run it" % self.name,
                        variable="llmlab_backend", fix="choose a deployable backend or llmlab_backend: auto")

    def footprint(self) -> Dict[str, Any]:
        """Everything of this backend that a node may hold, so that another plan can remove it."""
        return {"units": dict(self.units), "firewall_tables": list(self.firewall_tables),
                "peer_ports": dict(self.peer_ports), "containers": self.containers}


def fabric_address(fabric: Optional[Mapping[str, Any]], host: str) -> Optional[str]:
    """A node's fabric address (the address its cluster services bind to), or None without a fabric plan."""
    if not fabric:
        return None
    try:
        return str(fabric["hosts"][host]["node_address"])
    except KeyError:
        raise PlanError("host %s is in the parallel plan but not in the fabric plan" % host, host=host,
                        variable="llmlab_nodes", fix="compute both plans from the same inventory group")


def host_option(hostvars: Mapping[str, Mapping[str, Any]], host: str, prefix: str, key: str,
                options: Mapping[str, Any]) -> Any:
    """A role option for one host: the host's ``<prefix><key>`` when the inventory sets it, else the role's."""
    value = (hostvars.get(host) or {}).get(prefix + key)
    return options.get(key) if value in (None, "") else value


# --- builds from source (backends whose role compiles on the nodes) ------------------------------------------------

def build_id(inputs: Mapping[str, Any]) -> str:
    """A short, stable hash of everything that changes the binaries."""
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def group_builds(nodes: Sequence[Mapping[str, Any]], same: Mapping[str, str], what: str, why: str,
                 reference: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Group nodes by what changes their binaries: each group is built once, on its first node, and copied to the
    others.

    ``nodes``: in the plan's order (the head first), each ``{name, inputs}`` plus the keys of ``same``; ``same``:
    key -> the inventory variable that sets it, for what must be equal on every node (the version, the source):
    a node that differs from ``reference`` (default: the head, the first node) raises a PlanError naming it, the
    variable and ``why``.

    Returns ``{builds: {id: {inputs, builder, hosts}}, hosts: {name: id}}``."""
    builds: Dict[str, Dict[str, Any]] = {}
    hosts: Dict[str, str] = {}
    ref = reference if reference is not None else (nodes[0] if nodes else {})
    for n in nodes:
        name = n["name"]
        for key, variable in same.items():
            if n.get(key) != ref.get(key):
                raise PlanError("%s would build %s %s %r, the head builds %r: %s"
                                % (name, what, key.replace("_", " "), n.get(key), ref.get(key), why),
                                host=name, variable=variable,
                                fix="set %s once for the whole cluster (group_vars), not per host" % variable)
        bid = build_id(n["inputs"])
        b = builds.setdefault(bid, {"inputs": dict(n["inputs"]), "builder": name, "hosts": []})
        b["hosts"].append(name)
        hosts[name] = bid
    return {"builds": builds, "hosts": hosts}


def node_build_facts(hostvars: Mapping[str, Mapping[str, Any]], name: str) -> Dict[str, Any]:
    """What of a node's facts (``llmlab_node``, from preflight) changes a build: architecture and OS."""
    facts = hostvars[name].get("llmlab_node") or {}
    os_ = facts.get("os") or {}
    return {"arch": facts.get("arch"),
            "os": "%s-%s" % (os_.get("id"), os_.get("version_id")) if os_ else None}


def build_nodes(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]], prefix: str,
                options: Mapping[str, Any], keys: Sequence[str]) -> List[Dict[str, Any]]:
    """The nodes a plan uses (the head first), each with what changes its build: ``arch`` and ``os`` from its facts
    (preflight), ``profile_accelerator`` from its hardware profile, and every option of ``keys`` (the host's
    ``<prefix><key>`` when the inventory sets it, else the role's)."""
    from ansible_collections.llmlab.cluster.plugins.module_utils.render import inventory_nodes
    from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import resolve_node

    used = list(plan.get("nodes_used") or [])
    if not used:
        raise PlanError("the plan uses no node", variable="llmlab_nodes", fix="fix the plan's errors first")
    out = []
    for spec in inventory_nodes(hostvars, used):
        name = spec["name"]
        node: Dict[str, Any] = {"name": name, "profile_accelerator": resolve_node(spec).accelerator,
                                **node_build_facts(hostvars, name)}
        node.update((k, host_option(hostvars, name, prefix, k, options)) for k in keys)
        out.append(node)
    return out


def node_threads(hostvars: Mapping[str, Mapping[str, Any]], host: str, prefix: str, options: Mapping[str, Any],
                 per: str = "cpus") -> int:
    """A service's CPU threads on ``host``: the host's or the role's ``<prefix>threads`` when above 0, else one per
    CPU of the node (``per="cpus"``) or per physical core (``per="cores"``; facts without cores count CPUs), from its
    facts (preflight)."""
    threads = int(host_option(hostvars, host, prefix, "threads", options) or 0)
    if threads > 0:
        return threads
    facts = (hostvars.get(host) or {}).get("llmlab_node") or {}
    count = facts.get(per) or facts.get("cpus")
    if not count:
        raise PlanError("no CPU count for %s: its facts (llmlab.cluster.node_facts) are missing" % host, host=host,
                        variable=prefix + "threads", fix="run preflight first, or set %sthreads" % prefix)
    return int(count)

