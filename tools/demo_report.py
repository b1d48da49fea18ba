"""Print what `make demo` ends with: the plan the run applied and the benchmark it measured.

    python -m tools.demo_report inventories/sim

Reads <inventory>/artifacts/plan.json and artifacts/benchmark/*.md (written by the plan and benchmark roles).
"""
from __future__ import annotations

import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.render import plan_table  # noqa: E402


def main(argv: list) -> int:
    inventory = argv[0] if argv else "inventories/sim"
    art = os.path.join(inventory, "artifacts")
    with open(os.path.join(art, "plan.json"), encoding="utf-8") as fh:
        doc = json.load(fh)
    print("\n== The plan (%s) ==\n" % os.path.join(art, "plan.json"))
    print("\n".join(plan_table(doc["fabric"], doc["plan"])))
    reports = sorted(glob.glob(os.path.join(art, "benchmark", "*.md")), key=os.path.getmtime)
    if not reports:
        print("\nno benchmark report under %s/benchmark" % art)
        return 1
    print("\n== The benchmark (%s) ==\n" % reports[-1])
    with open(reports[-1], encoding="utf-8") as fh:
        print(fh.read())
    with open(reports[-1][:-3] + ".json", encoding="utf-8") as fh:
        summary = json.load(fh)["summary"]
    tpot = summary["tpot_ms"]["mean"]
    predicted = doc["plan"]["predicted"]["decode_tok_s"]
    if tpot:
        print("decode per sequence: measured %.1f tok/s, planned %.1f tok/s (measured/planned %.2f)"
              % (1000.0 / tpot, predicted, 1000.0 / tpot / predicted))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
