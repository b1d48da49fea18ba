"""What failed, in a few screens: CI keeps only the end of its output, so `.ci/run` prints this after a failure.

Two sources. Playbooks our tests run through ansible-runner (the lab's tests, Molecule's verify steps, the AWX
launches: tools/runner_events.py) leave structured events under .cache: for every run that failed, each failed task
is printed from its event - task, host, message, stdout, stderr - with nothing parsed from text. What runs outside
ansible-runner (Molecule's own converge/idempotence/verify playbooks, pytest) is read from the full log of `make
test`: colours stripped, every failed task (`fatal:`, `failed:`, a molecule or pytest failure) with its header and
what it printed. The runner's part comes last, as CI keeps the end.
Usage: python -m tools.ci_digest LOG [--max-lines N] [--runs DIR]
"""
import argparse
import os
import re
import sys
from typing import List

from tools import runner_events

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
BOX = re.compile(r"^\s*│\s?")  # molecule frames each line of ansible's output
FAIL = re.compile(r"^(fatal: |failed: |ERROR[: ]|FAILED |E   |.*Executed: Failed)")
TASK = re.compile(r"^(TASK|PLAY|RUNNING HANDLER) \[")
NOISE = re.compile(r"FAILED - RETRYING|\.\.\.ignoring")


def clean(line: str) -> str:
    return BOX.sub("", ANSI.sub("", line.rstrip("\n")))


def digest(lines: List[str], block: int = 40) -> List[str]:
    """Every failure with the task that produced it and up to `block` lines of what followed."""
    out: List[str] = []
    task = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if TASK.match(line):
            task = line
        elif FAIL.match(line) and not NOISE.search(line):
            out.append("---- %s" % (task or "(no task)"))
            j = i
            while j < len(lines) and j < i + block and (j == i or not TASK.match(lines[j])):
                out.append(lines[j])
                j += 1
            i = j
            continue
        i += 1
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log")
    ap.add_argument("--max-lines", type=int, default=400, help="print at most the last N lines of the digest")
    ap.add_argument("--runs", default=os.path.join(runner_events.ROOT, ".cache"),
                    help="where ansible-runner runs left their artifacts (default: .cache)")
    args = ap.parse_args(argv)
    with open(args.log, encoding="utf-8", errors="replace") as fh:
        lines = [clean(l) for l in fh]
    out = digest(lines)
    if not out:
        print("ci digest: no failed task found in %s; its last lines:" % args.log)
        out = lines[-60:]
    elif len(out) > args.max_lines:
        print("ci digest: %d lines, the last %d follow" % (len(out), args.max_lines))
        out = out[-args.max_lines:]
    print("\n".join(out))
    structured = runner_digest(args.runs)
    if structured:
        print("==================== ci: failed ansible-runner runs (from their events) ====================")
        print("\n".join(structured[-args.max_lines:]))
    return 0


def runner_digest(root: str) -> List[str]:
    """Every failed task of every failed ansible-runner run under `root`, from its events."""
    out: List[str] = []
    for path in runner_events.failed_runs(root):
        out.append("---- runner run %s" % os.path.relpath(path, runner_events.ROOT))
        found = runner_events.failures(runner_events.load(path))
        out.extend(runner_events.describe(f) for f in found)
        if not found:
            out.append("  (no failed task in its events: its stdout is %s/stdout)" % path)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
