"""Preflight on the lab: the contract and the nodes' facts stop bad runs before any host is changed.

The playbooks run through ansible-runner; the verdicts (the refusal's words, the hosts changed, the plays that ran)
are read from its events, not from the text log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from tools.runner_events import Run, run_playbook
from tools.simlab import engine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAN = os.path.join(ROOT, "inventories", "sim", "artifacts", "plan.json")


def simlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.simlab"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def playbook(book: str, *args: str, refused: bool = True) -> Run:
    """Most runs here are refusals (meant to fail: CI's digest leaves them out; the tests check why)."""
    return run_playbook(book, "inventories/sim", args, name="lab-preflight", expect_failure=refused)


def nothing_configured() -> bool:
    for n in (1, 2, 3):
        out = engine.execute("llmlab-node%d" % n, ["sh", "-c", "ls /etc/systemd/network/60-llmlab-* "
                                                   "/etc/sysctl.d/60-llmlab-* 2>/dev/null | wc -l"]).strip()
        if out != "0":
            return False
    return True


@pytest.fixture(scope="module")
def ring3():
    simlab("down")
    up = simlab("up", "--topology", "ring", "--nodes", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    yield
    simlab("down")


def test_preflight_passes_and_publishes_the_plan(ring3) -> None:
    if os.path.exists(PLAN):
        os.remove(PLAN)
    res = playbook("playbooks/preflight.yml", refused=False)
    assert res.rc == 0, res.failures()
    assert "why: chosen: llamacpp_rpc TP=1 PP=3 on node1, node2, node3" in res.stdout
    with open(PLAN, encoding="utf-8") as fh:
        assert json.load(fh)["plan"]["backend"] == "llamacpp_rpc"
    assert nothing_configured()


@pytest.mark.parametrize("extra,words", [
    # distributed-llama on the ring's 3 nodes: not a power of two (v0.16.4 aborts on it), refused before any change;
    # the sim inventory pins llmlab_pipeline_parallel to the node count, distributed-llama has no pipeline stages
    (["-e", "llmlab_backend=distributed_llama", "-e", "llmlab_tensor_parallel=3", "-e", "llmlab_pipeline_parallel=1"],
     "distributed-llama needs a power-of-two node count, not 3"),
    (["-e", '{"llmlab_cables": "node1:enp1s0f1np1"}'], "[host node1, variable llmlab_cables]"),
    (["-e", "llmlab_model=meta-llama/Llama-3.1-405B-Instruct"], "no plan fits meta-llama/Llama-3.1-405B-Instruct"),
    (["-e", '{"llmlab_profile_overrides": {"memory_gb": 128, "usable_memory_gb": 110}}'],
     "the host has"),
    # a sweep's list with a level of 0
    (["-e", '{"llmlab_benchmark_parallel": [1, 0, 4]}'], "[variable llmlab_benchmark_parallel]"),
])
def test_bad_runs_stop_in_preflight_and_change_nothing(ring3, extra, words) -> None:
    res = playbook("site.yml", *extra)
    assert res.rc != 0
    assert words in res.messages(), res.failures()
    assert "Fix:" in res.messages()
    assert res.changed_hosts() == {}
    assert "Apply the cluster fabric" not in res.plays()
    assert nothing_configured()


def test_a_box_listed_twice_and_an_unreachable_host(ring3, tmp_path) -> None:
    extra = tmp_path / "more.yml"
    extra.write_text(textwrap.dedent("""\
        all:
          children:
            llmlab_nodes:
              hosts:
                node9: {ansible_host: 172.31.213.11, llmlab_profile: sim}
        """))
    res = playbook("playbooks/preflight.yml", "-i", str(extra))
    assert res.rc != 0
    said = res.messages()
    assert re.search(r"node[19] and node[19] are the same machine \(172\.31\.213\.11\): a node is listed twice", said)
    assert "node1" in said and "node9" in said
    extra.write_text(textwrap.dedent("""\
        all:
          children:
            llmlab_nodes:
              hosts:
                node9: {ansible_host: 127.0.0.1, ansible_port: 1, llmlab_profile: sim}
        """))
    res = playbook("playbooks/preflight.yml", "-i", str(extra), "-e", "llmlab_topology=switch")
    assert res.rc != 0
    assert "host node9 did not answer over SSH at 127.0.0.1" in res.messages() and "Fix:" in res.messages()


def test_a_missing_port_is_named(ring3) -> None:
    assert simlab("rename", "node2:enP2p1s0f0np0", "enP3p1s0f0np0").returncode == 0
    try:
        res = playbook("site.yml")
        assert res.rc != 0
        assert "the plan cables port enP2p1s0f0np0, which this host does not have" in res.messages()
        assert "[host node2, variable llmlab_cables]" in res.messages()
        assert nothing_configured()
    finally:
        simlab("rename", "node2:enP3p1s0f0np0", "enP2p1s0f0np0")
