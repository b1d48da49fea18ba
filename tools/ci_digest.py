"""What failed, in a few screens: CI keeps only the end of its output, so `.ci/run` prints this after a failure.

Reads the full log of `make test`, strips colours, and prints, for every failed task (`fatal:`, `failed:`, a
molecule or pytest failure), the task's header and what it printed: the diagnostics a test printed on its way to
failing come with it. Usage: python -m tools.ci_digest LOG [--max-lines N]
"""
import argparse
import re
import sys
from typing import List

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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
