"""pytest-testinfra checks of a deployed cluster, host by host, against the plan it was deployed from.

    pytest tests/deployed --hosts='ansible://llmlab_nodes' --ansible-inventory=inventories/sim

testinfra's ansible backend reads the inventory (ansible-inventory, from this venv) and then talks to each node over
SSH with the inventory's user, key and sudo. The plan is the one preflight wrote beside the inventory
(<inventory>/artifacts/plan.json), or LLMLAB_PLAN_FILE.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ansible-inventory and ansible from the venv pytest runs in, with this checkout's ansible.cfg (the Vault password)
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))


@pytest.fixture(scope="session")
def inventory(pytestconfig) -> str:
    inv = pytestconfig.getoption("ansible_inventory")
    if not inv:
        pytest.fail("give the inventory: --ansible-inventory=inventories/sim")
    return os.path.abspath(inv)


@pytest.fixture(scope="session")
def deployed_plan(inventory) -> Dict[str, Any]:
    path = os.environ.get("LLMLAB_PLAN_FILE") or os.path.join(
        inventory if os.path.isdir(inventory) else os.path.dirname(inventory), "artifacts", "plan.json")
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture(scope="session")
def management_addresses(inventory) -> set:
    """Every node's ansible_host (the management network), from the inventory as Ansible reads it."""
    import testinfra.utils.ansible_runner as ar

    runner = ar.AnsibleRunner(inventory)
    return {runner.get_variables(h).get("ansible_host", h) for h in runner.get_hosts("llmlab_nodes")}
