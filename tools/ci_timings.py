"""Where CI's time goes: `make test 2>&1 | python3 -m tools.ci_timings | tee LOG`.

Passes every line through unchanged and, at the end, prints how long each part took: the make stages (venv, lint,
unit, integration, lab, molecule) and every Molecule scenario with its steps (create, check, converge, idempotence,
verify, ...). `.ci/run` uses it so that the CI output says which scenario grew when the run gets slower.
Usage: python3 -m tools.ci_timings [--clock SECONDS_FILE] < output
"""
import re
import sys
import time
from typing import Callable, Iterable, List, Optional, Tuple

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# make echoes each recipe line before running it: these open the stages of `make test`.
STAGES = [
    ("venv", re.compile(r"pip install .*requirements-dev\.txt")),
    ("lint", re.compile(r"bin/yamllint ")),
    ("unit", re.compile(r"bin/pytest -q tests/unit")),
    ("integration", re.compile(r"bin/pytest -q tests/integration")),
    ("lab", re.compile(r"bin/pytest -q tests/lab")),
    ("molecule", re.compile(r"bin/molecule test")),
]
STEP = re.compile(r"^INFO\s+(?P<scenario>[\w.-]+) ➜ (?P<step>\w+): (?P<what>Executing|Executed)")


def timings(events: Iterable[Tuple[float, str]]) -> Tuple[List[Tuple[str, float]], List[Tuple[str, str, float]], float]:
    """From (seconds, line) pairs: [(stage, seconds)], [(scenario, step, seconds)] and the total seconds."""
    stages: List[Tuple[str, float]] = []
    steps: List[Tuple[str, str, float]] = []
    stage: Optional[Tuple[str, float]] = None
    step: Optional[Tuple[str, str, float]] = None
    first = last = None
    for t, raw in events:
        first = t if first is None else first
        last = t
        line = ANSI.sub("", raw).strip()
        for name, pattern in STAGES:
            if pattern.search(line):
                if stage:
                    stages.append((stage[0], t - stage[1]))
                stage = (name, t)
                break
        m = STEP.match(line)
        if m and m.group("what") == "Executing":
            step = (m.group("scenario"), m.group("step"), t)
        elif m and step and (m.group("scenario"), m.group("step")) == step[:2]:
            steps.append((step[0], step[1], t - step[2]))
            step = None
    if stage and last is not None:
        stages.append((stage[0], last - stage[1]))
    return stages, steps, (last - first) if first is not None else 0.0


def report(stages: List[Tuple[str, float]], steps: List[Tuple[str, str, float]], total: float) -> List[str]:
    out = ["ci timings: %d s in all" % total]
    out += ["  %-12s %6d s" % (name, secs) for name, secs in stages]
    scenarios: List[str] = []
    for scenario, _, _ in steps:
        if scenario not in scenarios:
            scenarios.append(scenario)
    for scenario in scenarios:
        mine = [(s, secs) for sc, s, secs in steps if sc == scenario]
        out.append("  molecule %-18s %5d s: %s" % (
            scenario, sum(secs for _, secs in mine), ", ".join("%s %d" % (s, secs) for s, secs in mine)))
    return out


def main(argv: List[str], stdin=sys.stdin, stdout=sys.stdout, clock: Callable[[], float] = time.monotonic) -> int:
    if argv:
        print(__doc__.splitlines()[-1], file=sys.stderr)
        return 2
    events = [(clock(), "")]
    for line in stdin:
        stdout.write(line)
        stdout.flush()
        if "INFO" in line or "bin/" in line:  # the only lines timings() reads
            events.append((clock(), line))
    events.append((clock(), ""))
    stdout.write("\n".join(report(*timings(events))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
