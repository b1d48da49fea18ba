"""What a lab is (topology, node count, shaping) and the checks that refuse bad requests before anything exists.

Pure functions: no docker, no root. Unit-tested in tests/unit/test_simlab_spec.py.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_COLLECTIONS = os.path.join(ROOT, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.llmlab.cluster.plugins.module_utils.constants import TOPOLOGIES  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import LINKS  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.topology import plan_fabric  # noqa: E402

LAB_TOPOLOGIES = ("direct", "ring", "switch")
MAX_NODES = 8                     # 2 cores, 24 GB: more boxes than this do not fit the machine
PREFIX = "llmlab"                 # containers llmlab-node1..., network llmlab-mgmt, bridge llsw0, veths llv*
MGMT_SUBNET = "172.31.213.0/24"   # the lab's management LAN (never inside a fabric pool)
MGMT_FIRST_HOST = 11
NODE_NAME = "node%d"


class LabError(Exception):
    """A request the lab refuses; the message says what to do instead."""


@dataclass(frozen=True)
class LabSpec:
    topology: str
    nodes: int
    shape: Optional[str] = None

    def node_names(self) -> List[str]:
        return [NODE_NAME % (i + 1) for i in range(self.nodes)]

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def validate(topology: str, nodes: Any, shape: Optional[str] = None) -> LabSpec:
    if topology not in LAB_TOPOLOGIES:
        raise LabError("unknown topology %r: the lab builds %s" % (topology, ", ".join(LAB_TOPOLOGIES)))
    try:
        count = int(nodes)
    except (TypeError, ValueError):
        raise LabError("NODES must be a whole number, got %r" % (nodes,))
    low, high = TOPOLOGIES[topology]
    if count < low or (high is not None and count > high):
        if topology == "ring" and count == 2:
            raise LabError("a ring of 2 is two cables between the same pair: use TOPOLOGY=direct NODES=2")
        want = str(low) if high == low else "at least %d" % low
        raise LabError("topology %s needs %s nodes, NODES=%d" % (topology, want, count))
    if count > MAX_NODES:
        raise LabError("NODES=%d is more than this machine can hold (%d at most)" % (count, MAX_NODES))
    if shape is not None and shape not in LINKS:
        raise LabError("unknown link class %r for SHAPE: use one of %s" % (shape, ", ".join(sorted(LINKS))))
    return LabSpec(topology=topology, nodes=count, shape=shape)


def cabling(spec: LabSpec) -> Dict[str, Any]:
    """The lab's cables: the fabric planner's default cabling for sim nodes (addresses are ignored: cables carry
    none; configuring them is the fabric role's job)."""
    nodes = [{"name": n, "profile": "sim"} for n in spec.node_names()]
    try:
        fabric = plan_fabric(nodes, spec.topology)
    except PlanError as exc:  # pragma: no cover - validate() already refused what the planner refuses
        raise LabError(str(exc))
    links = []
    for link in fabric["links"]:
        a_host, a_port = link["a"].split(":")
        if link["b"] == "switch":
            links.append({"id": len(links), "cable": link["cable"], "a": [a_host, a_port], "b": None})
        else:
            b_host, b_port = link["b"].split(":")
            links.append({"id": len(links), "cable": link["cable"], "a": [a_host, a_port], "b": [b_host, b_port]})
    return {"topology": spec.topology, "links": links}


def management_address(index: int) -> str:
    base = MGMT_SUBNET.split("/")[0].rsplit(".", 1)[0]
    return "%s.%d" % (base, MGMT_FIRST_HOST + index)
