"""Command line of the simulated lab: python -m tools.simlab {image,up,down,status,cut,restore,stop,start,kill}."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .image import build as image_build
from .lab import Lab
from .spec import LabError, validate


def backend_inputs(backend: str) -> None:
    """A backend that needs more than the nodes in the lab has a module ``inputs_<backend>`` here with ``build()``
    (built once per recipe); the others need nothing."""
    if not backend.isidentifier():
        raise LabError("no such backend: %r" % backend)
    try:
        mod = importlib.import_module("tools.simlab.inputs_" + backend)
    except ModuleNotFoundError:
        print("simlab: %s needs nothing besides the nodes" % backend)
        return
    mod.build()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="simlab", description="The llmlab.cluster simulated lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("image", help="build the node image (no-op when its recipe is unchanged)")
    bi = sub.add_parser("backend-inputs", help="what the lab needs to run a backend besides its nodes (e.g. an image)")
    bi.add_argument("backend")
    up = sub.add_parser("up", help="boot nodes and cable them")
    up.add_argument("--topology", default="ring")
    up.add_argument("--nodes", default="3")
    up.add_argument("--shape", default=None, help="rate-limit every cable like a link class (cx7_200g, eth_5g, ...)")
    sub.add_parser("down", help="remove the lab and anything a failed run left")
    sub.add_parser("status", help="nodes, systemd state, addresses, cables")
    for name, helptext in (("cut", "cut a cable (both ConnectX-7 halves, both ends)"), ("restore", "plug it back")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("end", help="one end of the cable, node:port (e.g. node1:enp1s0f1np1)")
    r = sub.add_parser("rename", help="rename a port, as a hardware change would (new NIC name)")
    r.add_argument("end", help="node:port")
    r.add_argument("new_name")
    rp = sub.add_parser("replace", help="swap a node for a new box of the same name (new SSH host keys)")
    rp.add_argument("node")
    for name in ("stop", "start"):
        c = sub.add_parser(name, help="%s a node (a power cycle is stop then start)" % name)
        c.add_argument("node")
    k = sub.add_parser("kill", help="SIGKILL a process on a node")
    k.add_argument("node")
    k.add_argument("process")
    args = p.parse_args(argv)

    try:
        if args.cmd == "up":
            spec = validate(args.topology, args.nodes, args.shape or None)  # refused before anything is touched
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces, veth pairs, docker)")
        lab = Lab()
        actions = {
            "image": image_build,
            "backend-inputs": lambda: backend_inputs(args.backend),
            "up": lambda: lab.up(spec),
            "down": lab.down,
            "status": lab.status,
            "cut": lambda: lab.cut(args.end),
            "restore": lambda: lab.restore(args.end),
            "rename": lambda: lab.rename(args.end, args.new_name),
            "replace": lambda: lab.replace(args.node),
            "stop": lambda: lab.stop(args.node),
            "start": lambda: lab.start(args.node),
            "kill": lambda: lab.kill(args.node, args.process),
        }
        actions[args.cmd]()
    except LabError as exc:
        print("simlab: %s" % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
