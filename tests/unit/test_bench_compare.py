"""tools/bench_compare.py: its cases file and the time to the first completion from runner events and a report."""
from __future__ import annotations

import json
import os

import pytest

from tools import bench_compare as bc
from tools.simlab.spec import validate


@pytest.mark.parametrize("path", [bc.CASES_FILE, os.path.join(bc.ROOT, "inventories", "bench-dllama.yml")])
def test_cases_file_has_its_baseline_and_every_case_complete(path: str) -> None:
    baseline, cases, _setup = bc.load_cases(path)
    assert baseline in cases and len(cases) >= 3
    for c in cases.values():
        assert set(c) >= {"name", "label", "topology", "nodes", "vars"} and "llmlab_backend" in c["vars"]
        validate(c["topology"], c["nodes"], c.get("shape"))      # a lab simlab can boot
    assert len({c["label"] for c in cases.values()}) == len(cases)   # compare() keys the table by label


def test_a_case_boots_its_shape_only_when_it_names_one() -> None:
    assert bc.lab_of({"topology": "ring", "nodes": 3}) == ("--topology", "ring", "--nodes", "3")
    assert bc.lab_of({"topology": "switch", "nodes": 4, "shape": "eth_5g"})[-2:] == ("--shape", "eth_5g")


def test_first_completion_counts_from_the_run_start_to_the_first_request_end(tmp_path: object) -> None:
    report = os.path.join(str(tmp_path), "r.json")
    with open(report, "w") as fh:
        json.dump({"requests": [{"ok": True, "start_s": 0.5, "e2el_s": 2.0}, {"ok": True, "start_s": 0.0, "e2el_s": 3.0},
                                {"ok": False, "start_s": 0.0}]}, fh)
    events = [{"event": "playbook_on_start", "created": "2026-12-02T10:00:00.000000"},
              {"event": "playbook_on_task_start", "created": "2026-12-02T10:01:00.000000",
               "event_data": {"task": "something else"}},
              {"event": "playbook_on_task_start", "created": "2026-12-02T10:05:00.000000",
               "event_data": {"task": bc.BENCHMARK_TASK}}]
    assert bc._first_completion_s(events, report) == 300.0 + 2.5     # the request that ended first, at 2.5 s
    assert bc._first_completion_s(events[:2], report) is None        # no benchmark ran
    assert bc._first_completion_s(events, report + ".missing") is None


def test_the_benchmark_task_it_times_is_the_roles() -> None:
    with open(os.path.join(bc.ROOT, "roles", "benchmark", "tasks", "main.yml")) as fh:
        assert "- name: %s\n" % bc.BENCHMARK_TASK in fh.read()
