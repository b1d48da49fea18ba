"""The deployed state of every node, as the plan says it should be: each planned service active, enabled and bound
exactly where the plan binds it (cluster services on the fabric, never on the management network nor 0.0.0.0; the
API only on the head's API address), the fabric's addresses, MTU and sysctls, and the fabric firewall admitting the
peers. Backend-neutral: the services come from the plan, whatever the backend."""

from __future__ import annotations

import pytest


def _name(host) -> str:
    return host.backend.get_hostname()


def _established_peers(host, address: str, port: int) -> set:
    """The peer addresses of the established TCP connections whose local end is ``address:port`` (ss)."""
    out = host.check_output("ss -Htn state established '( sport = :%d )'" % port)
    peers = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-2].rsplit(":", 1)[0].strip("[]") == address:
            peers.add(fields[-1].rsplit(":", 1)[0].strip("[]"))
    return peers


def test_planned_services_are_active_enabled_and_bound_exactly_where_planned(host, deployed_plan,
                                                                             management_addresses) -> None:
    node = _name(host)
    plan = deployed_plan["plan"]
    if not plan["services"]:
        pytest.skip("the plan serves nothing (llmlab_backend: none): no service to check")
    if node not in plan["nodes_used"]:
        pytest.skip("the plan leaves %s idle (%s)" % (node, "; ".join(plan.get("reasons", []))[:200]))
    services = plan["services"].get(node, {})
    assert services, "the plan runs nothing on %s, which it uses" % node
    fabric = set(deployed_plan["fabric"]["cluster_addresses"])
    listening = host.socket.get_listening_sockets()
    for name, svc in services.items():
        unit = host.service(svc["unit"].removesuffix(".service"))
        assert unit.is_running and unit.is_enabled, "%s on %s" % (svc["unit"], node)
        if svc.get("port") is None:
            continue   # a process with no port of its own (a vLLM rank reached through torch.distributed)
        exact = host.socket("tcp://%s:%d" % (svc["bind"], svc["port"])).is_listening
        wild = {"tcp://0.0.0.0:%d" % svc["port"], "tcp://:::%d" % svc["port"]} & set(listening)
        if not exact and svc.get("connected_from"):
            # a service that stops listening once its peers are connected (a distributed-llama worker): bound where
            # planned means an established connection on that address and port from one of the planned peers
            peers = _established_peers(host, svc["bind"], svc["port"])
            assert peers & set(svc["connected_from"]), (node, name, svc["bind"], svc["port"], peers)
            assert not wild, (node, name, wild)
            continue
        if svc.get("wildcard_bind"):
            # the plan says this service binds every address whatever it is told, and why (Ray): listening there is
            # what is expected; the verify stage checks the firewall closes it from the management network
            assert exact or wild, (node, name, svc["wildcard_bind"], listening)
            continue
        # the exact bind: testinfra's is_listening is false for a service bound only to 0.0.0.0, so the wildcard is
        # asserted absent on its own
        assert exact, (node, name, svc, listening)
        assert not wild, (node, name, wild)
        if svc["bind"].startswith("127.") or svc["bind"] == "::1":
            continue   # local only: reached through a proxy on the same node (distributed-llama's API)
        if svc["bind"] in fabric:  # cluster-internal: never on the management network
            for addr in management_addresses:
                assert "tcp://%s:%d" % (addr, svc["port"]) not in listening, (node, name, addr)
        else:  # the one port clients reach: the API, on the head, at the plan's API address
            api = plan["api"]
            assert (node, svc["bind"], svc["port"]) == (api["host"], api["address"], api["port"]), (node, name, svc)


def test_fabric_addresses_mtu_sysctls_and_firewall(host, deployed_plan) -> None:
    node = _name(host)
    fabric = deployed_plan["fabric"]
    mine = fabric["hosts"][node]
    for iface in mine["interfaces"]:
        nic = host.interface(iface["name"])
        assert nic.exists, (node, iface["name"])
        assert iface["address"].split("/")[0] in nic.addresses, (node, iface)
        assert nic.link[0]["mtu"] == iface["mtu"], (node, iface["name"], nic.link)
    for key, value in mine["sysctls"].items():
        assert str(host.sysctl(key)) == str(value), (node, key)
    with host.sudo():
        assert "table inet llmlab_fabric" in host.check_output("nft list tables")
        ruleset = host.check_output("nft list table inet llmlab_fabric")
    for peer, theirs in fabric["hosts"].items():
        if peer != node:
            assert theirs["node_address"] in ruleset, (node, peer)
    assert host.service("llmlab-fabric-firewall").is_enabled
