# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory contract, checked on the controller before any host is contacted, and the checks that need each
node's facts. Every problem is a PlanError naming the host, the variable and the fix; all of them are reported at
once rather than the first only."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils import backends
from ansible_collections.llmlab.cluster.plugins.module_utils.constants import TOPOLOGIES
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import PROFILES, profile_names

# variable -> (accepted Python types, what to write)
_TYPES: Dict[str, Any] = {
    "llmlab_topology": ((str,), "one of %s" % ", ".join(sorted(TOPOLOGIES))),
    "llmlab_backend": ((str,), "one of %s" % ", ".join(backends.CHOICES)),
    "llmlab_model": ((str, dict), "a catalog id, a dict of dimensions or a config.json path"),
    "llmlab_quant": ((str,), "a quantization name such as fp8 or q4_k_m"),
    "llmlab_cables": ((list,), "a list of [host:port, host:port] pairs"),
    "llmlab_fabric_pool": ((str,), "a network such as 10.213.0.0/24"),
    "llmlab_management_networks": ((list,), "a list of networks such as [192.168.1.0/24]"),
    "llmlab_profile": ((str,), "one of %s" % ", ".join(profile_names())),
    "llmlab_profile_overrides": ((dict,), "a mapping such as {usable_memory_gb: 100}"),
    "llmlab_mtu": ((int,), "a whole number such as 9000"),
    "llmlab_tensor_parallel": ((int,), "a whole number"),
    "llmlab_context_tokens": ((int,), "a whole number"),
    "llmlab_prompt_tokens": ((int,), "a whole number"),
    "llmlab_concurrency": ((int,), "a whole number"),
    "llmlab_concurrency_curve": ((list,), "a list of whole numbers such as [1, 2, 4, 8]"),
}
_TYPE_NAMES = {str: "a string", dict: "a mapping", list: "a list", int: "a whole number"}


def _is_a(value: Any, types: Sequence[type]) -> bool:
    """Whether an inventory value is of one of these types. A whole number may come as its digits: that is what
    ``-e llmlab_tensor_parallel=2`` on the command line gives (Ansible's modules convert it as their int options do)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, tuple(types)):
        return True
    return int in types and isinstance(value, str) and value.strip().isdigit()


def _type_name(value: Any) -> str:
    """The user's word for a value's type (not Ansible's wrapper classes, such as a tagged string)."""
    names: List[Tuple[type, str]] = [(bool, "a boolean"), (str, "a string"), (dict, "a mapping"), (list, "a list"),
                                     (int, "a whole number"), (float, "a number with a fraction")]
    for t, name in names:
        if isinstance(value, t):
            return name
    return type(value).__name__


def inventory_errors(groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]],
                     group: str = "llmlab_nodes") -> List[PlanError]:
    """Everything wrong with the inventory that can be told without contacting a host."""
    errors: List[PlanError] = []
    hosts = list(groups.get(group) or [])
    if not hosts:
        return [PlanError("the inventory has no group %s, or it is empty" % group, variable=group,
                          fix="put the cluster's hosts in a group named %s (the first is the head)" % group)]
    seen: Dict[str, str] = {}
    for host in hosts:
        hv = hostvars[host]
        for var, (types, how) in _TYPES.items():
            if var not in hv or hv[var] is None:
                continue
            value = hv[var]
            if not _is_a(value, types):
                errors.append(PlanError("%s is %s (%r), not %s" % (var, _type_name(value), str(value),
                                                                   " or ".join(_TYPE_NAMES[t] for t in types)),
                                        host=host, variable=var, fix="write %s" % how))
        profile = hv.get("llmlab_profile")
        if profile is None:
            errors.append(PlanError("no hardware profile", host=host, variable="llmlab_profile",
                                    fix="set llmlab_profile: %s" % " | ".join(profile_names())))
        elif isinstance(profile, str) and profile not in PROFILES:
            errors.append(PlanError("unknown hardware profile %r" % profile, host=host, variable="llmlab_profile",
                                    fix="use one of: %s" % ", ".join(profile_names())))
        address = str(hv.get("ansible_host") or host)
        if address in seen:
            errors.append(PlanError("%s and %s are the same machine (%s): a node is listed twice"
                                    % (seen[address], host, address), host=host, variable="ansible_host",
                                    fix="list every box once in %s" % group))
        else:
            seen[address] = host
    if "llmlab_model" not in hostvars[hosts[0]]:
        errors.append(PlanError("no model to serve", host=hosts[0], variable="llmlab_model",
                                fix="set llmlab_model, e.g. Qwen/Qwen3-235B-A22B, in group_vars"))
    return errors


def facts_errors(fabric: Mapping[str, Any], plan: Mapping[str, Any], facts: Mapping[str, Mapping[str, Any]],
                 usable: Mapping[str, float]) -> List[PlanError]:
    """What the nodes' own facts contradict: planned ports they lack, memory they do not have, mixed
    architectures where the backend runs one image everywhere."""
    errors: List[PlanError] = []
    for host, h in fabric["hosts"].items():
        f = facts.get(host)
        if f is None:
            errors.append(PlanError("no facts from this host", host=host, variable="ansible_host",
                                    fix="make the host reachable over SSH"))
            continue
        have = {n["name"] for n in f.get("nics", [])}
        for iface in h["interfaces"]:
            if iface["name"] not in have:
                errors.append(PlanError("the plan cables port %s, which this host does not have (it has %s)"
                                        % (iface["name"], ", ".join(sorted(have)) or "none"), host=host,
                                        variable="llmlab_cables",
                                        fix="cable the port, or name this host's ports in llmlab_profile_overrides.ports"))
        mem = float(f.get("memory_gb") or 0.0)
        if host in usable and mem and mem < usable[host]:
            errors.append(PlanError("the host has %.1f GB of memory, but its profile counts on %.1f GB usable"
                                    % (mem, usable[host]), host=host, variable="llmlab_profile_overrides",
                                    fix="set llmlab_profile_overrides: {usable_memory_gb: %d}" % int(mem * 0.85)))
    if plan.get("containers"):
        arches = {h: facts[h].get("arch") for h in plan.get("nodes_used", []) if h in facts}
        if len(set(arches.values())) > 1:
            first = sorted(arches)[0]
            odd = next(h for h in sorted(arches) if arches[h] != arches[first])
            title = backends.get(plan["backend"]).title
            errors.append(PlanError("%s runs one container image on every node, but %s is %s and %s is %s"
                                    % (title, first, arches[first], odd, arches[odd]), host=odd,
                                    variable="llmlab_nodes",
                                    fix="use nodes of one architecture for %s, or a backend that builds per node"
                                        % title))
    return errors


def messages(errors: List[PlanError]) -> List[str]:
    return [str(e) for e in errors]
