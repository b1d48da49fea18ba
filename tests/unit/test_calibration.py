"""The planner scored against published measurements. Prints the table with the fitted and the held-out errors apart;
fails when a gate breaks (held-out median error, the factor of any row, a prediction or a measurement above its
physical limit) or when the README's table is not the one the planner produces today."""

from __future__ import annotations

import os

from ansible_collections.llmlab.cluster.plugins.module_utils import calibration

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_calibration_benchmark(capsys) -> None:
    rows = calibration.score()
    s = calibration.summary(rows)
    with capsys.disabled():
        print("\n\nPlanner calibration: %d published measurements, %d held out (never used to set a constant)"
              % (s["rows"], s["held_out"]))
        print(calibration.markdown_table(rows))
        print("fitted rows: median error %.1f %%; held-out rows: median error %.1f %%; worst factor %.2f"
              % (100 * s["fitted_median_error"], 100 * s["held_out_median_error"], s["worst_factor"]))
        for name, factor, why in s["unreached"]:
            print("NOT REACHED (reported, not gated): %s, factor %.2f: %s" % (name, factor, why))
        print()
    assert s["held_out_median_error"] <= calibration.HELD_OUT_MEDIAN, s
    assert not s["outside_factor"], "rows outside a factor of %.1f: %s" % (calibration.FACTOR, s["outside_factor"])
    assert not s["predictions_above_limit"], "predictions above their physical limit: %s" % s["predictions_above_limit"]
    assert not s["measurements_above_limit"], \
        "measurements above the physical limit the planner computes (the limit is wrong): %s" \
        % s["measurements_above_limit"]


def test_the_table_is_big_enough_and_split_before_fitting() -> None:
    rows = calibration.MEASUREMENTS
    scored = [r for r in rows if not r.get("unreached")]
    assert len(scored) >= calibration.MIN_ROWS
    assert sum(1 for r in scored if r.get("held_out")) >= calibration.MIN_HELD_OUT_SHARE * len(scored)
    assert all(len(r["unreached"]) > 40 for r in rows if r.get("unreached")), "an unreached row says why"
    assert all(r.get("source") for r in rows), "every row names its source"
    metrics = {r["metric"] for r in rows}
    assert metrics == {"decode", "aggregate", "ttft"}
    assert any(r.get("concurrency", 1) >= 8 for r in rows) and any(len(r["nodes"]) > 1 for r in rows)
    assert {r["backend"] for r in rows} == {"vllm_ray", "llamacpp_rpc", "distributed_llama"}
    assert {n["profile"] for r in rows for n in r["nodes"]} >= {"gb10", "strix_halo"}
    held = [r for r in rows if r.get("held_out")]
    assert any(r["metric"] == "aggregate" for r in held) and any(len(r["nodes"]) > 1 for r in held)


def test_a_broken_constant_breaks_a_gate(monkeypatch) -> None:
    """The gates can fail: with MoE batches read as if every sequence chose other experts (no routing skew), the
    batched rows leave their factor."""
    from ansible_collections.llmlab.cluster.plugins.module_utils import perf
    monkeypatch.setattr(perf, "MOE_HOT_FRACTION", 1.0)
    s = calibration.summary(calibration.score())
    assert s["outside_factor"] and all("concurrent" in n for n in s["outside_factor"])


def test_readme_carries_the_current_table() -> None:
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    assert calibration.markdown_table(calibration.score()) in text, \
        "README.md's calibration table is stale: run `make calibration-table` and paste it"


def test_the_constants_are_the_fit_of_the_fitted_rows_alone(monkeypatch) -> None:
    """tools/calibration_fit.py reproduces the constants in the code from the fitted rows; moving a held-out
    measurement anywhere does not change what the fit sees."""
    from tools import calibration_fit as cf
    score, point = cf.fit()
    assert point == cf.current(), "the constants differ from the grid's best: run python -m tools.calibration_fit"
    held = next(r for r in calibration.MEASUREMENTS if r.get("held_out") and r["metric"] == "aggregate")
    before = cf.loss(calibration.score())
    monkeypatch.setitem(held, "measured", held["measured"] * 10)
    assert cf.loss(calibration.score()) == before
