"""Fabric planning: table-driven cases, the errors users make, and properties over many shapes."""

from __future__ import annotations

import itertools
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from netaddr import IPNetwork

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import missing_routes, plan_fabric

from .fabric_sim import down_links, graph_connected, reaches


def gb10(n: int, prefix: str = "gx10-") -> List[Dict[str, Any]]:
    return [{"name": "%s%s" % (prefix, chr(ord("a") + i)), "profile": "gb10"} for i in range(n)]


def all_pairs(fabric: Dict[str, Any]):
    return [(a, b) for a, b in itertools.permutations(fabric["nodes"], 2)]


# --- table-driven: what each topology produces -------------------------------------------------------------

@pytest.mark.parametrize("topology,n,routing,links,forwarding,routes_per_host", [
    ("single", 1, "static", 0, False, 0),
    ("direct", 2, "static", 2, False, 2),      # one cable, both ConnectX-7 halves
    ("ring", 3, "static", 6, True, 6),         # 2 peers x (2 halves + 1 backup)
    ("ring", 4, "ospf", 8, True, 0),
    ("ring", 6, "ospf", 12, True, 0),
    ("switch", 4, "static", 4, False, 0),
])
def test_topologies(topology: str, n: int, routing: str, links: int, forwarding: bool, routes_per_host: int) -> None:
    f = plan_fabric(gb10(n), topology)
    assert f["routing"] == routing
    assert len(f["links"]) == links
    for h in f["hosts"].values():
        assert h["forwarding"] is forwarding
        assert len(h["routes"]) == routes_per_host
        assert (h["ospf"] is not None) == (routing == "ospf")


def test_ring_of_three_default_cabling_and_addresses() -> None:
    f = plan_fabric(gb10(3), "ring", pool="10.50.0.0/24")
    assert [(l["a"], l["b"], l["subnet"]) for l in f["links"][:2]] == [
        ("gx10-a:enp1s0f1np1", "gx10-b:enp1s0f0np0", "10.50.0.128/30"),
        ("gx10-a:enP2p1s0f1np1", "gx10-b:enP2p1s0f0np0", "10.50.0.132/30"),
    ]
    a = f["hosts"]["gx10-a"]
    assert (a["node_address"], a["loopback"], a["rp_filter"], a["ignore_routes_with_linkdown"]) == \
        ("10.50.0.1", True, "loose", True)
    assert a["interfaces"][0] == {"name": "enp1s0f1np1", "address": "10.50.0.129/30", "mtu": 9000,
                                  "peer": "gx10-b:enp1s0f0np0", "peer_address": "10.50.0.130", "link": "link-0"}
    to_b = [r for r in a["routes"] if r["to"] == "10.50.0.2/32"]
    assert [(r["dev"], r["via"], r["metric"]) for r in to_b] == [
        ("enp1s0f1np1", "10.50.0.130", 100), ("enP2p1s0f1np1", "10.50.0.134", 101),
        ("enp1s0f0np0", "10.50.0.145", 200)]  # the backup goes through gx10-c
    assert sorted(a["rdma_devices"]) == ["roceP2p1s0f0", "roceP2p1s0f1", "rocep1s0f0", "rocep1s0f1"]


def test_explicit_nvidia_cabling() -> None:
    cables = [["gx10-a:enp1s0f0np0", "gx10-b:enp1s0f1np1"], ["gx10-b:enp1s0f0np0", "gx10-c:enp1s0f1np1"],
              ["gx10-c:enp1s0f0np0", "gx10-a:enp1s0f1np1"]]
    f = plan_fabric(gb10(3), "ring", cables=cables)
    assert f["links"][0]["a"] == "gx10-a:enp1s0f0np0" and f["links"][1]["a"] == "gx10-a:enP2p1s0f0np0"
    assert all(reaches(f, a, b, set()) for a, b in all_pairs(f))


def test_switch_uses_one_subnet_and_the_switch_port() -> None:
    nodes = [{"name": "fw-%d" % i, "profile": "strix_halo"} for i in range(4)]
    f = plan_fabric(nodes, "switch", pool="10.60.0.0/24")
    assert [f["hosts"]["fw-%d" % i]["interfaces"][0]["address"] for i in range(4)] == \
        ["10.60.0.1/24", "10.60.0.2/24", "10.60.0.3/24", "10.60.0.4/24"]
    assert {h["interfaces"][0]["name"] for h in f["hosts"].values()} == {"enp191s0"}
    assert not any(h["loopback"] or h["routes"] or h["forwarding"] for h in f["hosts"].values())


def test_ospf_block_for_rings_of_four() -> None:
    f = plan_fabric(gb10(4), "ring")
    o = f["hosts"]["gx10-a"]["ospf"]
    assert o["router_id"] == f["hosts"]["gx10-a"]["node_address"]
    assert sorted(o["interfaces"]) == sorted(i["name"] for i in f["hosts"]["gx10-a"]["interfaces"])
    assert o["bfd"]["min_rx_ms"] <= 300 and o["network_type"] == "point-to-point"


def test_node_addresses_are_stable_when_a_node_is_added() -> None:
    three = plan_fabric(gb10(3), "ring")
    four = plan_fabric(gb10(4), "ring")
    for name in three["nodes"]:
        assert three["hosts"][name]["node_address"] == four["hosts"][name]["node_address"]


def test_a_pinned_fabric_address_is_kept_and_skipped_by_the_others() -> None:
    nodes = gb10(3)
    nodes[2]["fabric_address"] = "10.213.0.2"   # gx10-c keeps the address it had before a reordering
    f = plan_fabric(nodes, "ring")
    assert [f["hosts"][n]["node_address"] for n in ("gx10-a", "gx10-b", "gx10-c")] == \
        ["10.213.0.1", "10.213.0.3", "10.213.0.2"]
    sw = plan_fabric([dict(n, fabric_address="10.213.0.50") if n["name"] == "gx10-a" else n for n in gb10(3)],
                     "switch")
    assert sw["hosts"]["gx10-a"]["interfaces"][0]["address"] == "10.213.0.50/24"


def test_mtu_override_and_profile_default() -> None:
    assert plan_fabric(gb10(2), "direct")["links"][0]["mtu"] == 9000
    assert plan_fabric(gb10(2), "direct", mtu=1500)["links"][0]["mtu"] == 1500


# --- bad input: each names host, variable and fix ------------------------------------------------------------

def _cables(*pairs: str) -> List[List[str]]:
    return [p.split(" ") for p in pairs]


@pytest.mark.parametrize("kwargs,words,host,variable", [
    (dict(nodes=gb10(3), topology="mesh"), "unknown topology", None, "llmlab_topology"),
    (dict(nodes=gb10(2), topology="ring"), "ring needs 3 or more", None, "llmlab_topology"),
    (dict(nodes=gb10(3), topology="direct"), "direct needs 2", None, "llmlab_topology"),
    (dict(nodes=gb10(2) + [{"name": "gx10-a", "profile": "gb10"}], topology="ring"), "listed twice", "gx10-a",
     "llmlab_nodes"),
    (dict(nodes=[{"name": "x", "profile": "dgx-h100"}], topology="single"), "unknown hardware profile", "x",
     "llmlab_profile"),
    (dict(nodes=gb10(3), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0", "gx10-b:enp1s0f1np1 gx10-c:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-z:enp1s0f0np0")), "not in the cluster", "gx10-z", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-b:eth9", "gx10-b:enp1s0f1np1 gx10-c:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-a:enp1s0f0np0")), "port eth9", "gx10-b", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-a:enp1s0f0np0", "gx10-b:enp1s0f1np1 gx10-c:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-b:enp1s0f0np0")), "same host", "gx10-a", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0", "gx10-a:enp1s0f1np1 gx10-c:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-b:enp1s0f1np1")), "cabled twice", "gx10-a", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0", "gx10-a:enP2p1s0f1np1 gx10-c:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-b:enp1s0f1np1")), "cabled twice", "gx10-a", "llmlab_cables"),
    (dict(nodes=gb10(4), topology="ring",
          cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0", "gx10-b:enp1s0f1np1 gx10-a:enp1s0f0np0",
                         "gx10-c:enp1s0f1np1 gx10-d:enp1s0f0np0", "gx10-d:enp1s0f1np1 gx10-c:enp1s0f0np0")),
     "two different neighbours", "gx10-a", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring", cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0")),
     "two cables", "gx10-a", "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring", cables=[["gx10-a-enp1s0f1np1", "gx10-b:enp1s0f0np0"]]),
     "is not 'host:port'", None, "llmlab_cables"),
    (dict(nodes=gb10(3), topology="ring", pool="10.0.0.0/29"), "too small", None, "llmlab_fabric_pool"),
    (dict(nodes=gb10(6), topology="ring", pool="10.0.0.0/26"), "too small", None, "llmlab_fabric_pool"),
    (dict(nodes=gb10(3), topology="ring", pool="192.168.1.0/24", management_networks=["192.168.0.0/16"]),
     "overlaps the management network", None, "llmlab_fabric_pool"),
    (dict(nodes=[dict(n, management_address="10.213.0.77") for n in gb10(3)], topology="ring"),
     "overlaps the management network 10.213.0.77/32", None, "llmlab_fabric_pool"),
    (dict(nodes=gb10(3), topology="ring", pool="10.0.0.1/24"), "host bits", None, "llmlab_fabric_pool"),
    (dict(nodes=gb10(3), topology="ring", pool="fd00::/64"), "not IPv4", None, "llmlab_fabric_pool"),
    (dict(nodes=gb10(3), topology="ring", pool="banana"), "not a network", None, "llmlab_fabric_pool"),
    (dict(nodes=[{"name": "a", "profile": "gb10"}, {"name": "b", "profile": "gb10", "mtu": 1500}],
          topology="direct"), "different MTUs", "b", "llmlab_mtu"),
    (dict(nodes=gb10(3), topology="switch", cables=_cables("gx10-a:enp1s0f1np1 gx10-b:enp1s0f0np0")),
     "takes no cables", None, "llmlab_cables"),
    (dict(nodes=[], topology="single"), "non-empty list", None, "nodes"),
    (dict(nodes=[dict(n, fabric_address="10.213.0.9") for n in gb10(2)] + gb10(1, "x-"), topology="ring"),
     "hosts gx10-a and gx10-b have the same fabric address 10.213.0.9", "gx10-b", "llmlab_fabric_address"),
    (dict(nodes=[dict(gb10(1)[0], fabric_address="10.213.0.200")] + gb10(3)[1:], topology="ring"),
     "outside 10.213.0.0/25", "gx10-a", "llmlab_fabric_address"),
    (dict(nodes=[dict(gb10(1)[0], fabric_address="ten")] + gb10(3)[1:], topology="ring"),
     "not an IPv4 address", "gx10-a", "llmlab_fabric_address"),
])
def test_bad_input_names_host_variable_and_fix(kwargs: Dict[str, Any], words: str, host: str, variable: str) -> None:
    with pytest.raises(PlanError) as err:
        plan_fabric(**kwargs)
    assert words in str(err.value)
    assert err.value.host == host
    assert err.value.variable == variable
    assert err.value.fix and "Fix:" in str(err.value)


# --- properties over many shapes ------------------------------------------------------------------------------

PROFILES_WITH_HALVES = st.sampled_from(["gb10", "sim"])


@st.composite
def clusters(draw: Any) -> Dict[str, Any]:
    topology = draw(st.sampled_from(["direct", "ring", "switch"]))
    n = 2 if topology == "direct" else draw(st.integers(min_value=3 if topology == "ring" else 2, max_value=8))
    profile = draw(PROFILES_WITH_HALVES)
    nodes = [{"name": "n%d" % i, "profile": profile} for i in range(n)]
    third = draw(st.integers(min_value=0, max_value=200))
    pool = "10.%d.0.0/%d" % (third, draw(st.sampled_from([22, 23, 24])))
    return {"nodes": nodes, "topology": topology, "pool": pool}


@settings(max_examples=150, deadline=None)
@given(clusters())
def test_properties(cluster: Dict[str, Any]) -> None:
    f = plan_fabric(**cluster)
    pool = IPNetwork(cluster["pool"])
    hosts = f["hosts"]
    # no address is used twice, all of them come from the pool
    addresses = [h["node_address"] for h in hosts.values() if h["loopback"]]
    addresses += [i["address"].split("/")[0] for h in hosts.values() for i in h["interfaces"]]
    assert len(addresses) == len(set(addresses))
    assert all(a in pool for a in addresses)
    # point-to-point subnets do not overlap
    subnets = [IPNetwork(l["subnet"]) for l in f["links"] if l["b"] != "switch"]
    for x, y in itertools.combinations(subnets, 2):
        assert x.first > y.last or y.first > x.last
    for name, h in hosts.items():
        own = {h["node_address"]} | {i["address"].split("/")[0] for i in h["interfaces"]}
        for r in h["routes"]:
            assert r["via"] not in own, "route via the node itself on %s: %s" % (name, r)
            dev = next(i for i in h["interfaces"] if i["name"] == r["dev"])
            assert r["via"] in IPNetwork(dev["address"]), "next hop not on the link %s" % r
            assert r["to"] != h["node_address"] + "/32"
    # every pair of nodes reaches each other
    if f["routing"] == "static":
        assert all(reaches(f, a, b, set()) for a, b in all_pairs(f))
    else:
        assert graph_connected(f, set())
    # and still does with any one cable cut: static rings of 3 by their backup routes, rings of 4+ by OSPF
    if cluster["topology"] == "ring":
        for cable in range(len(cluster["nodes"])):
            down = down_links(f, [cable])
            if f["routing"] == "static":
                assert all(reaches(f, a, b, down) for a, b in all_pairs(f)), "cable %d cut" % cable
            else:
                assert graph_connected(f, down)
                assert all(h["ospf"]["interfaces"] == [i["name"] for i in h["interfaces"]] for h in hosts.values())



# missing_routes: what the fabric role re-applies. Table: kernel routes, links up, expected missing.
_PLANNED = [
    {"to": "10.213.0.2/32", "via": "10.213.0.130", "dev": "p1", "metric": 100, "src": "10.213.0.1"},
    {"to": "10.213.0.2/32", "via": "10.213.0.145", "dev": "p0", "metric": 200, "src": "10.213.0.1"},
]
_K1 = {"dst": "10.213.0.2", "gateway": "10.213.0.130", "dev": "p1", "metric": 100}
_K2 = {"dst": "10.213.0.2", "gateway": "10.213.0.145", "dev": "p0", "metric": 200}
_UP = [{"ifname": "p0", "flags": ["UP", "LOWER_UP"]}, {"ifname": "p1", "flags": ["UP"]}]


@pytest.mark.parametrize("kernel,links,expected", [
    ([_K1, _K2], _UP, []),
    ([_K1], _UP, ["10.213.0.2/32 via 10.213.0.145 dev p0 metric 200"]),
    ([], _UP, ["10.213.0.2/32 via 10.213.0.130 dev p1 metric 100", "10.213.0.2/32 via 10.213.0.145 dev p0 metric 200"]),
    ([_K2], [{"ifname": "p0", "flags": ["UP"]}, {"ifname": "p1", "flags": ["BROADCAST"]}], []),  # p1 cut: not expected
    ([_K2], [{"ifname": "p0", "flags": ["UP"]}], []),                                            # p1 gone (renamed)
    ([dict(_K1, metric=101), _K2], _UP, ["10.213.0.2/32 via 10.213.0.130 dev p1 metric 100"]),  # wrong metric
    ([dict(_K1, gateway="10.213.0.129"), _K2], _UP, ["10.213.0.2/32 via 10.213.0.130 dev p1 metric 100"]),
])
def test_missing_routes(kernel, links, expected):
    assert missing_routes(_PLANNED, kernel, links) == expected
