"""Backends and shapes against each other on the same lab nodes and weights, as ratios (make bench-vllm, bench-dllama).

    python -m tools.bench_compare [--cases FILE] [--requests 16] [--only CASE ...] [--report-dir DIR]

The cases come from a YAML file (default inventories/bench-compare.yml: vLLM against itself and llama.cpp RPC;
inventories/bench-dllama.yml: distributed-llama on 1, 2 and 4 nodes of a 5GbE switch).

For each case: the lab it needs is booted (tools.simlab up, only when the topology, node count or link shape changes),
then site.yml runs on it through ansible-runner with the case's backend and TP/PP pinned, which deploys, verifies and
benchmarks (the benchmark role writes <case>.json). The previous case's backend is removed by the same run (a
backend switch). At the end the table of every case's TTFT, TPOT and output tok/s, and each as a ratio against the
file's baseline case, is printed and written to <report-dir>/compare.md. The lab is left up with the last case running.
"""
from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.benchmark import compare  # noqa: E402
from tools.runner_events import run_playbook  # noqa: E402

INVENTORY = os.path.join(ROOT, "inventories", "sim")
BENCHMARK_TASK = "Benchmark | Streaming load from the controller"   # roles/benchmark/tasks/main.yml
CASES_FILE = os.path.join(ROOT, "inventories", "bench-compare.yml")   # not in inventories/sim: not an inventory source


def load_cases(path: str = CASES_FILE) -> Tuple[str, Dict[str, Dict[str, Any]], str]:
    """The baseline case's name, the cases by name in their order, and the file's own setup sentence (or "")."""
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    cases = {c["name"]: c for c in doc["cases"]}
    if doc["baseline"] not in cases:
        raise SystemExit("bench-compare: %s: baseline %r is not a case" % (path, doc["baseline"]))
    return doc["baseline"], cases, doc.get("setup", "")


def lab_of(case: Dict[str, Any]) -> Tuple[str, ...]:
    """The simlab up arguments a case needs: topology, node count and, when the case names one, the link shape."""
    args = ("--topology", case["topology"], "--nodes", str(case["nodes"]))
    return args + ("--shape", case["shape"]) if case.get("shape") else args


def _simlab(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "tools.simlab", *args], cwd=ROOT, check=True)


def _first_completion_s(events: List[dict], report_path: str) -> Optional[float]:
    """From site.yml's start to the end of the benchmark's first request: the moment the benchmark task started (its
    runner event) minus the playbook's start, plus that request's end-to-end latency (the report's records)."""
    def when(event: str, task: Optional[str] = None) -> Optional[datetime.datetime]:
        for e in events:
            if e.get("event") == event and (task is None or e.get("event_data", {}).get("task") == task):
                return datetime.datetime.fromisoformat(e["created"])
        return None
    start, bench = when("playbook_on_start"), when("playbook_on_task_start", BENCHMARK_TASK)
    if start is None or bench is None or not os.path.exists(report_path):
        return None
    with open(report_path, encoding="utf-8") as fh:
        ends = [r["start_s"] + r["e2el_s"] for r in json.load(fh)["requests"] if r.get("ok")]
    return (bench - start).total_seconds() + min(ends) if ends else None


def run_case(case: Dict[str, Any], requests: int, report_dir: str) -> Tuple[float, Optional[float]]:
    """site.yml for one case; returns its wall time and the time to its first completion, in seconds. Raises when
    the run fails."""
    name = case["name"]
    extravars = dict(case["vars"], llmlab_benchmark_requests=requests, llmlab_benchmark_label=case["label"],
                     llmlab_benchmark_report_dir=report_dir, llmlab_benchmark_report_name=name)
    private = os.path.join(ROOT, ".cache", "bench-compare", name)
    os.makedirs(private, exist_ok=True)
    t0 = time.monotonic()
    run = run_playbook("site.yml", INVENTORY, data_dir=private, extravars=extravars)
    took = time.monotonic() - t0
    if run.rc != 0:
        failed = ["%(task)s on %(host)s" % f for f in run.failures()]
        raise SystemExit("bench-compare: %s failed (%s, rc %s) at: %s; its log is %s/artifacts"
                         % (name, run.status, run.rc, "; ".join(failed) or "see the log", private))
    return took, _first_completion_s(run.events, os.path.join(report_dir, name + ".json"))


def main(argv: List[str]) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--cases", default=CASES_FILE)
    cases_file = os.path.abspath(pre.parse_known_args(argv)[0].cases)
    baseline, cases, doc_setup = load_cases(cases_file)
    p = argparse.ArgumentParser(prog="bench_compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=CASES_FILE, help="the cases file (default %(default)s)")
    p.add_argument("--requests", type=int, default=16, help="requests per case, one at a time (default 16)")
    p.add_argument("--only", nargs="*", choices=sorted(cases), help="run only these cases (the table has them all)")
    p.add_argument("--report-dir", help="where the reports go (default inventories/sim/artifacts/<cases file's name>)",
                   default=os.path.join(INVENTORY, "artifacts", os.path.splitext(os.path.basename(cases_file))[0]))
    args = p.parse_args(argv)
    report_dir = os.path.abspath(args.report_dir)
    os.makedirs(report_dir, exist_ok=True)
    for backend in dict.fromkeys(c["vars"]["llmlab_backend"] for c in cases.values()):
        _simlab("backend-inputs", backend)   # what the lab needs besides its nodes (an image), built once per recipe
    booted = None
    firsts: Dict[str, Optional[float]] = {}
    for name in args.only or list(cases):
        case = cases[name]
        if booted != lab_of(case):
            _simlab("down")
            _simlab("up", *lab_of(case))
            booted = lab_of(case)
        print("bench-compare: %s (%s) ..." % (name, case["label"]), flush=True)
        took, first = run_case(case, args.requests, report_dir)
        firsts[name] = first
        print("bench-compare: %s: site.yml took %.0f s, its first completion came %s s after its start"
              % (name, took, "?" if first is None else "%.0f" % first), flush=True)
    reports = []
    for name in cases:
        path = os.path.join(report_dir, name + ".json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as fh:
            reports.append(json.load(fh))
        if os.path.exists(path[:-5] + ".memory.json"):
            with open(path[:-5] + ".memory.json", encoding="utf-8") as fh:
                reports[-1]["memory"] = json.load(fh)
        if firsts.get(name) is not None:
            reports[-1]["first_completion_s"] = firsts[name]
    if not reports:
        raise SystemExit("bench-compare: no report under %s" % report_dir)
    missing = [n for n in cases if not os.path.exists(os.path.join(report_dir, n + ".json"))]
    labels = [r["setup"]["label"] for r in reports]
    base = cases[baseline]["label"]
    table = compare(reports, base if base in labels else labels[0])
    setup = ("Setup: the simulated lab on this machine (%d cores, every node a container sharing them), the catalog's "
             "llmlab/tiny-llama-test (same weights in every case), %d requests one at a time, 64 random words in, "
             "64 tokens out, streamed.%s%s" % (os.cpu_count() or 0, args.requests,
                                                " " + doc_setup if doc_setup else "",
                                                " Not measured yet: %s." % ", ".join(missing) if missing else ""))
    with open(os.path.join(report_dir, "compare.md"), "w", encoding="utf-8") as fh:
        fh.write(table + "\n" + setup + "\n")
    print("\n" + table + "\n" + setup)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
