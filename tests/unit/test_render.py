"""What templates get from a plan: inventory nodes, the table, the backend's command lines merged in."""

from __future__ import annotations

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import render
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric

SIM3 = [{"name": n, "profile": "sim"} for n in ("node1", "node2", "node3")]


def test_inventory_nodes() -> None:
    hostvars = {
        "a": {"llmlab_profile": "gb10", "ansible_host": "192.168.1.51", "llmlab_mtu": 1500},
        "b": {"llmlab_profile": "generic", "ansible_host": "b.lan",
              "llmlab_profile_overrides": {"memory_gb": 24, "mem_bw_gbs": 936}},
        "c": {},
    }
    assert render.inventory_nodes(hostvars, ["a", "b"]) == [
        {"name": "a", "profile": "gb10", "mtu": 1500, "management_address": "192.168.1.51"},
        {"name": "b", "profile": "generic", "memory_gb": 24, "mem_bw_gbs": 936, "management_address": None},
    ]
    with pytest.raises(PlanError) as err:
        render.inventory_nodes(hostvars, ["a", "c"])
    assert (err.value.host, err.value.variable) == ("c", "llmlab_profile")
    with pytest.raises(PlanError) as err:
        render.inventory_nodes({"d": {"llmlab_profile": "gb10", "llmlab_profile_overrides": [1]}}, ["d"])
    assert err.value.variable == "llmlab_profile_overrides"


def test_plan_table_shows_candidates_memory_and_why() -> None:
    nodes = [{"name": n, "profile": "gb10"} for n in ("gx10-a", "gx10-b", "gx10-c")]
    lines = render.plan_table(plan_fabric(nodes, "ring"),
                              plan_parallel(nodes, "ring", model="Qwen/Qwen3-235B-A22B", quant="fp8"))
    text = "\n".join(lines)
    assert "fabric: ring, routing static" in text
    assert "gx10-a  10.213.0.1" in text
    assert any(l.startswith("vllm_ray") and " fits " in l for l in lines)
    assert "rejected: TP=3 does not divide the 64 attention heads" in text
    assert "memory per node (GB): gx10-a" in text
    assert "why: chosen: vllm_ray TP=1 PP=3" in text


def test_ping_matrix_reads_loss_and_rtt() -> None:
    ok = "3 packets transmitted, 3 received, 0% packet loss, time 401ms\nrtt min/avg/max/mdev = 0.050/0.081/0.120/0.02 ms"
    lost = "3 packets transmitted, 0 received, 100% packet loss, time 2030ms"
    hostvars = {
        "a": {"__fabric_pings": {"results": [{"item": "b", "stdout": ok}, {"item": "c", "stdout": lost}]}},
        "b": {"__fabric_pings": {"results": [{"item": "a", "stdout": ok}, {"item": "c", "stdout": "ping: bad"}]}},
        "c": {},
    }
    lines = render.ping_matrix(hostvars, ["a", "b", "c"])
    assert lines[0].split() == ["from", "\\", "to", "a", "b", "c"]
    assert lines[2].split() == ["a", ".", "0%", "0.08ms", "100%", "-"]
    assert lines[3].split() == ["b", "0%", "0.08ms", ".", "error"]
    assert lines[4].split() == ["c", "?", "?", "."]
