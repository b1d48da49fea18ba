"""ansible-runner's structured events, read the same way by everything of ours that runs playbooks: the AWX launcher
(tools/awx), bench-compare, the lab's tests and CI's failure digest. An event is one JSON object of
`artifacts/<ident>/job_events/*.json` (or of `Runner.events`)."""

from __future__ import annotations

import glob
import json
import os
from typing import Any, Dict, Iterable, List

FAILED = ("runner_on_failed", "runner_on_unreachable", "runner_item_on_failed")


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
