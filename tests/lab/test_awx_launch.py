"""AWX's launches, without AWX, on the simulated lab: *Deploy* launched through our ansible-runner entry point with
survey answers converges a ring of three with llama.cpp RPC and passes verify; pytest-testinfra then checks the
deployed state host by host; after a port is renamed, a *Fabric* launch with --limit node2 --tags fabric reconciles
node2 and changes nothing anywhere else; an answer outside its survey's choices is refused before Ansible starts.

Every verdict is read from ansible-runner's events (tools/runner_events.py), not from the text log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, List

import pytest

from tools import runner_events
from tools.simlab import engine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(ROOT, "inventories", "sim")
NODES = ["node1", "node2", "node3"]
ANSWERS = {"llmlab_model": "llmlab/tiny-llama-test", "llmlab_quant": "fp16", "llmlab_backend": "llamacpp_rpc",
           "llmlab_context_tokens": "2048", "llmlab_pipeline_parallel": "3"}
RENAMED = ("node2", "enp1s0f1np1", "enp2s0f1np1")


def simlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.simlab"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def awx(*args: str, data: str) -> subprocess.CompletedProcess:
    """`python -m tools.awx launch ...`: the entry point a person (or CI) uses."""
    return subprocess.run([sys.executable, "-m", "tools.awx", "launch", *args, "-i", "inventories/sim", "--data", data],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg")))


def job_events(data: str, template: str) -> List[Dict[str, Any]]:
    arts = sorted(d for d in os.listdir(os.path.join(data, "artifacts"))
                  if d.endswith("-" + template.lower().replace(" ", "-")))
    assert arts, os.listdir(os.path.join(data, "artifacts"))
    path = os.path.join(data, "artifacts", arts[-1])
    with open(os.path.join(path, "status"), encoding="utf-8") as fh:
        assert fh.read().strip() == "successful", runner_events.failures(runner_events.load(path))
    return runner_events.load(path)


def _explain(res: subprocess.CompletedProcess) -> str:
    return "rc %d\n%s\n%s" % (res.returncode, res.stdout[-6000:], res.stderr[-3000:])


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    assert simlab("down").returncode == 0
    up = simlab("up", "--topology", "ring", "--nodes", "3")
    assert up.returncode == 0, up.stdout + up.stderr
    data = str(tmp_path_factory.mktemp("awx") / "deploy")
    res = awx("Deploy", *("-a%s=%s" % kv for kv in ANSWERS.items()), data=data)
    assert res.returncode == 0, _explain(res)
    with open(os.path.join(INVENTORY, "artifacts", "plan.json"), encoding="utf-8") as fh:
        plan = json.load(fh)
    yield {"data": data, "stdout": res.stdout, "plan": plan}
    simlab("down")


def test_deploy_launch_converges_with_the_survey_answers_and_passes_verify(deployed) -> None:
    events = job_events(deployed["data"], "Deploy")
    assert runner_events.failures(events) == []
    with open(os.path.join(deployed["data"], "env", "extravars"), encoding="utf-8") as fh:
        extra = json.load(fh)
    assert extra["llmlab_pipeline_parallel"] == 3 and extra["llmlab_backend"] == "llamacpp_rpc"  # typed as AWX does
    assert extra["awx_job_template_name"] == "Deploy" and extra["awx_job_launch_type"] == "manual"
    plan = deployed["plan"]["plan"]
    assert plan["backend"] == "llamacpp_rpc" and plan["pipeline_parallel"] == 3 and plan["context_tokens"] == 2048
    verify_ok = [e for e in events if e["event"] == "runner_on_ok" and e["event_data"].get("role") == "verify"]
    assert {e["event_data"]["host"] for e in verify_ok} >= set(NODES)
    plays = [e["event_data"]["play"] for e in events if e["event"] == "playbook_on_play_start"]
    assert "Verify the serving cluster" in plays and "Benchmark the cluster" in plays
    assert "[Deploy" in deployed["stdout"] and "  Verify | " in deployed["stdout"]  # a progress line per task


def run_testinfra(*args: str) -> subprocess.CompletedProcess:
    """tests/deployed (pytest-testinfra, its ansible backend) against the lab's inventory and the deployed plan."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/deployed",
                           "--hosts=ansible://llmlab_nodes", "--ansible-inventory=" + INVENTORY, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_testinfra_checks_of_the_deployed_state(deployed) -> None:
    res = run_testinfra()
    assert res.returncode == 0, _explain(res)
    print(res.stdout.strip().splitlines()[-1])
    # every check ran on every node (2 checks x 3 nodes), none skipped
    assert "6 passed" in res.stdout.strip().splitlines()[-1], res.stdout


def test_fabric_relaunch_with_limit_and_tags_after_a_rename_changes_only_that_node(deployed, tmp_path) -> None:
    node, old, new = RENAMED
    assert simlab("rename", "%s:%s" % (node, old), new).returncode == 0
    host_vars = os.path.join(INVENTORY, "host_vars")
    os.makedirs(host_vars, exist_ok=True)
    try:
        with open(os.path.join(host_vars, node + ".yml"), "w", encoding="utf-8") as fh:
            fh.write("---\n# the real-life edit after a NIC swap (tests/lab/test_awx_launch.py)\n"
                     "llmlab_profile_overrides:\n  ports: [enp1s0f0np0, %s]\n"
                     "  port_halves: {enp1s0f0np0: enP2p1s0f0np0, %s: enP2p1s0f1np1}\n" % (new, new))
        data = str(tmp_path / "fabric")
        res = awx("Fabric", "--limit", node, "--tags", "fabric", data=data)
        assert res.returncode == 0, _explain(res)
        with open(os.path.join(data, "env", "cmdline"), encoding="utf-8") as fh:
            assert fh.read().split() == ["--limit", node, "--tags", "fabric"]
        events = job_events(data, "Fabric")
        changed = runner_events.changed_hosts(events)
        assert set(changed) == {node}, changed  # reconciled there, and nothing changed anywhere else
        hosts_seen = {e["event_data"].get("host") for e in events if e["event"].startswith("runner_on_")}
        assert hosts_seen <= {node, "localhost"}, hosts_seen
        assert any(t["role"] == "fabric" for t in runner_events.changed_tasks(events))
        files = engine.execute("llmlab-" + node, ["ls", "/etc/systemd/network"])
        assert "60-llmlab-%s.network" % new in files and "60-llmlab-%s.network" % old not in files
        again = awx("Fabric", "--limit", node, "--tags", "fabric", data=str(tmp_path / "again"))
        assert again.returncode == 0, _explain(again)
        assert runner_events.changed_hosts(job_events(str(tmp_path / "again"), "Fabric")) == {}  # idempotent
    finally:
        if os.path.isdir(host_vars):
            for f in os.listdir(host_vars):
                os.remove(os.path.join(host_vars, f))
            os.rmdir(host_vars)


def test_an_answer_outside_the_choices_is_refused_before_ansible_starts(tmp_path) -> None:
    data = tmp_path / "refused"
    res = awx("Deploy", "-a", "llmlab_model=llmlab/tiny-llama-test", "-a", "llmlab_backend=sglang", data=str(data))
    assert res.returncode == 2, _explain(res)
    assert "question 'Backend' (llmlab_backend): 'sglang' is not one of its choices" in res.stderr
    assert not data.exists()
