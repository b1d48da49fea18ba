"""A forwarding simulator over a fabric plan, for property tests: it follows the plan's routes hop by hop the way
the kernel would (longest match on /32 routes, lowest metric among routes whose link is up, connected subnets,
forwarding only where the plan turns it on) and reports whether a packet arrives."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional, Set

from netaddr import IPAddress, IPNetwork


def owner_of(fabric: Dict[str, Any], address: str) -> Optional[str]:
    for host, h in fabric["hosts"].items():
        if h["node_address"] == address:
            return host
        for i in h["interfaces"]:
            if i["address"].split("/")[0] == address:
                return host
    return None


def down_links(fabric: Dict[str, Any], cut_cables: Iterable[int]) -> Set[str]:
    cut = set(cut_cables)
    return {link["name"] for link in fabric["links"] if link["cable"] in cut}


def reaches(fabric: Dict[str, Any], src: str, dst: str, down: Set[str], max_hops: int = 16) -> bool:
    target = fabric["hosts"][dst]["node_address"]
    here = src
    for _ in range(max_hops):
        h = fabric["hosts"][here]
        if h["node_address"] == target or any(i["address"].split("/")[0] == target for i in h["interfaces"]):
            return True
        if here != src and not h["forwarding"]:
            return False
        up = [i for i in h["interfaces"] if i["link"] not in down]
        connected = [i for i in up if IPAddress(target) in IPNetwork(i["address"])]
        if connected:
            here = owner_of(fabric, target) or here
            continue
        routes = [r for r in h["routes"] if r["to"] == target + "/32" and any(i["name"] == r["dev"] for i in up)]
        if not routes:
            return False
        best = min(routes, key=lambda r: r["metric"])
        nxt = owner_of(fabric, best["via"])
        if nxt is None:
            return False
        here = nxt
    return False  # a loop


def graph_connected(fabric: Dict[str, Any], down: Set[str]) -> bool:
    """Whether the links that are up join every node (what OSPF needs to find a path)."""
    nodes = list(fabric["hosts"])
    adj: Dict[str, Set[str]] = {n: set() for n in nodes}
    for link in fabric["links"]:
        if link["name"] in down or link["b"] == "switch":
            continue
        a, b = link["a"].split(":")[0], link["b"].split(":")[0]
        adj[a].add(b)
        adj[b].add(a)
    seen = {nodes[0]}
    stack = [nodes[0]]
    while stack:
        for n in adj[stack.pop()]:
            if n not in seen:
                seen.add(n)
                stack.append(n)
    return len(seen) == len(nodes)
