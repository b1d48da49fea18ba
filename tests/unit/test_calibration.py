"""The planner scored against published measurements. Prints the table; fails when a prediction leaves its band
or when the README's table is not the one the planner produces today."""

from __future__ import annotations

import os

from ansible_collections.llmlab.cluster.plugins.module_utils import calibration

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def test_calibration_benchmark(capsys) -> None:
    rows = calibration.score()
    table = calibration.markdown_table(rows)
    with capsys.disabled():
        print("\n\nPlanner calibration (decode tok/s, batch 1; goal: single node +-20 %, multi-node +-35 %)")
        print(table)
        worst = max(rows, key=lambda r: abs(r["error"]))
        print("worst: %s at %+.1f %%\n" % (worst["name"], 100 * worst["error"]))
    outside = [r["name"] for r in rows if r["gated"] and not r["within"]]
    assert not outside, "predictions outside their band: %s" % outside
    assert sum(r["gated"] for r in rows) >= 12 and any(r["nodes"] > 1 for r in rows)


def test_readme_carries_the_current_table() -> None:
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    assert calibration.markdown_table(calibration.score()) in text, \
        "README.md's calibration table is stale: run `make calibration-table` and paste it"
