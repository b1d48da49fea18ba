"""How the batched-decode constants were set: a grid search that scores only the rows marked fitted (never the held-out
ones) - ``python -m tools.calibration_fit`` prints the best point and the current one. The grid is small on purpose:
MOE_HOT_FRACTION (perf.py) and, of the backend the batched rows ran (the calibration table says which), the decode
efficiency, step overhead and decode compute efficiency on CUDA. The constants are then written
into those files by hand."""

from __future__ import annotations

import contextlib
import itertools
import math
import sys
from typing import Any, Dict, Iterator, List, Mapping, Sequence, Tuple

sys.path.insert(0, ".collections")

from ansible_collections.llmlab.cluster.plugins.module_utils import backends, calibration, perf  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend  # noqa: E402

GRID: Dict[str, Sequence[float]] = {
    "hot_fraction": (0.1, 0.15, 0.2, 0.25, 0.35),
    "decode_efficiency": (0.8, 0.9),
    "step_overhead_us": (300.0, 1000.0, 2000.0),
    "decode_compute_efficiency": (0.03, 0.05, 0.1, 0.3),
}
FACTOR_SOFT = 1.4   # fitted rows beyond this factor are penalised, so the fit keeps away from the x1.5 gate


def batched_backend() -> Backend:
    """The backend whose constants the batched rows set: the one every aggregate row of the table ran."""
    names = {r["backend"] for r in calibration.MEASUREMENTS if r["metric"] == "aggregate"}
    if len(names) != 1:
        raise SystemExit("the batched rows ran %d backends; this fit knows one" % len(names))
    return backends.get(names.pop())


def current() -> Dict[str, float]:
    b = batched_backend()
    return {"hot_fraction": perf.MOE_HOT_FRACTION, "decode_efficiency": b.decode_efficiency["cuda"],
            "step_overhead_us": b.step_overhead_us,
            "decode_compute_efficiency": b.decode_compute_efficiency["cuda"]}


@contextlib.contextmanager
def constants(point: Mapping[str, float]) -> Iterator[None]:
    """The model with ``point``'s constants, put back afterwards."""
    b = batched_backend()
    saved = (perf.MOE_HOT_FRACTION, dict(b.decode_efficiency), b.step_overhead_us, dict(b.decode_compute_efficiency))
    try:
        perf.MOE_HOT_FRACTION = point["hot_fraction"]
        b.decode_efficiency = dict(b.decode_efficiency, cuda=point["decode_efficiency"])
        b.step_overhead_us = point["step_overhead_us"]
        ce = point["decode_compute_efficiency"]
        b.decode_compute_efficiency = dict(b.decode_compute_efficiency, cuda=ce, rocm=ce)
        yield
    finally:
        perf.MOE_HOT_FRACTION, b.decode_efficiency, b.step_overhead_us, b.decode_compute_efficiency = saved


def loss(rows: List[Dict[str, Any]]) -> float:
    """Squared log error of the fitted rows, plus a penalty for a fitted row beyond FACTOR_SOFT. Held-out and
    unreached rows do not count."""
    fitted = [r for r in rows if not r["held_out"] and not r["unreached"]]
    return sum(math.log(r["predicted"] / r["measured"]) ** 2 + 10 * max(0.0, math.log(r["factor"] / FACTOR_SOFT)) ** 2
               for r in fitted)


def fit(grid: Mapping[str, Sequence[float]] = GRID) -> Tuple[float, Dict[str, float]]:
    best: Tuple[float, Dict[str, float]] = (float("inf"), {})
    keys = sorted(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        with constants(point):
            score = loss(calibration.score())
        if score < best[0]:
            best = (score, point)
    return best


def main() -> int:
    score, point = fit()
    with constants(current()):
        now = loss(calibration.score())
    print("best of the grid (fitted rows only): loss %.4f at %s" % (score, point))
    print("the constants in the code:           loss %.4f at %s" % (now, current()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
