# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a computed plan into what templates and backends need: inventory nodes, flag lists, environments, tables.

Nothing here re-plans: every function reads the ``fabric`` and ``plan`` dicts the planner returned.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any, Dict, List, Mapping, Sequence

from ansible_collections.llmlab.cluster.plugins.module_utils import backends
from ansible_collections.llmlab.cluster.plugins.module_utils.contract import facts_errors, inventory_errors, messages
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

def inventory_nodes(hostvars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str]) -> List[Dict[str, Any]]:
    """Node dicts for the planner from inventory hosts: name, profile, overrides, management address."""
    out = []
    for host in hosts:
        hv = hostvars[host]
        overrides = hv.get("llmlab_profile_overrides") or {}
        if not isinstance(overrides, Mapping):
            raise PlanError("llmlab_profile_overrides must be a dict, got %r" % (overrides,), host=host,
                            variable="llmlab_profile_overrides", fix="write it as a YAML mapping, e.g. {memory_gb: 64}")
        node: Dict[str, Any] = dict(overrides)
        node["name"] = host
        node["profile"] = hv.get("llmlab_profile")
        if node["profile"] is None:
            raise PlanError("no hardware profile", host=host, variable="llmlab_profile",
                            fix="set llmlab_profile: gb10, strix_halo, generic or sim for this host")
        if hv.get("llmlab_mtu") is not None:
            node["mtu"] = hv["llmlab_mtu"]
        if hv.get("llmlab_fabric_address") is not None:
            node["fabric_address"] = hv["llmlab_fabric_address"]
        address = hv.get("ansible_host")
        try:
            node["management_address"] = str(ipaddress.ip_address(address)) if address else None
        except ValueError:
            node["management_address"] = None  # a DNS name: the plan cannot check it against the pool
        out.append(node)
    return out


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    return [_row(header, widths), _row(["-" * w for w in widths], widths)] + [_row(r, widths) for r in rows]


def plan_table(fabric: Mapping[str, Any], plan: Mapping[str, Any]) -> List[str]:
    """The plan as readable lines: fabric, candidates, memory per node, the choice and why."""
    lines = ["fabric: %s, routing %s, pool %s" % (fabric["topology"], fabric["routing"], fabric["pool"])]
    lines += _table(["node", "fabric address", "forwarding", "interfaces"],
                    [[n, fabric["hosts"][n]["node_address"], "yes" if fabric["hosts"][n]["forwarding"] else "no",
                      ", ".join("%s %s" % (i["name"], i["address"]) for i in fabric["hosts"][n]["interfaces"]) or "-"]
                     for n in fabric["nodes"]])
    model = plan["model"]["id"]
    lines.append("")
    lines.append("model %s in %s, context %d, prompt %d, concurrency %d" % (
        model, plan["quant"], plan["context_tokens"], plan["prompt_tokens"], plan["concurrency"]))
    rows = []
    for c in plan["candidates"]:
        pred = c["predicted"]
        status = "rejected" if c["rejected"] else ("fits" if c["fits"] else "no fit")
        if not c.get("deployable", True):
            status += ", no role"
        mem = max(c["memory_per_node_gb"].values()) if c["memory_per_node_gb"] else None
        rows.append([c["backend"], str(c["tensor_parallel"]), str(c["pipeline_parallel"]), str(len(c["nodes_used"])),
                     status, "-" if mem is None else "%.1f" % mem,
                     "-" if pred["decode_tok_s"] is None else "%.1f" % pred["decode_tok_s"],
                     "-" if pred["ttft_s"] is None else "%.2f" % pred["ttft_s"],
                     c["reasons"][0] if c["reasons"] else ""])
    if rows:
        lines += _table(["backend", "TP", "PP", "nodes", "status", "max GB/node", "tok/s", "TTFT s", "why"], rows)
        lines.append("")
        lines.append("memory per node (GB): " + ", ".join(
            "%s %.1f of %.1f" % (n, gb, plan["usable_memory_gb"][n]) for n, gb in plan["memory_per_node_gb"].items()))
    lines += ["why: " + r for r in plan["reasons"]]
    return lines


_LOSS = re.compile(r"(\d+(?:\.\d+)?)% packet loss")
_RTT = re.compile(r"= [\d.]+/([\d.]+)/")


def ping_matrix(hostvars: Mapping[str, Mapping[str, Any]], nodes: Sequence[str],
                register: str = "__fabric_pings") -> List[str]:
    """A table of the ping mesh: row pings column; each cell is the loss and the average round trip."""
    cells: Dict[str, Dict[str, str]] = {}
    for src in nodes:
        results = (hostvars[src].get(register) or {}).get("results", [])
        row = cells.setdefault(src, {})
        for r in results:
            out = str(r.get("stdout", ""))
            loss = _LOSS.search(out)
            rtt = _RTT.search(out)
            if loss is None:
                row[r["item"]] = "error"
            else:
                row[r["item"]] = "%s%% %s" % (loss.group(1), ("%.2fms" % float(rtt.group(1))) if rtt else "-")
    header = ["from \\ to"] + list(nodes)
    rows = [[src] + [("." if dst == src else cells.get(src, {}).get(dst, "?")) for dst in nodes] for src in nodes]
    return _table(header, rows)


def contract_errors(hostvars: Mapping[str, Mapping[str, Any]], groups: Mapping[str, Sequence[str]],
                    group: str = "llmlab_nodes") -> List[str]:
    """The inventory contract's violations as messages (empty when the inventory is sound)."""
    return messages(inventory_errors(groups, hostvars, group))


def facts_contract_errors(plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """What the nodes' facts (node_facts) contradict in the plan, as messages."""
    facts = {h: hostvars[h]["llmlab_node"] for h in plan["fabric"]["nodes"] if "llmlab_node" in hostvars[h]}
    return messages(facts_errors(plan["fabric"], plan["plan"], facts, plan["plan"].get("usable_memory_gb", {})))


def backend_deploy(llmlab_plan: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]],
                   options: Mapping[str, Any]) -> Dict[str, Any]:
    """The published plan with what its backend's role applies: the services the backend's answer lists (with the
    role's options a node may run other services than the plan foresaw, e.g. another vLLM executor), each with its
    ``argv`` and ``env`` merged into what the plan said of it, as ``plan.services``; the rest of the answer (builds,
    ...) as ``plan.deploy``. The backend module computes it from the role's ``options`` and the inventory (per-host
    options, the nodes' facts)."""
    plan = dict(llmlab_plan["plan"])
    out = backends.get(plan["backend"]).deploy(plan, llmlab_plan["fabric"], hostvars, options)
    services = {h: {name: dict((plan["services"].get(h) or {}).get(name) or {}, **svc) for name, svc in per.items()}
                for h, per in out["services"].items()}
    plan["services"] = services
    plan["deploy"] = {k: v for k, v in out.items() if k != "services"}
    return dict(llmlab_plan, plan=plan)


def deployable_backends(roles_dir: str) -> List[str]:
    """The registry's backends that have a role under ``roles_dir`` (``<name>/tasks/main.yml``): the deployable
    ones, in the registry's order."""
    return [n for n in backends.NAMES if os.path.isfile(os.path.join(roles_dir, n, "tasks", "main.yml"))]
