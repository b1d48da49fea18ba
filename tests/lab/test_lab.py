"""The simulated lab, for real: containers, SSH, veth cables, faults and a complete teardown (root + dockerd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Dict, List

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import hwfacts
from tools.simlab import engine
from tools.simlab.lab import Lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def simlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.simlab"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def dexec(node: str, *args: str) -> str:
    return engine.execute("llmlab-" + node, list(args))


def link(node: str, port: str) -> Dict:
    return json.loads(dexec(node, "ip", "-j", "link", "show", port))[0]


def lldp_neighbours(node: str, want: int, timeout: float = 30.0) -> Dict[str, str]:
    """port -> 'host:port' that LLDP hears on this node (waits until it hears `want` ports)."""
    deadline = time.time() + timeout
    seen: Dict[str, str] = {}
    while time.time() < deadline:
        data = json.loads(dexec(node, "lldpcli", "-f", "json0", "show", "neighbors"))
        seen = {i["name"]: "%s:%s" % (i["chassis"][0]["name"][0]["value"], i["port"][0]["descr"][0]["value"])
                for i in data["lldp"][0].get("interface", [])}
        if len(seen) == want:
            return seen
        time.sleep(1)
    return seen


def nothing_left() -> Dict[str, List[str]]:
    return Lab(log=lambda *_: None).leftovers()


@pytest.fixture(scope="module")
def ring4():
    down = simlab("down")
    assert down.returncode == 0, down.stderr
    up = simlab("up", "--topology", "ring", "--nodes", "4")
    assert up.returncode == 0, up.stdout + up.stderr
    yield up
    simlab("down")


def test_bad_requests_create_nothing() -> None:
    simlab("down")
    for args, words in ((["--topology", "ring", "--nodes", "2"], "use TOPOLOGY=direct NODES=2"),
                        (["--topology", "mesh", "--nodes", "3"], "unknown topology"),
                        (["--topology", "switch", "--nodes", "1"], "at least 2 nodes")):
        res = simlab("up", *args)
        assert res.returncode == 2 and words in res.stderr, res.stderr
    assert nothing_left() == {"containers": [], "networks": [], "links": [], "files": []}


def test_ring_of_four_answers_over_ssh_with_named_cables(ring4) -> None:
    ping = subprocess.run([os.path.join(BIN, "ansible"), "-i", "inventories/sim", "all", "-m", "ansible.builtin.ping"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert sorted(l.split()[0] for l in ping.stdout.splitlines() if "SUCCESS" in l) == \
        ["node1", "node2", "node3", "node4"]
    with open(os.path.join(ROOT, "inventories", "sim", "hosts.yml"), encoding="utf-8") as fh:
        inv = fh.read()
    assert "llmlab_topology: ring" in inv and "ansible_ssh_private_key_file" in inv
    expected = {
        "node1": {"enp1s0f1np1": "node2:enp1s0f0np0", "enP2p1s0f1np1": "node2:enP2p1s0f0np0",
                  "enp1s0f0np0": "node4:enp1s0f1np1", "enP2p1s0f0np0": "node4:enP2p1s0f1np1"},
        "node3": {"enp1s0f0np0": "node2:enp1s0f1np1", "enP2p1s0f0np0": "node2:enP2p1s0f1np1",
                  "enp1s0f1np1": "node4:enp1s0f0np0", "enP2p1s0f1np1": "node4:enP2p1s0f0np0"},
    }
    for node, ports in expected.items():
        brief = dexec(node, "ip", "-br", "link")
        for port in ports:
            assert port + "@" in brief
        assert lldp_neighbours(node, len(ports)) == ports
        assert dexec(node, "systemctl", "is-system-running").strip() == "running"


def test_node_facts_reports_the_cabled_ports(ring4) -> None:
    res = subprocess.run([os.path.join(BIN, "ansible"), "-i", "inventories/sim", "all", "-m", "llmlab.cluster.node_facts",
                          "-o"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))
    assert res.returncode == 0, res.stdout + res.stderr
    facts = {}
    for line in res.stdout.splitlines():
        if " | SUCCESS => " in line:
            host, _, payload = line.partition(" | SUCCESS => ")
            facts[host.strip()] = json.loads(payload)["llmlab_node"]
    assert sorted(facts) == ["node1", "node2", "node3", "node4"]
    with open(os.path.join(ROOT, ".cache", "simlab", "state.json"), encoding="utf-8") as fh:
        state = json.load(fh)
    for node, f in facts.items():
        cabled = sorted(e[1] for l in state["links"] for e in (l["a"], l["b"]) if e and e[0] == node)
        nics = {n["name"]: n for n in f["nics"]}
        assert sorted(set(nics) & set(cabled)) == cabled
        assert all(nics[p]["carrier"] and nics[p]["virtual"] and nics[p]["rdma_device"] is None for p in cabled)
        assert f["memory_gb"] > 1 and f["os"]["family"] == "debian" and f["gpus"] == [] and f["unified_memory"]
        # the nodes run on the host's CPUs (no cpuset): their physical cores are the host's, as sysfs tells them
        assert 1 <= f["cores"] <= f["cpus"]
        assert f["cores"] == (hwfacts.physical_cores(os.sched_getaffinity(0)) or f["cpus"])


def test_second_up_is_a_no_op_and_a_different_lab_is_refused(ring4) -> None:
    again = simlab("up", "--topology", "ring", "--nodes", "4")
    assert again.returncode == 0 and "nothing to do" in again.stdout
    other = simlab("up", "--topology", "switch", "--nodes", "3")
    assert other.returncode == 2 and "a different lab is up (ring of 4 nodes)" in other.stderr
    status = simlab("status")
    assert status.returncode == 0 and status.stdout.count(" running  running ") == 4


def test_cut_and_restore_a_cable(ring4) -> None:
    cut = simlab("cut", "node1:enp1s0f1np1")
    assert cut.returncode == 0, cut.stderr
    for node, port in (("node1", "enp1s0f1np1"), ("node1", "enP2p1s0f1np1"), ("node2", "enp1s0f0np0"),
                       ("node2", "enP2p1s0f0np0")):
        assert "LOWER_UP" not in link(node, port)["flags"], (node, port)
    assert "LOWER_UP" in link("node1", "enp1s0f0np0")["flags"]  # the other cable is untouched
    assert "(cut)" in simlab("status").stdout
    restore = simlab("restore", "node2:enp1s0f0np0")  # either end names the cable
    assert restore.returncode == 0, restore.stderr
    assert "LOWER_UP" in link("node1", "enp1s0f1np1")["flags"]
    assert lldp_neighbours("node1", 4)["enp1s0f1np1"] == "node2:enp1s0f0np0"
    bad = simlab("cut", "node1:eth9")
    assert bad.returncode == 2 and "no cable ends at node1:eth9" in bad.stderr


def test_power_cycle_a_node(ring4) -> None:
    stop = simlab("stop", "node3")
    assert stop.returncode == 0, stop.stderr
    # the neighbours keep their ports, without carrier, as with a real box switched off
    assert "LOWER_UP" not in link("node2", "enp1s0f1np1")["flags"]
    assert "LOWER_UP" not in link("node4", "enp1s0f0np0")["flags"]
    start = simlab("start", "node3")
    assert start.returncode == 0, start.stderr
    assert lldp_neighbours("node3", 4) == {"enp1s0f0np0": "node2:enp1s0f1np1", "enP2p1s0f0np0": "node2:enP2p1s0f1np1",
                                           "enp1s0f1np1": "node4:enp1s0f0np0", "enP2p1s0f1np1": "node4:enP2p1s0f0np0"}
    assert "LOWER_UP" in link("node2", "enp1s0f1np1")["flags"]


def test_kill_a_process(ring4) -> None:
    before = dexec("node2", "pgrep", "-x", "-o", "sshd").strip()
    res = simlab("kill", "node2", "lldpd")
    assert res.returncode == 0 and "killed" in res.stdout, res.stderr
    missing = simlab("kill", "node2", "no-such-daemon")
    assert missing.returncode == 2 and "no process named no-such-daemon runs on node2" in missing.stderr
    assert dexec("node2", "pgrep", "-x", "-o", "sshd").strip() == before  # only what was named was killed


def test_down_leaves_nothing(ring4) -> None:
    res = simlab("down")
    assert res.returncode == 0 and "removed 4 containers" in res.stdout
    assert nothing_left() == {"containers": [], "networks": [], "links": [], "files": []}


def test_down_cleans_up_after_a_failed_run() -> None:
    """Leftovers of a run that died half-way (a labelled container, the network, host-side veths) all go."""
    simlab("down")
    client = engine.client()
    client.networks.create("llmlab-mgmt", labels={"llmlab.lab": "1"})
    image = client.images.list(name="llmlab-node")[0]
    client.containers.create(image.tags[0], name="llmlab-node1", labels={"llmlab.lab": "1"})
    subprocess.run(["ip", "link", "add", "llv97a", "type", "veth", "peer", "name", "llv97b"], check=True)
    left = nothing_left()
    assert left["containers"] and left["networks"] and len(left["links"]) == 2
    res = simlab("down")
    assert res.returncode == 0, res.stderr
    assert nothing_left() == {"containers": [], "networks": [], "links": [], "files": []}


def test_a_name_clash_is_refused() -> None:
    simlab("down")
    engine.client().networks.create("llmlab-mgmt")
    try:
        res = simlab("up", "--topology", "direct", "--nodes", "2")
        assert res.returncode == 2 and "llmlab-mgmt exists and is not the lab's" in res.stderr
    finally:
        engine.remove_network("llmlab-mgmt")
    assert nothing_left()["containers"] == []


@pytest.mark.parametrize("topology,nodes", [("direct", 2), ("switch", 3)])
def test_direct_and_switch_labs(topology: str, nodes: int) -> None:
    simlab("down")
    up = simlab("up", "--topology", topology, "--nodes", str(nodes), "--shape", "eth_5g")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        if topology == "direct":
            assert lldp_neighbours("node1", 2) == {"enp1s0f1np1": "node2:enp1s0f0np0",
                                                   "enP2p1s0f1np1": "node2:enP2p1s0f0np0"}
        else:
            bridge = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", "llsw0"], capture_output=True,
                                               text=True, check=True).stdout)
            assert len(bridge) == nodes  # one switch port per node
            for i in range(1, nodes + 1):
                assert "LOWER_UP" in link("node%d" % i, "enp191s0")["flags"]
            # the switch forwards frames (Docker's FORWARD policy does not eat them): a test address each
            dexec("node1", "ip", "addr", "add", "10.99.0.1/24", "dev", "enp191s0")
            dexec("node2", "ip", "addr", "add", "10.99.0.2/24", "dev", "enp191s0")
            assert " 0% packet loss" in dexec("node1", "ping", "-c", "2", "-W", "1", "10.99.0.2")
        # shaping: every cable end is rate-limited like 5GbE
        assert "rate 4700Mbit" in dexec("node1", "tc", "qdisc", "show", "dev",
                                        "enp191s0" if topology == "switch" else "enp1s0f1np1")
    finally:
        down = simlab("down")
    assert down.returncode == 0
    assert nothing_left() == {"containers": [], "networks": [], "links": [], "files": []}
