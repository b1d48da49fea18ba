"""Bring the simulated lab up and down, report it, and inject faults. Needs root and a running dockerd."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import engine
from . import image as image_mod
from . import inputs
from .spec import MGMT_SUBNET, PREFIX, ROOT, LabError, LabSpec, cabling, management_address

CACHE = os.path.join(ROOT, ".cache", "simlab")
STATE = os.path.join(CACHE, "state.json")
KEY = os.path.join(CACHE, "id_ed25519")
KNOWN_HOSTS = os.path.join(CACHE, "known_hosts")
INVENTORY = os.path.join(ROOT, "inventories", "sim", "hosts.yml")
NETWORK = PREFIX + "-mgmt"
BRIDGE = "llsw0"
SWITCH_RULE = ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT", "-m", "comment", "--comment", "llmlab lab switch"]
VETH_PREFIX = "llv"
LABEL = "llmlab.lab"


def sh(args: List[str], check: bool = True, capture: bool = True) -> str:
    """Host commands (ip, nsenter, tc, iptables, ssh-keygen): Docker itself goes through `engine`."""
    res = subprocess.run(args, capture_output=capture, text=True)
    if check and res.returncode != 0:
        raise LabError("%s failed (%d): %s" % (" ".join(args), res.returncode, (res.stderr or res.stdout).strip()))
    return res.stdout if capture else ""


def container(node: str) -> str:
    return "%s-%s" % (PREFIX, node)


def _pid(node: str) -> int:
    pid = engine.pid(container(node))
    if pid <= 0:
        raise LabError("node %s is not running" % node)
    return pid


def _netns(node: str) -> List[str]:
    return ["nsenter", "--net=/proc/%d/ns/net" % _pid(node)]


def _exec(node: str, args: List[str], check: bool = True) -> str:
    return engine.execute(container(node), args, check=check)


def _lab_containers() -> Dict[str, str]:
    """Name -> state (running, exited...) of every container a lab made."""
    return {c.name: c.status for c in engine.labelled(LABEL)}


def _read_state() -> Optional[Dict[str, Any]]:
    if not os.path.exists(STATE):
        return None
    with open(STATE, encoding="utf-8") as fh:
        return json.load(fh)


def _write_state(state: Dict[str, Any]) -> None:
    os.makedirs(CACHE, exist_ok=True)
    tmp = STATE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, indent=2, sort_keys=True)
    os.replace(tmp, STATE)


class Lab:
    def __init__(self, log=print) -> None:
        self.log = log

    # --- up -------------------------------------------------------------------------------------------------

    def up(self, spec: LabSpec) -> Dict[str, Any]:
        plan = cabling(spec)  # refuses bad cabling before anything is created
        inputs.ensure(self.log)  # the model file and the Vault-encrypted API key the inventory names
        state = _read_state()
        existing = _lab_containers()
        if state or existing:
            if state and LabSpec(**state["spec"]) == spec and self._healthy(state):
                self.log("lab %s of %d nodes is already up: nothing to do" % (spec.topology, spec.nodes))
                return state
            have = ("%s of %d nodes" % (state["spec"]["topology"], state["spec"]["nodes"])) if state else \
                "%d leftover containers" % len(existing)
            raise LabError("a different lab is up (%s): run `make sim-down` first" % have)
        self._check_clashes(spec)
        try:
            return self._create(spec, plan)
        except BaseException:
            self.log("sim-up failed: cleaning up what it created")
            self.down(quiet=True)
            raise

    def _check_clashes(self, spec: LabSpec) -> None:
        for node in spec.node_names():
            if engine.find(container(node)) is not None:
                raise LabError("a container named %s exists and is not part of a lab: remove it or rename it"
                               % container(node))
        if engine.network_labels(NETWORK) is not None and not self._our_network():
            raise LabError("a docker network named %s exists and is not the lab's" % NETWORK)
        if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
            raise LabError("a bridge named %s exists: run `make sim-down` (it cleans leftovers too)" % BRIDGE)

    def _create(self, spec: LabSpec, plan: Dict[str, Any]) -> Dict[str, Any]:
        start = time.time()
        img = image_mod.build(self.log)
        self._ssh_key()
        if engine.network_labels(NETWORK) is None:
            engine.create_network(NETWORK, MGMT_SUBNET, {LABEL: "1"})
        nodes = {}
        for i, node in enumerate(spec.node_names()):
            addr = management_address(i)
            engine.run_node(container(node), img, hostname=node, network=NETWORK, address=addr,
                            labels={LABEL: "1", "llmlab.node": node})
            nodes[node] = {"management_address": addr, "container": container(node)}
        for node in nodes:
            self._wait_booted(node)
            self._own_etc(node, first_boot=True)
        state = {"spec": spec.as_dict(), "image": img, "nodes": nodes, "links": plan["links"],
                 "cut": [], "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if spec.topology == "switch":
            sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
            sh(["ip", "link", "set", BRIDGE, "mtu", "9000", "up"])
            # Docker loads br_netfilter and sets FORWARD to DROP: bridged frames would die in iptables. A switch
            # does not filter, so the lab's bridge is let through.
            if subprocess.run(["iptables", "-C"] + SWITCH_RULE, capture_output=True).returncode != 0:
                sh(["iptables", "-I"] + SWITCH_RULE)
        for link in plan["links"]:
            self._plug(link, spec.shape)
        self._install_ssh(nodes)
        _write_state(state)
        self._write_inventory(state)
        for node in nodes:
            self._wait_ssh(node, nodes[node]["management_address"])
        self.log("lab %s of %d nodes up in %.0f s; inventory %s" % (spec.topology, spec.nodes, time.time() - start,
                                                                   os.path.relpath(INVENTORY, ROOT)))
        return state

    def _own_etc(self, node: str, first_boot: bool) -> None:
        """Docker bind-mounts /etc/hosts and /etc/hostname, which no tool can replace atomically (rename fails
        with EBUSY): unmount them so the node has real files, as a real box does. At first boot the node keeps
        Docker's content; after a restart, the content it had before (what roles wrote there survives)."""
        for path in ("/etc/hosts", "/etc/hostname"):
            keep = "cp %s /run/llmlab-docker-etc && " % path if first_boot else ""
            back = " && cat /run/llmlab-docker-etc > %s" % path if first_boot else ""
            _exec(node, ["sh", "-c", "if mountpoint -q %s; then %sumount %s%s; fi" % (path, keep, path, back)])

    def _wait_booted(self, node: str, timeout: float = 240.0) -> None:
        """Until systemd says the node is up. A node that starts vLLM's containers at boot takes longer than 90 s on
        this 2-core machine (a vllm-direct power cycle, 2026-12-02); on a timeout the jobs still pending are named."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            last = engine.output(container(node), ["systemctl", "is-system-running"]).strip()
            if last in ("running", "degraded"):
                if last == "degraded":
                    failed = _exec(node, ["systemctl", "--failed", "--no-legend", "--plain"], check=False)
                    raise LabError("node %s booted degraded: %s" % (node, failed.strip()))
                return
            time.sleep(0.5)
        jobs = _exec(node, ["systemctl", "list-jobs", "--no-legend", "--plain"], check=False)
        raise LabError("node %s did not finish booting in %.0f s (systemd: %s; jobs pending: %s)"
                       % (node, timeout, last or "?", " | ".join(jobs.strip().splitlines()[:8]) or "none"))

    # --- cables ---------------------------------------------------------------------------------------------

    def _plug(self, link: Dict[str, Any], shape: Optional[str]) -> None:
        """One veth pair per logical link, created straight into the nodes' network namespaces and renamed
        there like the hardware's ports; switch ports get their other end on the lab bridge."""
        a_node, a_port = link["a"]
        tmp_a = "%s%da" % (VETH_PREFIX, link["id"])
        if link["b"] is None:
            tmp_b = "%s%ds" % (VETH_PREFIX, link["id"])
            sh(["ip", "link", "add", tmp_a, "netns", str(_pid(a_node)), "type", "veth", "peer", "name", tmp_b])
            sh(["ip", "link", "set", tmp_b, "mtu", "9000", "master", BRIDGE, "up"])
        else:
            b_node, b_port = link["b"]
            tmp_b = "%s%db" % (VETH_PREFIX, link["id"])
            sh(["ip", "link", "add", tmp_a, "netns", str(_pid(a_node)), "type", "veth",
                "peer", "name", tmp_b, "netns", str(_pid(b_node))])
            sh(_netns(b_node) + ["ip", "link", "set", tmp_b, "name", b_port])
            sh(_netns(b_node) + ["ip", "link", "set", b_port, "up"])
            if shape:
                self._shape(b_node, b_port, shape)
        sh(_netns(a_node) + ["ip", "link", "set", tmp_a, "name", a_port])
        sh(_netns(a_node) + ["ip", "link", "set", a_port, "up"])
        if shape:
            self._shape(a_node, a_port, shape)

    def _shape(self, node: str, port: str, shape: str) -> None:
        """Rate-limit a port like its link class (tbf). This kernel has no netem: latency is not shaped."""
        from .spec import LINKS
        gbps = LINKS[shape]["gbps"]
        sh(_netns(node) + ["tc", "qdisc", "replace", "dev", port, "root", "tbf", "rate", "%gGbit" % gbps,
                           "burst", "1mb", "latency", "50ms"])

    def _links_of(self, state: Dict[str, Any], node: str) -> List[Dict[str, Any]]:
        return [l for l in state["links"] if l["a"][0] == node or (l["b"] and l["b"][0] == node)]

    def _find_cable(self, state: Dict[str, Any], end: str) -> int:
        node, _, port = end.partition(":")
        for l in state["links"]:
            for e in (l["a"], l["b"]):
                if e and e[0] == node and e[1] == port:
                    return int(l["cable"])
        raise LabError("no cable ends at %s; cables: %s" % (end, ", ".join(sorted(
            "%s:%s" % tuple(e) for l in state["links"] for e in (l["a"], l["b"]) if e))))

    def _set_cable(self, end: str, up: bool) -> List[str]:
        state = self._state()
        cable = self._find_cable(state, end)
        touched = []
        for l in state["links"]:
            if l["cable"] != cable:
                continue
            for e in (l["a"], l["b"]):
                if e is None:  # the switch side: the node's port is what goes dark
                    continue
                sh(_netns(e[0]) + ["ip", "link", "set", e[1], "up" if up else "down"])
                touched.append("%s:%s" % tuple(e))
        cut = set(state.get("cut", []))
        cut.discard(cable) if up else cut.add(cable)
        state["cut"] = sorted(cut)
        _write_state(state)
        return touched

    def cut(self, end: str) -> List[str]:
        ends = self._set_cable(end, up=False)
        self.log("cable cut: %s" % ", ".join(ends))
        return ends

    def restore(self, end: str) -> List[str]:
        ends = self._set_cable(end, up=True)
        self.log("cable restored: %s" % ", ".join(ends))
        return ends

    def rename(self, end: str, new_name: str) -> None:
        """A hardware change: the port at `end` shows up under another name (a new NIC, another slot)."""
        state = self._state()
        node, _, port = end.partition(":")
        self._find_cable(state, end)
        if not new_name or len(new_name) > 15:
            raise LabError("a port name has 1 to 15 characters, got %r" % new_name)
        sh(_netns(node) + ["ip", "link", "set", port, "down"])
        sh(_netns(node) + ["ip", "link", "set", port, "name", new_name])
        sh(_netns(node) + ["ip", "link", "set", new_name, "up"])
        for l in state["links"]:
            for e in (l["a"], l["b"]):
                if e and e[0] == node and e[1] == port:
                    e[1] = new_name
        _write_state(state)
        self.log("port renamed: %s is now %s:%s" % (end, node, new_name))

    def replace(self, node: str) -> None:
        """A node swapped for another box of the same name: new SSH host keys (the lab's own known_hosts,
        the controller's view, is updated; the cluster's is the fabric role's job)."""
        state = self._state()
        self._known(state, node)
        _exec(node, ["sh", "-c", "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh"])
        self._install_ssh({node: state["nodes"][node]}, update=True)
        self._wait_ssh(node, state["nodes"][node]["management_address"])
        self.log("node %s replaced: new SSH host keys" % node)

    # --- nodes ----------------------------------------------------------------------------------------------

    def _ends_on(self, state: Dict[str, Any], node: str) -> List[Tuple[int, str, str]]:
        """(link id, port, parking name) of every cable end on a node."""
        out = []
        for l in self._links_of(state, node):
            for side, e in (("a", l["a"]), ("b", l["b"])):
                if e and e[0] == node:
                    out.append((int(l["id"]), e[1], "%sp%d%s" % (VETH_PREFIX, l["id"], side)))
        return out

    def stop(self, node: str) -> None:
        """Power a node off. Its cable ends are parked on the host first, down, so that the peers keep their
        ports and see the carrier drop, as they would with a real box switched off."""
        state = self._state()
        self._known(state, node)
        for _, port, park in self._ends_on(state, node):
            sh(_netns(node) + ["ip", "link", "set", port, "down"])
            sh(_netns(node) + ["ip", "link", "set", port, "name", park])
            sh(_netns(node) + ["ip", "link", "set", park, "netns", str(os.getpid())])
        engine.stop(container(node), timeout=20)
        self.log("node %s stopped; its cables are unplugged at its end" % node)

    def start(self, node: str) -> None:
        """Power a node back on with its parked cable ends plugged back in, and wait until it has booted."""
        state = self._state()
        self._known(state, node)
        if _lab_containers().get(container(node)) == "running":
            raise LabError("node %s is already running" % node)
        engine.start(container(node))
        # The cables are in as the box powers on, as on a real one: units ordered after network-online.target
        # (Docker, and vLLM's containers with it) wait at boot for the fabric ports that networkd configures.
        host_links = set(self._host_links())
        by_id = {int(l["id"]): l for l in state["links"]}
        for link_id, port, park in self._ends_on(state, node):
            if park in host_links:
                sh(["ip", "link", "set", park, "netns", str(_pid(node))])
                sh(_netns(node) + ["ip", "link", "set", park, "name", port])
                if by_id[link_id]["cable"] not in state.get("cut", []):
                    sh(_netns(node) + ["ip", "link", "set", port, "up"])
            else:  # the node died without `stop` (its veth pairs died with it): plug a new cable
                self._plug(by_id[link_id], state["spec"].get("shape"))
        self._wait_booted(node)
        self._own_etc(node, first_boot=False)
        self._wait_ssh(node, state["nodes"][node]["management_address"])
        self.log("node %s started and its cables plugged back in" % node)

    def kill(self, node: str, process: str) -> int:
        state = self._state()
        self._known(state, node)
        count = int(engine.output(container(node), ["pkill", "-KILL", "-c", "-x", process]).strip() or 0)
        if count == 0:
            raise LabError("no process named %s runs on %s" % (process, node))
        self.log("killed %d process(es) named %s on %s" % (count, process, node))
        return count

    def _known(self, state: Dict[str, Any], node: str) -> None:
        if node not in state["nodes"]:
            raise LabError("no node %s in the lab (nodes: %s)" % (node, ", ".join(state["nodes"])))

    # --- SSH ------------------------------------------------------------------------------------------------

    def _ssh_key(self) -> None:
        os.makedirs(CACHE, exist_ok=True)
        if not os.path.exists(KEY):
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "llmlab-sim", "-f", KEY])

    def _install_ssh(self, nodes: Dict[str, Dict[str, Any]], update: bool = False) -> None:
        with open(KEY + ".pub", encoding="utf-8") as fh:
            pub = fh.read()
        lines = []
        for node, info in nodes.items():
            self._wait_for(lambda: engine.returncode(container(node), ["test", "-s",
                                                                       "/etc/ssh/ssh_host_ed25519_key.pub"]) == 0,
                           "%s's SSH host key" % node)
            _exec(node, ["install", "-d", "-m", "0700", "-o", "llmlab", "-g", "llmlab", "/home/llmlab/.ssh"])
            ids = _exec(node, ["id", "-u", "llmlab"]).strip(), _exec(node, ["id", "-g", "llmlab"]).strip()
            engine.put_file(container(node), "/home/llmlab/.ssh/authorized_keys", pub, uid=int(ids[0]),
                            gid=int(ids[1]), mode=0o600)
            hostkey = _exec(node, ["cat", "/etc/ssh/ssh_host_ed25519_key.pub"]).split()
            lines.append("%s %s %s" % (info["management_address"], hostkey[0], hostkey[1]))
        if update and os.path.exists(KNOWN_HOSTS):
            mine = {l.split()[0] for l in lines}
            with open(KNOWN_HOSTS, encoding="utf-8") as fh:
                lines = [l.rstrip("\n") for l in fh if l.split() and l.split()[0] not in mine] + lines
        with open(KNOWN_HOSTS, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def _wait_for(self, check, what: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise LabError("timed out waiting for %s" % what)

    def _ssh_args(self, address: str) -> List[str]:
        return ["ssh", "-i", KEY, "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + KNOWN_HOSTS,
                "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=3", "llmlab@" + address]

    def _wait_ssh(self, node: str, address: str) -> None:
        self._wait_for(lambda: subprocess.run(self._ssh_args(address) + ["true"], capture_output=True).returncode == 0,
                       "SSH to %s (%s)" % (node, address))

    def _write_inventory(self, state: Dict[str, Any]) -> None:
        spec = state["spec"]
        lines = ["---", "# Written by the simulated lab (tools/simlab) for a %s of %d nodes. Do not edit: "
                 "`make sim-up` rewrites it." % (spec["topology"], spec["nodes"]),
                 "all:", "  vars:",
                 "    ansible_user: llmlab",
                 "    ansible_become: true",
                 "    ansible_python_interpreter: /usr/bin/python3",
                 "    ansible_ssh_private_key_file: %s" % KEY,
                 "    ansible_ssh_common_args: >-",
                 "      -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes" % KNOWN_HOSTS,
                 "    llmlab_topology: %s" % spec["topology"],
                 "    llmlab_management_networks: [%s]" % MGMT_SUBNET,
                 "  children:", "    llmlab_nodes:", "      hosts:"]
        for node, info in state["nodes"].items():
            lines.append("        %s: {ansible_host: %s, llmlab_profile: sim}" % (node, info["management_address"]))
        os.makedirs(os.path.dirname(INVENTORY), exist_ok=True)
        with open(INVENTORY, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    # --- status and down ------------------------------------------------------------------------------------

    def _state(self) -> Dict[str, Any]:
        state = _read_state()
        if not state:
            raise LabError("no lab is up: run `make sim-up`")
        return state

    def _healthy(self, state: Dict[str, Any]) -> bool:
        running = _lab_containers()
        return all(running.get(container(n)) == "running" for n in state["nodes"])

    def status(self) -> List[Dict[str, Any]]:
        state = _read_state()
        if not state:
            leftovers = _lab_containers()
            self.log("no lab is up" + (" (but %d leftover containers: run `make sim-down`)" % len(leftovers)
                                       if leftovers else ""))
            return []
        running = _lab_containers()
        rows = []
        for node, info in state["nodes"].items():
            st = running.get(container(node), "missing")
            ports = []
            if st == "running":
                systemd = _exec(node, ["systemctl", "is-system-running"], check=False).strip()
                for l in self._links_of(state, node):
                    mine, other = (l["a"], l["b"]) if l["a"][0] == node else (l["b"], l["a"])
                    ports.append("%s->%s%s" % (mine[1], "switch" if other is None else "%s:%s" % tuple(other),
                                               " (cut)" if l["cable"] in state.get("cut", []) else ""))
            else:
                systemd = "-"
            rows.append({"node": node, "container": st, "systemd": systemd,
                         "management": info["management_address"], "ports": ports})
        spec = state["spec"]
        self.log("lab: %s of %d nodes%s, image %s" % (spec["topology"], spec["nodes"],
                                                      ", shaped as %s" % spec["shape"] if spec.get("shape") else "",
                                                      state["image"]))
        for r in rows:
            self.log("  %-6s %-8s %-8s %-15s %s" % (r["node"], r["container"], r["systemd"], r["management"],
                                                   "  ".join(r["ports"])))
        return rows

    def down(self, quiet: bool = False) -> Dict[str, int]:
        """Remove everything a lab (or a failed run of one) left: containers, network, bridge, veths, state."""
        removed = {"containers": 0, "networks": 0, "links": 0}
        for name in _lab_containers():
            engine.remove(name)
            removed["containers"] += 1
        if self._our_network():
            engine.remove_network(NETWORK)
            removed["networks"] += 1
        for name in self._host_links():
            subprocess.run(["ip", "link", "del", name], capture_output=True)
            removed["links"] += 1
        for _ in range(16):  # the switch's pass-through rule, as often as a crashed run may have added it
            if subprocess.run(["iptables", "-D"] + SWITCH_RULE, capture_output=True).returncode != 0:
                break
        for path in (STATE, INVENTORY):
            if os.path.exists(path):
                os.remove(path)
        if not quiet:
            self.log("lab down: removed %(containers)d containers, %(networks)d networks, %(links)d links" % removed)
        return removed

    def _our_network(self) -> bool:
        return LABEL in (engine.network_labels(NETWORK) or {})

    def _host_links(self) -> Iterable[str]:
        out = sh(["ip", "-j", "link", "show"])
        for link in json.loads(out or "[]"):
            name = link.get("ifname", "")
            if name == BRIDGE or name.startswith(VETH_PREFIX):
                yield name

    def leftovers(self) -> Dict[str, List[str]]:
        """What of a lab exists on this machine (for tests of `down`)."""
        nets = [NETWORK] if self._our_network() else []
        rule = subprocess.run(["iptables", "-C"] + SWITCH_RULE, capture_output=True).returncode == 0
        return {"containers": sorted(_lab_containers()), "networks": nets,
                "links": list(self._host_links()) + (["iptables:" + " ".join(SWITCH_RULE)] if rule else []),
                "files": [p for p in (STATE, INVENTORY) if os.path.exists(p)]}

