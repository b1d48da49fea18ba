# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fabric part of the plan: cables, point-to-point subnets, node addresses and routes.

Addressing (all from one pool, ``netaddr`` does the arithmetic):

* the first half of the pool holds node addresses: node *i* in inventory order gets host *i + 1*, a /32 that
  lives on the loopback (routers do the same) so that it survives any single cable;
* the second half is cut into /30s, one per logical link in cable order; the ``a`` end gets the first host
  address, the ``b`` end the second;
* a switch topology uses the whole pool as one subnet instead and needs no routes.

Routing:

* ``direct``: one route per logical link to the peer's node address (metrics 100, 101, ...);
* ``ring`` of 3 is a full mesh: the direct routes plus one backup per peer through the third node (metric 200),
  with forwarding on, so a cut cable fails over;
* ``ring`` of 4 or more: static backups would loop when a cable away from the sender is cut, so the plan says
  ``routing: ospf`` (FRR, OSPF point-to-point with BFD) and lists no static routes.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from netaddr import AddrFormatError, IPAddress, IPNetwork

from ansible_collections.llmlab.cluster.plugins.module_utils.constants import DEFAULT_POOL, TOPOLOGIES
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import Node, resolve_node

LINK_PREFIX = 30
METRIC_DIRECT = 100
METRIC_BACKUP = 200
OSPF_MIN_RING = 4

Endpoint = Tuple[str, str]  # (host, port)


def _fmt(ep: Endpoint) -> str:
    return "%s:%s" % ep


def resolve_nodes(nodes: Any) -> List[Node]:
    if not isinstance(nodes, list) or not nodes:
        raise PlanError("nodes must be a non-empty list", variable="nodes",
                        fix="put the cluster's hosts in the inventory group llmlab_nodes")
    resolved = [resolve_node(n) for n in nodes]
    seen = set()
    for n in resolved:
        if n.name in seen:
            raise PlanError("node %s is listed twice" % n.name, host=n.name, variable="llmlab_nodes",
                            fix="list every host once in the group llmlab_nodes")
        seen.add(n.name)
    return resolved


def check_topology(topology: Any, count: int) -> None:
    if topology not in TOPOLOGIES:
        raise PlanError("unknown topology %r" % (topology,), variable="llmlab_topology",
                        fix="use one of: %s" % ", ".join(sorted(TOPOLOGIES)))
    low, high = TOPOLOGIES[topology]
    if count < low or (high is not None and count > high):
        want = str(low) if high == low else ("%d or more" % low if high is None else "%d-%d" % (low, high))
        hint = {1: "single", 2: "direct"}.get(count, "ring or switch")
        raise PlanError("topology %s needs %s nodes, the inventory has %d" % (topology, want, count),
                        variable="llmlab_topology", fix="use llmlab_topology: %s for %d nodes, or change the group "
                        "llmlab_nodes" % (hint, count))


def _parse_endpoint(text: Any, by_name: Mapping[str, Node]) -> Endpoint:
    if not isinstance(text, str) or text.count(":") != 1:
        raise PlanError("cable end %r is not 'host:port'" % (text,), variable="llmlab_cables",
                        fix="write each cable as [\"host-a:enp1s0f1np1\", \"host-b:enp1s0f0np0\"]")
    host, port = text.split(":")
    if host not in by_name:
        raise PlanError("cable end %s names a host that is not in the cluster" % text, host=host,
                        variable="llmlab_cables", fix="use one of: %s" % ", ".join(sorted(by_name)))
    node = by_name[host]
    if port not in node.all_ports():
        raise PlanError("cable end %s names port %s, which profile %s does not have" % (text, port, node.profile),
                        host=host, variable="llmlab_cables",
                        fix="use one of %s, or list the port in llmlab_profile_overrides.ports"
                            % ", ".join(node.all_ports()))
    return host, port


def _default_cables(nodes: List[Node], topology: str) -> List[Tuple[Endpoint, Endpoint]]:
    """Port 1 of node i to port 0 of node i+1 (around the ring)."""
    for n in nodes:
        if len(n.ports) < 2:
            raise PlanError("the default cabling needs two ports on every node; %s has %s" % (n.name, n.ports or "none"),
                            host=n.name, variable="llmlab_cables",
                            fix="list the cables in llmlab_cables or give the node's ports in llmlab_profile_overrides")
    pairs = len(nodes) if topology == "ring" else 1
    return [((nodes[i].name, nodes[i].ports[1]), (nodes[(i + 1) % len(nodes)].name, nodes[(i + 1) % len(nodes)].ports[0]))
            for i in range(pairs)]


def _parse_cables(cables: Any, nodes: List[Node]) -> List[Tuple[Endpoint, Endpoint]]:
    by_name = {n.name: n for n in nodes}
    if not isinstance(cables, list):
        raise PlanError("llmlab_cables must be a list of [host:port, host:port] pairs, got %r" % (cables,),
                        variable="llmlab_cables", fix="write llmlab_cables: [[a:enp1s0f1np1, b:enp1s0f0np0], ...]")
    out = []
    for item in cables:
        if isinstance(item, Mapping) and set(item) == {"a", "b"}:
            item = [item["a"], item["b"]]
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise PlanError("cable %r is not a pair of 'host:port' ends" % (item,), variable="llmlab_cables",
                            fix="write each cable as [\"host-a:port\", \"host-b:port\"]")
        a, b = _parse_endpoint(item[0], by_name), _parse_endpoint(item[1], by_name)
        if a[0] == b[0]:
            raise PlanError("cable %s - %s joins two ports of the same host" % (_fmt(a), _fmt(b)), host=a[0],
                            variable="llmlab_cables", fix="cable each port to a port of another host")
        out.append((a, b))
    return out


def _check_shape(topology: str, nodes: List[Node], cables: List[Tuple[Endpoint, Endpoint]]) -> None:
    names = [n.name for n in nodes]
    neighbours: Dict[str, List[str]] = {n: [] for n in names}
    for a, b in cables:
        neighbours[a[0]].append(b[0])
        neighbours[b[0]].append(a[0])
    if topology == "direct":
        if not cables:
            raise PlanError("a direct topology needs at least one cable", variable="llmlab_cables",
                            fix="cable port 1 of %s to port 0 of %s, or leave llmlab_cables unset" % tuple(names))
        return
    # ring: every node has exactly two cables, to two different neighbours, and they form one cycle
    for name in names:
        if len(neighbours[name]) != 2 or len(set(neighbours[name])) != 2:
            raise PlanError("in a ring every node has two cables to two different neighbours; %s has %s"
                            % (name, ", ".join(neighbours[name]) or "none"), host=name, variable="llmlab_cables",
                            fix="cable %s to the node before it and the node after it" % name)
    seen = {names[0]}
    stack = [names[0]]
    while stack:
        for nxt in neighbours[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    if len(seen) != len(names):
        missing = sorted(set(names) - seen)
        raise PlanError("the cables do not form one ring: %s not reachable from %s" % (", ".join(missing), names[0]),
                        host=missing[0], variable="llmlab_cables", fix="cable the nodes in a single loop")


def _expand_halves(cables: List[Tuple[Endpoint, Endpoint]],
                   by_name: Mapping[str, Node]) -> List[Tuple[Endpoint, Endpoint, int]]:
    """One physical ConnectX-7 cable carries two logical links, one per netdev half: each gets its own subnet.

    Returns ``(a, b, cable index)`` per logical link."""
    links: List[Tuple[Endpoint, Endpoint, int]] = []
    for i, (a, b) in enumerate(cables):
        links.append((a, b, i))
        ha = by_name[a[0]].port_halves.get(a[1])
        hb = by_name[b[0]].port_halves.get(b[1])
        if ha and hb:
            links.append(((a[0], ha), (b[0], hb), i))
    used: Dict[Endpoint, Endpoint] = {}
    for a, b, _ in links:
        for end, other in ((a, b), (b, a)):
            if end in used:
                raise PlanError("port %s is cabled twice (to %s and to %s)" % (_fmt(end), _fmt(used[end]), _fmt(other)),
                                host=end[0], variable="llmlab_cables",
                                fix="remove one of the two cables on %s (a ConnectX-7 cable also uses the port's "
                                    "second half)" % _fmt(end))
            used[end] = other
    return links


def _pool(pool: Any, management_networks: Sequence[str]) -> IPNetwork:
    try:
        net = IPNetwork(str(pool))
    except (AddrFormatError, ValueError, TypeError):
        raise PlanError("address pool %r is not a network" % (pool,), variable="llmlab_fabric_pool",
                        fix="give a private IPv4 network such as %s" % DEFAULT_POOL)
    if net.version != 4:
        raise PlanError("address pool %s is not IPv4" % net, variable="llmlab_fabric_pool",
                        fix="give a private IPv4 network such as %s" % DEFAULT_POOL)
    if net.ip != net.network:
        raise PlanError("address pool %s has host bits set" % pool, variable="llmlab_fabric_pool",
                        fix="use %s" % net.cidr)
    for mgmt in management_networks:
        try:
            other = IPNetwork(str(mgmt))
        except (AddrFormatError, ValueError, TypeError):
            raise PlanError("management network %r is not a network" % (mgmt,), variable="llmlab_management_networks",
                            fix="give CIDRs such as 192.168.1.0/24")
        if other.first <= net.last and net.first <= other.last:
            raise PlanError("address pool %s overlaps the management network %s" % (net, other.cidr),
                            variable="llmlab_fabric_pool",
                            fix="choose a pool outside %s, for example %s" % (other.cidr, DEFAULT_POOL))
    return net


def _node_addresses(nodes: List[Node], block: IPNetwork) -> Dict[str, str]:
    """Node i gets host i+1 of ``block`` unless its inventory pins one (``llmlab_fabric_address``): pinned
    addresses must lie in the block and be unique; the others skip the pinned ones."""
    pinned: Dict[str, str] = {}
    owner: Dict[str, str] = {}
    for n in nodes:
        if n.fabric_address is None:
            continue
        try:
            addr = IPAddress(str(n.fabric_address))
        except (AddrFormatError, ValueError, TypeError):
            raise PlanError("fabric address %r is not an IPv4 address" % (n.fabric_address,), host=n.name,
                            variable="llmlab_fabric_address", fix="give an address such as %s" % block[1])
        if addr not in block or addr in (block.network, block.broadcast):
            raise PlanError("fabric address %s is outside %s, where node addresses live" % (addr, block), host=n.name,
                            variable="llmlab_fabric_address", fix="pin an address between %s and %s"
                                                                  % (block[1], block[-2]))
        if str(addr) in owner:
            raise PlanError("hosts %s and %s have the same fabric address %s" % (owner[str(addr)], n.name, addr),
                            host=n.name, variable="llmlab_fabric_address",
                            fix="give every host its own llmlab_fabric_address, or remove the pin")
        owner[str(addr)] = n.name
        pinned[n.name] = str(addr)
    out: Dict[str, str] = {}
    taken = set(owner)
    for i, n in enumerate(nodes):
        if n.name in pinned:
            out[n.name] = pinned[n.name]
            continue
        k = i + 1
        while str(block[k]) in taken:
            k += 1
            if k >= block.size - 1:
                raise _too_small(block, "%d node addresses" % len(nodes))
        out[n.name] = str(block[k])
        taken.add(out[n.name])
    return out


def _too_small(net: IPNetwork, what: str) -> PlanError:
    return PlanError("address pool %s is too small for %s" % (net, what), variable="llmlab_fabric_pool",
                     fix="use a larger pool, e.g. a /%d" % max(net.prefixlen - 2, 8))


def plan_fabric(nodes: Any, topology: Any, cables: Any = None, pool: Any = DEFAULT_POOL, mtu: Any = None,
                management_networks: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Compute the fabric plan. Raises :class:`PlanError` naming host, variable and fix on bad input."""
    resolved = resolve_nodes(nodes)
    check_topology(topology, len(resolved))
    by_name = {n.name: n for n in resolved}
    mgmt = list(management_networks or [])
    mgmt += ["%s/32" % n.management_address for n in resolved if n.management_address]
    net = _pool(pool if pool is not None else DEFAULT_POOL, mgmt)
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int) or not 1280 <= mtu <= 9216):
        raise PlanError("mtu must be an integer between 1280 and 9216, got %r" % (mtu,), variable="llmlab_mtu",
                        fix="use 9000 on ConnectX-7, 1500 elsewhere")

    hosts: Dict[str, Dict[str, Any]] = {
        n.name: {"node_address": None, "loopback": False, "forwarding": False, "rp_filter": "strict",
                 "ignore_routes_with_linkdown": False, "interfaces": [], "routes": [], "ospf": None,
                 "rdma_devices": []}
        for n in resolved
    }
    links_out: List[Dict[str, Any]] = []
    routing = "static"

    if topology in ("single", "switch"):
        if cables:
            raise PlanError("topology %s takes no cables" % topology, variable="llmlab_cables",
                            fix="remove llmlab_cables (a switch port is chosen by the profile's switch_port)")
        if topology == "switch":
            if len(resolved) + 2 > net.size:
                raise _too_small(net, "%d nodes on one switch" % len(resolved))
            mtus = {n.name: (mtu or n.mtu) for n in resolved}
            if len(set(mtus.values())) > 1:
                host = sorted(mtus, key=lambda h: mtus[h])[0]
                raise PlanError("nodes on one switch have different MTUs: %s" % mtus, host=host,
                                variable="llmlab_mtu", fix="set one llmlab_mtu for the whole cluster")
            switch_addresses = _node_addresses(resolved, net)
            for n in resolved:
                port = n.switch_port or (n.ports[0] if n.ports else None)
                if not port:
                    raise PlanError("node %s has no switch port" % n.name, host=n.name,
                                    variable="llmlab_profile_overrides.switch_port", fix="name the NIC cabled to the switch")
                addr = switch_addresses[n.name]
                h = hosts[n.name]
                h["node_address"] = str(addr)
                h["interfaces"].append({"name": port, "address": "%s/%d" % (addr, net.prefixlen), "mtu": mtus[n.name],
                                        "peer": "switch", "peer_address": None, "link": "switch"})
                if port in n.rdma_devices:
                    h["rdma_devices"].append(n.rdma_devices[port])
                links_out.append({"name": "switch-%s" % n.name, "a": "%s:%s" % (n.name, port), "b": "switch",
                                  "subnet": str(net.cidr), "mtu": mtus[n.name], "cable": len(links_out)})
        else:
            hosts[resolved[0].name]["node_address"] = _node_addresses(resolved, net)[resolved[0].name]
        return _result(topology, routing, net, resolved, links_out, hosts)

    physical = _default_cables(resolved, topology) if not cables else _parse_cables(cables, resolved)
    _check_shape(topology, resolved, physical)
    logical = _expand_halves(physical, by_name)

    lo_range, link_range = list(net.subnet(net.prefixlen + 1)) if net.prefixlen < 31 else (None, None)
    if lo_range is None or link_range is None or len(resolved) + 1 >= lo_range.size:
        raise _too_small(net, "%d node addresses" % len(resolved))
    if link_range.prefixlen > LINK_PREFIX or len(logical) > 2 ** (LINK_PREFIX - link_range.prefixlen):
        raise _too_small(net, "%d point-to-point links of /%d" % (len(logical), LINK_PREFIX))
    subnets = link_range.subnet(LINK_PREFIX)

    for name, addr in _node_addresses(resolved, lo_range).items():
        hosts[name]["node_address"] = addr
        hosts[name]["loopback"] = True

    # interfaces and the neighbour table (host -> peer host -> [(local port, peer address), ...])
    adj: Dict[str, Dict[str, List[Tuple[str, str]]]] = {n.name: {} for n in resolved}
    for idx, (a, b, cable) in enumerate(logical):
        subnet = next(subnets)
        na, nb = by_name[a[0]], by_name[b[0]]
        link_mtu = mtu or na.mtu
        if mtu is None and na.mtu != nb.mtu:
            raise PlanError("the cable %s - %s joins ports with different MTUs (%d and %d)"
                            % (_fmt(a), _fmt(b), na.mtu, nb.mtu), host=b[0], variable="llmlab_mtu",
                            fix="set the same mtu on both hosts, or one llmlab_mtu for the cluster")
        end_addr = {a: subnet[1], b: subnet[2]}
        name = "link-%d" % idx
        links_out.append({"name": name, "a": _fmt(a), "b": _fmt(b), "subnet": str(subnet), "mtu": link_mtu,
                          "cable": cable})
        for end, other in ((a, b), (b, a)):
            node = by_name[end[0]]
            hosts[end[0]]["interfaces"].append({
                "name": end[1], "address": "%s/%d" % (end_addr[end], LINK_PREFIX), "mtu": link_mtu,
                "peer": _fmt(other), "peer_address": str(end_addr[other]), "link": name})
            if end[1] in node.rdma_devices:
                hosts[end[0]]["rdma_devices"].append(node.rdma_devices[end[1]])
            adj[end[0]].setdefault(other[0], []).append((end[1], str(end_addr[other])))

    multipath = topology == "ring" or len(logical) > 1
    if topology == "ring" and len(resolved) >= OSPF_MIN_RING:
        routing = "ospf"
    for n in resolved:
        h = hosts[n.name]
        h["forwarding"] = topology == "ring"
        h["rp_filter"] = "loose" if multipath else "strict"
        h["ignore_routes_with_linkdown"] = multipath
        if routing == "ospf":
            h["ospf"] = {"router_id": h["node_address"], "area": "0.0.0.0",
                         "interfaces": [i["name"] for i in h["interfaces"]], "network_type": "point-to-point",
                         "passive": ["lo"], "hello_interval_s": 1, "dead_interval_s": 4,
                         "bfd": {"min_rx_ms": 100, "min_tx_ms": 100, "multiplier": 3}}
            continue
        for peer in resolved:
            if peer.name == n.name:
                continue
            to = "%s/32" % hosts[peer.name]["node_address"]
            for k, (port, via) in enumerate(adj[n.name].get(peer.name, [])):
                h["routes"].append({"to": to, "via": via, "dev": port, "metric": METRIC_DIRECT + k,
                                    "src": h["node_address"]})
            if topology == "ring":  # a ring of 3: back up through the third node
                for k, third in enumerate(t for t in adj[n.name] if t != peer.name):
                    port, via = adj[n.name][third][0]
                    h["routes"].append({"to": to, "via": via, "dev": port, "metric": METRIC_BACKUP + k,
                                        "src": h["node_address"]})
    return _result(topology, routing, net, resolved, links_out, hosts)


# Every sysctl a fabric plan may set, so that a plan that no longer needs one removes it.
SYSCTL_KEYS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.all.ignore_routes_with_linkdown",
    "net.ipv4.conf.default.ignore_routes_with_linkdown",
)


def host_sysctls(h: Mapping[str, Any]) -> Dict[str, str]:
    """The kernel settings a node's part of the plan needs: forwarding on a ring, loose reverse-path filtering and
    skipping routes over dead links where there is more than one path."""
    out: Dict[str, str] = {}
    if h.get("forwarding"):
        out["net.ipv4.ip_forward"] = "1"
    if h.get("rp_filter") == "loose":
        out.update({"net.ipv4.conf.all.rp_filter": "2", "net.ipv4.conf.default.rp_filter": "2"})
    if h.get("ignore_routes_with_linkdown"):
        out.update({"net.ipv4.conf.all.ignore_routes_with_linkdown": "1",
                    "net.ipv4.conf.default.ignore_routes_with_linkdown": "1"})
    return out


def _result(topology: str, routing: str, net: IPNetwork, nodes: List[Node], links: List[Dict[str, Any]],
            hosts: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    addresses: List[str] = []
    for n in nodes:
        h = hosts[n.name]
        h["sysctls"] = host_sysctls(h)
        for a in [h["node_address"]] + [str(IPNetwork(i["address"]).ip) for i in h["interfaces"]]:
            if a not in addresses:
                addresses.append(a)
    return {
        "topology": topology,
        "routing": routing,
        "pool": str(net.cidr),
        "nodes": [n.name for n in nodes],
        "links": links,
        "hosts": hosts,
        "cluster_addresses": addresses,
        "sysctl_keys": list(SYSCTL_KEYS),
    }


def missing_routes(planned: Sequence[Mapping[str, Any]], kernel: Sequence[Mapping[str, Any]],
                   links: Sequence[Mapping[str, Any]]) -> List[str]:
    """The planned static routes the kernel does not hold, as "to via X dev Y metric N" lines.

    `kernel` is ``ip -j -4 route show`` and `links` is ``ip -j link show``. A route whose port is missing or
    administratively down is not expected (the kernel removes those; a cut cable is reported elsewhere). The kernel
    also drops every route whose source is an address that goes away: the node address on the loopback, when
    networkd reconfigures lo, takes all of the node's routes with it, which is why this is checked at all.
    """
    up = {l["ifname"] for l in links if "UP" in l.get("flags", [])}
    have = set()
    for r in kernel:
        dst = "0.0.0.0/0" if r.get("dst") == "default" else str(IPNetwork(r["dst"]))
        have.add((dst, r.get("gateway"), r.get("dev"), int(r.get("metric", 0))))
    missing = []
    for r in planned:
        key = (str(IPNetwork(r["to"])), r["via"], r["dev"], int(r["metric"]))
        if r["dev"] in up and key not in have:
            missing.append("%s via %s dev %s metric %d" % key)
    return missing
