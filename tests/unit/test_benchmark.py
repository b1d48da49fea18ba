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
    for word in ("TTFT", "ITL", "TPOT", "E2EL", "output tokens/s", "timings.predicted_per_token_ms", "nodes: node1 + node2",
                 "### lab"):
        assert word in md
    png = os.path.join(str(tmp_path), "p.png")
    bm.plot(recs + [{"ok": False, "start_s": 0.5, "itl_s": []}], png, "lab")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_datasets_sharegpt_jsonl_messages_and_plain_lines(tmp_path: object) -> None:
    d = str(tmp_path)
    share = os.path.join(d, "share.json")
    with open(share, "w") as f:
        json.dump([{"conversations": [{"from": "system", "value": "be brief"}, {"from": "human", "value": "q1"},
                                      {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}]},
                   {"conversations": [{"from": "gpt", "value": "no user turn"}]},
                   {"messages": [{"role": "user", "content": "q3"}], "max_tokens": 7}], f)
    got = bm.load_dataset(share)
    assert [(e["prompt"], e.get("reply"), e.get("output_tokens")) for e in got] == [("q1", "a1", None), ("q3", None, 7)]
    assert got[1]["where"] == "share.json item 3"            # the entry without a user turn is skipped, not renumbered
    lines = os.path.join(d, "p.jsonl")
    with open(lines, "w") as f:
        f.write(json.dumps({"prompt": "a b", "output_tokens": 5}) + "\n\nplain line\n"
                + json.dumps({"conversations": [{"from": "human", "value": "c"}, {"from": "gpt", "value": "r"}]}) + "\n")
    got = bm.load_dataset(lines)
    assert [(e["prompt"], e.get("output_tokens"), e["where"]) for e in got] == \
        [("a b", 5, "p.jsonl line 1"), ("plain line", None, "p.jsonl line 3"), ("c", None, "p.jsonl line 4")]
    for text, error in (("\n", "no prompts"), ("{not json\n", "line 1 is not valid JSON"), ("[1, 2\n", "not valid JSON")):
        with open(lines, "w") as f:
            f.write(text)
        with pytest.raises(ValueError, match=error):
            bm.load_dataset(lines)


def _counter(template: int = 5) -> tuple:
    """A tokenizer that is not the server's, for the search alone: a word costs one token per 2 letters (at least
    one: 1 or 2 tokens for WORDS), a prompt costs ``template`` more; ``calls`` counts the questions."""
    calls = []

    async def count(text: str) -> int:
        calls.append(text)
        return template + sum(max(1, len(w) // 2) for w in text.split())
    return count, calls


@pytest.mark.parametrize("target", [7, 8, 20, 64, 301])
def test_size_words_is_the_longest_prefix_within_the_target(target: int) -> None:
    import asyncio
    import random
    rng = random.Random(target)
    count, calls = _counter()
    text, n = asyncio.run(bm.size_words(count, bm.random_words(rng, 4), target, lambda k: bm.random_words(rng, k)))
    assert n == asyncio.run(count(text)) and n == target   # topped up with one-token fillers to the exact length
    assert len(calls) < 2 * 12 + 2          # a binary search (and a top-up), not a scan


def test_size_words_stops_short_when_no_filler_fits() -> None:
    """A tokenizer where every filler costs 2 tokens and the gap is 1: the closest prompt below the target."""
    import asyncio

    async def count(text: str) -> int:
        return 5 + sum(2 if w in bm.FILLERS else 3 for w in text.split())
    text, n = asyncio.run(bm.size_words(count, ["alpha"] * 4, 13, lambda k: ["alpha"] * k))
    assert (n, text) == (13, "alpha alpha a")                 # 5+3+3 = 11, and a 2-token filler makes 13
    text, n = asyncio.run(bm.size_words(count, ["alpha"] * 4, 12, lambda k: ["alpha"] * k))
    assert n == 11 and text == "alpha alpha"                  # 11 + 2 > 12: no filler fits, one short


def test_size_words_refuses_a_target_below_the_template() -> None:
    import asyncio
    import random
    count, _ = _counter(template=10)
    rng = random.Random(1)
    with pytest.raises(bm.Refused, match="cannot be made"):
        asyncio.run(bm.size_words(count, bm.random_words(rng, 4), 8, lambda k: bm.random_words(rng, k)))


def test_check_fits_names_the_first_request_that_does_not_fit() -> None:
    prompts = [{"tokens": 400, "output_tokens": 64, "where": "a line 1"},
               {"tokens": 460, "output_tokens": 64, "where": "a line 2"},
               {"tokens": None, "output_tokens": 64, "where": "uncounted"}]
    bm.check_fits(prompts, None, "")              # no known context: nothing to refuse
    with pytest.raises(bm.Refused, match=r"has 500 prompt tokens \(estimated from probes\)"):
        bm.check_fits([{"tokens": None, "estimated_tokens": 500, "output_tokens": 64, "where": "w"}], 512, "")
    bm.check_fits(prompts[:1], 512, "512 tokens")
    with pytest.raises(bm.Refused, match=r"1 of 3 requests .* a line 2 has 460 prompt tokens \+ 64 output tokens = 524"):
        bm.check_fits(prompts, 512, "512 tokens")
    assert bm.long_target(512, 64) == 512 - 64 - 10 and bm.long_target(100, 10) == 100 - 10 - 4


METRICS = """# HELP vllm:request_time_per_output_token_seconds x
# TYPE vllm:request_time_per_output_token_seconds histogram
vllm:request_time_per_output_token_seconds_bucket{engine="0",le="0.1"} 3.0
vllm:request_time_per_output_token_seconds_sum{engine="0",model_name="m"} 0.3
vllm:request_time_per_output_token_seconds_count{engine="0",model_name="m"} 3.0
vllm:prefix_cache_queries_total{engine="0"} 100.0
vllm:prefix_cache_queries_total{engine="1"} 50.0
vllm:prefix_cache_hits_total{engine="0"} 30.0
vllm:num_requests_running{engine="0"} 1.0
llamacpp:prompt_tokens_total 3950
"""


def test_metrics_are_summed_over_labels_and_their_growth_gives_the_servers_tpot() -> None:
    before = bm.parse_metrics(METRICS)
    assert before["vllm:prefix_cache_queries_total"] == 150.0 and "vllm:num_requests_running" in before
    assert not any(k.endswith("_bucket") for k in before)
    after = dict(before, **{"vllm:request_time_per_output_token_seconds_sum": 0.3 + 0.05 * 4,
                            "vllm:request_time_per_output_token_seconds_count": 3.0 + 4,
                            "vllm:prefix_cache_queries_total": 150.0 + 200, "vllm:prefix_cache_hits_total": 30.0 + 0,
                            "vllm:num_requests_running": 4.0})
    delta = bm.metrics_delta(before, after)
    assert delta == {"vllm:prefix_cache_queries_total": 200.0, "vllm:request_time_per_output_token_seconds_count": 4.0,
                     "vllm:request_time_per_output_token_seconds_sum": pytest.approx(0.2)}   # gauges are left out
    recs = [_rec(0.0, 0.1, [0.05] * 9, 10, cached_tokens=None, usage=True)]
    s = bm.summarize(recs, 1.0, delta)
    assert s["server_tpot_ms"]["mean"] == pytest.approx(50.0) and "request_time_per_output_token" in \
        s["server_tpot_source"]
    assert s["cache"]["cached_prompt_tokens"] == 0 and s["cache"]["prefix_cache_queries"] == 200.0
    assert bm.metrics_delta(None, after) == {}


def test_summary_has_both_ttfts_server_tokens_and_the_cache() -> None:
    recs = [_rec(0.0, 0.2, [0.01] * 9, 10, ttft_chunk_s=0.05, cached_tokens=8, usage=True, prompt_tokens=40),
            _rec(1.0, 0.3, [0.01] * 9, 10, ttft_chunk_s=0.3, cached_tokens=0, usage=True, prompt_tokens=60)]
    s = bm.summarize(recs, 2.0)
    assert s["ttft_ms"]["mean"] == pytest.approx(250.0) and s["ttft_first_chunk_ms"]["mean"] == pytest.approx(175.0)
    assert s["input_tokens_per_request"]["mean"] == 50.0 and s["output_tokens_per_request"]["mean"] == 10.0
    assert s["tokens_counted_by"] == "server" and s["cache"]["cached_prompt_tokens"] == 8
    assert s["cache"]["hit_rate"] == pytest.approx(0.08)
    md = bm.markdown(s, {"label": "lab", "seed": 7})
    for words in ("TTFT (first content token) | 250.0", "TTFT (first streamed chunk) | 175.0", "| 50.0 | 10.0 |",
                  "from the server's cache: 8 of 100 (8%", "Tokens counted by: server", "seed: 7"):
        assert words in md
    recs[1].pop("usage")
    s = bm.summarize(recs, 2.0)
    assert s["tokens_counted_by"].startswith("client") and s["input_tokens_per_request"]["mean"] == 40.0
    for r in recs:
        r.pop("usage", None)
    assert bm.summarize(recs, 2.0)["input_tokens_per_request"]["mean"] is None   # no usage: no input count, not 0
    assert "not reported by the server" in bm.markdown(bm.summarize([_rec(0.0, 0.1, [0.01], 2)], 1.0), {})


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


def test_a_sweep_is_tabled_and_drawn_beside_the_planned_curve(tmp_path) -> None:
    levels = [{"parallel": c, "summary": {"completed": 4, "requests": 4, "output_throughput": agg,
                                          "tpot_ms": {"mean": tpot}}}
              for c, agg, tpot in ((1, 40.0, 24.0), (2, 70.0, 27.0), (4, 100.0, 38.0))]
    curve = [{"concurrency": c, "aggregate_tok_s": 30.0 * c ** 0.8, "decode_tok_s": 30.0 / c ** 0.2, "fits": True}
             for c in (1, 2, 4, 8, 16, 32)]
    rows = bm.sweep_rows(levels, curve)
    assert [r["concurrency"] for r in rows] == [1, 2, 4]
    assert rows[0]["predicted_aggregate_tok_s"] == 30.0 and rows[0]["predicted_tpot_ms"] == pytest.approx(1000 / 30.0)
    # a level the plan's curve has no point for is measured and left unplanned
    odd = bm.sweep_rows([{"parallel": 3, "summary": levels[0]["summary"]}], curve)[0]
    assert odd["predicted_aggregate_tok_s"] is None and odd["aggregate_tok_s"] == 40.0
    md = bm.sweep_markdown(rows)
    assert "| 4 | 4/4 | 100.0 |" in md and "1.33" in md   # 40 measured / 30 planned
    png = tmp_path / "s.png"
    bm.plot_sweep(rows, curve, str(png), "sweep")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
