"""ansible-runner's structured events, read the same way by everything of ours that runs playbooks: the AWX launcher
(tools/awx), bench-compare, the lab's tests and CI's failure digest. An event is one JSON object of
`artifacts/<ident>/job_events/*.json` (or of `Runner.events`)."""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = os.path.join(ROOT, ".cache", "runner")  # where our own runs keep their artifacts (CI's digest reads them)

FAILED = ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed")
# Written into a run's artifacts when the run was meant to fail (a refusal a test provokes, and whose reason the test
# checks itself): CI's digest leaves such runs out, so that a real failure is not buried under expected ones.
EXPECTED = "expected_failure"


def load(artifact_dir: str) -> List[Dict[str, Any]]:
    """The events of one run, in their order (`counter`)."""
    events = []
    for path in glob.glob(os.path.join(artifact_dir, "job_events", "*.json")):
        with open(path, encoding="utf-8") as fh:
            try:
                events.append(json.load(fh))
            except ValueError:  # a file still being written when the run was killed
                continue
    return sorted(events, key=lambda e: e.get("counter", 0))


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return "" if value is None else str(value)


def failures(events: Iterable[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Every failed task that failed its run (ignored errors are left out): play, task, host, message, stdout and
    stderr of the task's result."""
    out = []
    for e in events:
        data = e.get("event_data") or {}
        if e.get("event") not in FAILED or data.get("ignore_errors"):
            continue
        res = data.get("res") or {}
        msg = res.get("msg") or res.get("reason") or ""
        if isinstance(res.get("results"), list):  # a loop: the items that failed
            msg = msg or "; ".join(str(r.get("msg", "")) for r in res["results"] if r.get("failed"))
        out.append({"play": str(data.get("play", "")), "task": str(data.get("task", "")),
                    "host": str(data.get("host", "")), "unreachable": str(e.get("event") == "runner_on_unreachable"),
                    "msg": _text(msg), "stdout": _text(res.get("stdout")), "stderr": _text(res.get("stderr"))})
    return out


def stats(events: Iterable[Dict[str, Any]]) -> List[Dict[str, Dict[str, int]]]:
    """The recap of each playbook run in the events (one per `playbook_on_stats`): counter -> {host: n}."""
    out = []
    for e in events:
        if e.get("event") == "playbook_on_stats":
            data = e.get("event_data") or {}
            out.append({k: dict(data.get(k) or {}) for k in ("ok", "changed", "failures", "dark", "skipped",
                                                             "rescued", "ignored")})
    return out


def changed_hosts(events: Iterable[Dict[str, Any]]) -> Dict[str, int]:
    """host -> tasks that reported a change, over every recap in the events."""
    total: Dict[str, int] = {}
    for recap in stats(events):
        for host, n in recap["changed"].items():
            if n:
                total[host] = total.get(host, 0) + n
    return total


def changed_tasks(events: Iterable[Dict[str, Any]]) -> List[Dict[str, str]]:
    """Every task result that reported a change: host, task and the task's role."""
    return [{"host": str(d.get("host", "")), "task": str(d.get("task", "")), "role": str(d.get("role", ""))}
            for d in ((e.get("event_data") or {}) for e in events
                      if e.get("event") in ("runner_on_ok", "runner_item_on_ok"))
            if (d.get("res") or {}).get("changed")]


def describe(failure: Dict[str, str], limit: int = 1500) -> str:
    """One failure as the lines a person reads first."""
    head = "%s on %s%s" % (failure["task"] or "?", failure["host"] or "?",
                           " (unreachable)" if failure.get("unreachable") == "True" else "")
    parts = [head]
    for key in ("msg", "stderr", "stdout"):
        text = failure.get(key, "").strip()
        if text:
            parts.append("  %s: %s" % (key, text if len(text) <= limit else "..." + text[-limit:]))
    return "\n".join(parts)


@dataclass
class Run:
    """One ansible-playbook run through ansible-runner: its status, rc, text output and events."""
    status: str
    rc: int
    stdout: str
    artifacts: str
    events: List[Dict[str, Any]] = field(default_factory=list)

    def failures(self) -> List[Dict[str, str]]:
        return failures(self.events)

    def changed_hosts(self) -> Dict[str, int]:
        return changed_hosts(self.events)

    def plays(self) -> List[str]:
        return [str((e.get("event_data") or {}).get("play", "")) for e in self.events
                if e.get("event") == "playbook_on_play_start"]

    @classmethod
    def of(cls, runner: Any) -> "Run":
        """The Run of a finished ``ansible_runner.Runner``."""
        return cls(runner.status, int(runner.rc if runner.rc is not None else 1),
                   runner.stdout.read() if runner.stdout else "", runner.config.artifact_dir, list(runner.events))

    def messages(self) -> str:
        """Every failure's message, stdout and stderr: what a test looks for a refusal's words in."""
        return "\n".join("\n".join((f["msg"], f["stdout"], f["stderr"])) for f in self.failures())


def run_playbook(playbook: str, inventory: str, args: Sequence[str] = (), name: str = "run",
                 data_dir: Optional[str] = None, extravars: Optional[Dict[str, Any]] = None,
                 expect_failure: bool = False) -> Run:
    """Run a playbook of this checkout through ansible-runner (the venv's ansible, this checkout's ansible.cfg);
    its artifacts go to `data_dir` (default .cache/runner/<name>), where CI's failure digest finds them."""
    import ansible_runner  # imported here: reading events does not need it

    data_dir = os.path.abspath(data_dir or os.path.join(RUNS, name))
    os.makedirs(data_dir, exist_ok=True)
    # ansible-runner reads env/cmdline, env/extravars... of the data directory when a run does not pass them: a
    # directory reused by a later run must not hand it the earlier run's -e (and this run writes none)
    shutil.rmtree(os.path.join(data_dir, "env"), ignore_errors=True)
    run = Run.of(ansible_runner.run(
        private_data_dir=data_dir, project_dir=ROOT, playbook=os.path.join(ROOT, playbook),
        inventory=os.path.join(ROOT, inventory), cmdline=" ".join(shlex.quote(a) for a in args) or None,
        extravars=extravars, quiet=True, rotate_artifacts=3, suppress_env_files=True,
        envvars={"ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                 "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}))
    if expect_failure:
        with open(os.path.join(run.artifacts, EXPECTED), "w", encoding="utf-8") as fh:
            fh.write("this run was meant to fail: the test that ran it checks why\n")
    return run


def failed_runs(root: str = os.path.join(ROOT, ".cache")) -> List[str]:
    """The artifact directories under `root` of runs that did not succeed (and were not meant to fail), oldest
    first."""
    found = []
    for status in glob.glob(os.path.join(root, "**", "artifacts", "*", "status"), recursive=True):
        if os.path.exists(os.path.join(os.path.dirname(status), EXPECTED)):
            continue
        with open(status, encoding="utf-8") as fh:
            if fh.read().strip() != "successful":
                found.append(os.path.dirname(status))
    return sorted(found, key=os.path.getmtime)


def main(argv: Optional[List[str]] = None) -> int:
    """`run`: a playbook through ansible-runner, printing one JSON summary (status, rc, changed hosts, plays,
    failures) for a playbook or a script to read - not its text log. (CI's digest of failed runs: tools/ci_digest.)"""
    ap = argparse.ArgumentParser(prog="python -m tools.runner_events", description=main.__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run")
    p_run.add_argument("--name", help="its artifacts go to .cache/runner/NAME (default: the playbook and this PID)")
    p_run.add_argument("-i", "--inventory", required=True)
    p_run.add_argument("--expect-failure", action="store_true",
                       help="the run is meant to fail (CI's digest leaves it out; the caller checks why)")
    p_run.add_argument("playbook")
    p_run.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    name = a.name or "%s-%d" % (os.path.splitext(os.path.basename(a.playbook))[0], os.getpid())
    run = run_playbook(a.playbook, a.inventory, a.args, name=name, expect_failure=a.expect_failure)
    print(json.dumps({"status": run.status, "rc": run.rc, "changed": run.changed_hosts(), "plays": run.plays(),
                      "changed_tasks": changed_tasks(run.events), "failures": run.failures(),
                      "messages": " ".join(run.messages().split()),  # whitespace folded
                      "artifacts": run.artifacts}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
