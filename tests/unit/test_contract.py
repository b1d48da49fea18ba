"""The inventory contract and the facts checks: one clear message each, naming host, variable and fix."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils.contract import facts_errors, inventory_errors
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric


def inventory(**over: Any) -> Dict[str, Any]:
    hv = {h: {"llmlab_profile": "gb10", "ansible_host": "192.168.1.5%d" % i, "llmlab_model": "tiny",
              "llmlab_topology": "ring"} for i, h in enumerate(("a", "b", "c"))}
    for host, changes in over.items():
        hv[host].update(changes)
    return hv


def test_a_sound_inventory_has_no_errors() -> None:
    assert inventory_errors({"llmlab_nodes": ["a", "b", "c"]}, inventory()) == []


def test_a_whole_number_given_as_its_digits_is_one() -> None:
    # what `ansible-playbook -e llmlab_tensor_parallel=2` gives: a string
    hv = inventory(a={"llmlab_tensor_parallel": "2", "llmlab_mtu": " 9000 "})
    assert inventory_errors({"llmlab_nodes": ["a", "b", "c"]}, hv) == []


@pytest.mark.parametrize("groups,hostvars,words,host,variable", [
    ({"all": ["a"]}, inventory(), "no group llmlab_nodes", None, "llmlab_nodes"),
    ({"llmlab_nodes": []}, inventory(), "no group llmlab_nodes, or it is empty", None, "llmlab_nodes"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(b={"llmlab_cables": "a:enp1s0f1np1 b:enp1s0f0np0"}),
     "llmlab_cables is a string", "b", "llmlab_cables"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(a={"llmlab_mtu": "9000 bytes"}),
     "llmlab_mtu is a string ('9000 bytes'), not a whole number", "a", "llmlab_mtu"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(a={"llmlab_tensor_parallel": True}),
     "llmlab_tensor_parallel is a boolean ('True'), not a whole number", "a", "llmlab_tensor_parallel"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(c={"llmlab_profile": "dgx-h100"}),
     "unknown hardware profile 'dgx-h100'", "c", "llmlab_profile"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(c={"llmlab_profile": None}), "no hardware profile", "c",
     "llmlab_profile"),
    ({"llmlab_nodes": ["a", "b", "c"]}, inventory(c={"ansible_host": "192.168.1.50"}),
     "a and c are the same machine (192.168.1.50): a node is listed twice", "c", "ansible_host"),
])
def test_contract_violations(groups, hostvars, words, host, variable) -> None:
    errors = inventory_errors(groups, hostvars)
    assert len(errors) == 1, [str(e) for e in errors]
    assert words in str(errors[0]) and "Fix:" in str(errors[0])
    assert (errors[0].host, errors[0].variable) == (host, variable)


def test_every_violation_is_reported_at_once() -> None:
    hv = inventory(a={"llmlab_mtu": "x"}, b={"llmlab_profile": "nope"})
    assert {e.host for e in inventory_errors({"llmlab_nodes": ["a", "b", "c"]}, hv)} == {"a", "b"}


def _lab_facts(missing: str = "", memory: float = 4.2, arch: str = "x86_64") -> Dict[str, Any]:
    fabric = plan_fabric([{"name": n, "profile": "sim"} for n in ("n1", "n2", "n3")], "ring")
    facts = {}
    for host, h in fabric["hosts"].items():
        nics = [{"name": i["name"]} for i in h["interfaces"] if not (host == "n2" and i["name"] == missing)]
        facts[host] = {"nics": nics, "memory_gb": memory if host == "n3" else 4.2, "arch": arch if host == "n3"
                       else "x86_64"}
    return {"fabric": fabric, "facts": facts}


def test_facts_agree_with_the_plan() -> None:
    d = _lab_facts()
    plan = plan_parallel([{"name": n, "profile": "sim"} for n in ("n1", "n2", "n3")], "ring", model="tiny",
                         quant="fp16", backend="llamacpp_rpc", pipeline_parallel=3)
    assert facts_errors(d["fabric"], plan, d["facts"], plan["usable_memory_gb"]) == []


def test_facts_catch_a_missing_port_little_memory_and_mixed_architectures() -> None:
    d = _lab_facts(missing="enp1s0f1np1", memory=2.0)
    plan = {"backend": "llamacpp_rpc", "nodes_used": ["n1", "n2", "n3"]}
    errors = facts_errors(d["fabric"], plan, d["facts"], {"n1": 3.0, "n2": 3.0, "n3": 3.0})
    assert [(e.host, e.variable) for e in errors] == [("n2", "llmlab_cables"), ("n3", "llmlab_profile_overrides")]
    assert "the plan cables port enp1s0f1np1, which this host does not have" in str(errors[0])
    assert "usable_memory_gb: 1" in str(errors[1])
    d = _lab_facts(arch="aarch64")
    errors = facts_errors(d["fabric"], {"backend": "vllm_ray", "containers": True, "nodes_used": ["n1", "n2", "n3"]},
                         d["facts"], {})
    assert len(errors) == 1 and errors[0].host == "n3" and "one container image" in str(errors[0])
