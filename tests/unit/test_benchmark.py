"""The benchmark's statistics and report (the load itself runs against real llama-server in the lab scenarios)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.llmlab.cluster.plugins.module_utils import benchmark as bm


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([0, 1, 50, 90, 99, 100]))
def test_percentile_is_numpys_linear(values: list, p: int) -> None:
    assert bm.percentile(values, p) == pytest.approx(float(np.percentile(values, p)), rel=1e-9, abs=1e-9)


def _rec(start: float, ttft: float, gaps: list, tokens: int, ok: bool = True, **kw: object) -> dict:
    return dict({"ok": ok, "start_s": start, "ttft_s": ttft, "itl_s": gaps, "output_tokens": tokens,
                 "e2el_s": ttft + sum(gaps), "prompt_tokens": 10}, **kw)


def test_summary_counts_tpot_per_request_and_errors_by_kind() -> None:
    recs = [_rec(0.0, 0.1, [0.01] * 9, 10, server_tpot_ms=9.5), _rec(0.2, 0.3, [0.02] * 4, 5),
            {"ok": False, "error": "HTTP 401", "start_s": 0.3, "itl_s": []},
            {"ok": False, "error": "ConnectError", "start_s": 0.4, "itl_s": []}]
    s = bm.summarize(recs, duration_s=2.0)
    assert (s["requests"], s["completed"], s["failed"]) == (4, 2, 2)
    assert s["errors"] == {"HTTP 401": 1, "ConnectError": 1}
    assert s["output_tokens"] == 15 and s["output_throughput"] == 7.5 and s["request_throughput"] == 1.0
    assert s["tpot_ms"]["mean"] == pytest.approx((10.0 + 20.0) / 2)   # (E2EL - TTFT) / (tokens - 1) per request
    assert s["ttft_ms"]["p50"] == pytest.approx(200.0)
    assert len([1 for r in recs if r.get("ok") for _ in r["itl_s"]]) == 13 and s["itl_ms"]["p99"] <= 20.0 + 1e-9
    assert s["server_tpot_ms"]["mean"] == pytest.approx(9.5)


def test_report_has_every_metric_and_the_setup(tmp_path: object) -> None:
    recs = [_rec(0.0, 0.1, [0.01] * 9, 10, server_tpot_ms=9.5)]
    md = bm.markdown(bm.summarize(recs, 1.0), {"label": "lab", "nodes": "node1 + node2"})
    for word in ("TTFT", "ITL", "TPOT", "E2EL", "output tokens/s", "timings", "nodes: node1 + node2", "### lab"):
        assert word in md
    png = os.path.join(str(tmp_path), "p.png")
    bm.plot(recs + [{"ok": False, "start_s": 0.5, "itl_s": []}], png, "lab")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_prompts(tmp_path: object) -> None:
    assert bm.random_prompts(3, 5, 1) == bm.random_prompts(3, 5, 1) and len(bm.random_prompts(3, 5, 1)[0].split()) == 5
    p = os.path.join(str(tmp_path), "p.jsonl")
    with open(p, "w") as f:
        f.write(json.dumps({"prompt": "a b"}) + "\n\nplain line\n")
    assert bm.load_prompts(p) == ["a b", "plain line"]
    with open(p, "w") as f:
        f.write("\n")
    with pytest.raises(ValueError):
        bm.load_prompts(p)


def _report(label: str, nodes: str, ttft_s: float, gap_s: float, tokens: int = 11, failed: bool = False) -> dict:
    recs = [{"ok": False, "error": "HTTP 500", "start_s": 0.0, "itl_s": []}] if failed else \
        [_rec(0.0, ttft_s, [gap_s] * (tokens - 1), tokens)]
    return {"setup": {"label": label, "nodes": nodes}, "summary": bm.summarize(recs, ttft_s + gap_s * (tokens - 1))}


def test_compare_gives_ratios_against_the_baseline_above_one_when_better() -> None:
    one = _report("vllm 1 node", "node1", 0.1, 0.02)
    two = _report("vllm TP=2", "node1 + node2", 0.05, 0.04)      # TTFT half (2.00x), TPOT double (0.50x)
    bad = _report("broken", "node1 + node2 + node3", 0.1, 0.02, failed=True)
    two["memory"] = {"node1": {"vllm": {"peak_rss_mb": 1024.0}, "ray-head": {"peak_rss_mb": 512.0}},
                     "node2": {"vllm-rank": {"peak_rss_mb": 1200.0}}}
    two["first_completion_s"] = 301.4
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in
            bm.compare([one, two, bad], baseline="vllm 1 node").splitlines() if line.startswith("| ")}
    assert rows["vllm 1 node"][1:] == ["1", "100.0", "20.0", "36.7", "1.00", "1.00", "1.00", "-", "- |"]
    assert rows["vllm TP=2"][8:] == ["1.50 (node1)", "301 |"]   # node1's services together: 1.5 GB
    assert rows["vllm TP=2"][1:6] == ["2", "50.0", "40.0", "24.4", "2.00"] and rows["vllm TP=2"][6] == "0.50"
    assert rows["vllm TP=2"][7] == "%.2f" % ((11 / 0.45) / (11 / 0.3))
    assert rows["broken"][1] == "3" and "HTTP 500 x1" in rows["broken"][2]
    with pytest.raises(ValueError, match="no report is labelled 'nope'"):
        bm.compare([one], baseline="nope")
