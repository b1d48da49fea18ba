"""The lab refuses bad requests before anything is created (no docker, no root needed here)."""

from __future__ import annotations

import pytest

from tools.simlab.spec import LabError, cabling, management_address, validate


@pytest.mark.parametrize("topology,nodes,shape,words", [
    ("mesh", 3, None, "unknown topology 'mesh'"),
    ("single", 1, None, "unknown topology 'single'"),
    ("ring", 2, None, "a ring of 2 is two cables between the same pair: use TOPOLOGY=direct NODES=2"),
    ("ring", 1, None, "topology ring needs at least 3 nodes, NODES=1"),
    ("direct", 3, None, "topology direct needs 2 nodes, NODES=3"),
    ("switch", 1, None, "topology switch needs at least 2 nodes, NODES=1"),
    ("ring", "three", None, "NODES must be a whole number"),
    ("ring", 12, None, "more than this machine can hold"),
    ("ring", 3, "ethernet", "unknown link class 'ethernet'"),
])
def test_bad_requests_are_refused(topology, nodes, shape, words) -> None:
    with pytest.raises(LabError) as err:
        validate(topology, nodes, shape)
    assert words in str(err.value)


def test_ring_cabling_is_the_planners_default() -> None:
    plan = cabling(validate("ring", 4))
    ends = [(tuple(l["a"]), tuple(l["b"])) for l in plan["links"]]
    assert ends[:2] == [(("node1", "enp1s0f1np1"), ("node2", "enp1s0f0np0")),
                        (("node1", "enP2p1s0f1np1"), ("node2", "enP2p1s0f0np0"))]
    assert ends[-2][1] == ("node1", "enp1s0f0np0")  # node4 closes the ring on node1's port 0
    assert [l["cable"] for l in plan["links"]] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [l["id"] for l in plan["links"]] == list(range(8))


def test_direct_uses_both_halves_and_switch_uses_the_5gbe_port() -> None:
    direct = cabling(validate("direct", 2))
    assert {l["a"][1] for l in direct["links"]} == {"enp1s0f1np1", "enP2p1s0f1np1"}
    switch = cabling(validate("switch", 4))
    assert [(l["a"], l["b"]) for l in switch["links"]] == [([n, "enp191s0"], None)
                                                           for n in ("node1", "node2", "node3", "node4")]


def test_management_addresses() -> None:
    assert [management_address(i) for i in range(3)] == ["172.31.213.11", "172.31.213.12", "172.31.213.13"]
