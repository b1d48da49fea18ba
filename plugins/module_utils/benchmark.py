# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A streaming load against an OpenAI-compatible endpoint, and what it measured.

The metrics are the ones vLLM's ``benchmark_serving`` and evalscope report:
- TTFT: request sent -> first *non-empty* content delta (role-only and empty deltas do not count);
- ITL: the gaps between successive content deltas;
- TPOT: (E2EL - TTFT) / (output tokens - 1), per request;
- E2EL: request sent -> last byte.
Output tokens come from the server's ``usage`` when it sends one (llama-server and vLLM do with
``stream_options.include_usage``), else from the number of content deltas. When llama-server sends ``timings``,
its own per-token time is kept beside ours.

The HTTP side uses httpx and httpx-sse (imported when a load runs); the statistics and the report are plain Python.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

PERCENTILES = (50, 90, 99)
# Common words that are one token in most tokenizers (and in the lab model's), so N words ~ N prompt tokens.
WORDS = ("the of and to in is that it was for on are as with his they at be this from have or by one had not but what "
         "all were when we there can an your which their said if do will each about how up out them").split()


def percentile(values: Sequence[float], p: float) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default), None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(values: Sequence[float]) -> Dict[str, Optional[float]]:
    out: Dict[str, Optional[float]] = {"mean": (sum(values) / len(values)) if values else None}
    for p in PERCENTILES:
        out["p%d" % p] = percentile(values, p)
    return out


def random_prompts(n: int, words: int, seed: int) -> List[str]:
    """``n`` prompts of about ``words`` words; a seed makes runs comparable."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(max(1, words))) for _ in range(n)]


def load_prompts(path: str) -> List[str]:
    """A prompts file: JSON lines with ``prompt`` (or ``text``), or plain text, one prompt per line."""
    out: List[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                d = json.loads(line)
                line = d.get("prompt") or d.get("text") or ""
            if line:
                out.append(line)
    if not out:
        raise ValueError("prompts file %s has no prompts" % path)
    return out


def summarize(records: Sequence[Mapping[str, Any]], duration_s: float) -> Dict[str, Any]:
    """Aggregate per-request records into the report (times in ms)."""
    ok = [r for r in records if r.get("ok")]
    out_tokens = sum(int(r.get("output_tokens") or 0) for r in ok)
    ttft = [r["ttft_s"] * 1e3 for r in ok if r.get("ttft_s") is not None]
    e2el = [r["e2el_s"] * 1e3 for r in ok]
    itl = [g * 1e3 for r in ok for g in r.get("itl_s", [])]
    tpot = [(r["e2el_s"] - r["ttft_s"]) * 1e3 / (r["output_tokens"] - 1)
            for r in ok if r.get("ttft_s") is not None and (r.get("output_tokens") or 0) > 1]
    server_tpot = [r["server_tpot_ms"] for r in ok if r.get("server_tpot_ms") is not None]
    errors: Dict[str, int] = {}
    for r in records:
        if not r.get("ok"):
            errors[r.get("error") or "unknown"] = errors.get(r.get("error") or "unknown", 0) + 1
    return {
        "requests": len(records),
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "errors": errors,
        "duration_s": round(duration_s, 3),
        "request_throughput": round(len(ok) / duration_s, 4) if duration_s > 0 else None,
        "output_throughput": round(out_tokens / duration_s, 3) if duration_s > 0 else None,
        "output_tokens": out_tokens,
        "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in ok),
        "ttft_ms": stats(ttft),
        "itl_ms": stats(itl),
        "tpot_ms": stats(tpot),
        "e2el_ms": stats(e2el),
        "server_tpot_ms": stats(server_tpot) if server_tpot else None,
    }


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else ("%.1f" % v if v >= 10 else "%.2f" % v)


def markdown(summary: Mapping[str, Any], setup: Mapping[str, Any]) -> str:
    """The report: the setup line, then one table of latencies and one of throughput."""
    lines = ["### %s" % setup.get("label", "benchmark"), ""]
    lines.append(", ".join("%s: %s" % (k, v) for k, v in setup.items() if k != "label"))
    lines += ["", "| metric (ms) | mean | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
    rows = [("TTFT", "ttft_ms"), ("ITL", "itl_ms"), ("TPOT", "tpot_ms"), ("E2EL", "e2el_ms")]
    if summary.get("server_tpot_ms"):
        rows.append(("TPOT reported by the server (timings)", "server_tpot_ms"))
    for label, key in rows:
        s = summary[key]
        lines.append("| %s | %s |" % (label, " | ".join(_fmt(s[k]) for k in ("mean", "p50", "p90", "p99"))))
    lines += ["", "| requests | completed | failed | duration s | requests/s | output tokens/s |",
              "|---:|---:|---:|---:|---:|---:|",
              "| %d | %d | %d | %.2f | %s | %s |" % (summary["requests"], summary["completed"], summary["failed"],
                                                    summary["duration_s"], _fmt(summary["request_throughput"]),
                                                    _fmt(summary["output_throughput"]))]
    if summary["errors"]:
        lines += ["", "Errors: " + "; ".join("%s x%d" % kv for kv in sorted(summary["errors"].items()))]
    return "\n".join(lines) + "\n"


def plot(records: Sequence[Mapping[str, Any]], path: str, title: str) -> None:
    """PNG: each request's TTFT and E2EL over its start time, and the ITL distribution."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in records if r.get("ok")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    starts = [r["start_s"] for r in ok]
    a.scatter(starts, [r["e2el_s"] * 1e3 for r in ok], s=12, label="E2EL")
    a.scatter(starts, [(r.get("ttft_s") or 0) * 1e3 for r in ok], s=12, label="TTFT")
    failed = [r["start_s"] for r in records if not r.get("ok")]
    if failed:
        a.scatter(failed, [0] * len(failed), marker="x", color="red", label="failed")
    a.set_xlabel("request start (s)")
    a.set_ylabel("ms")
    a.legend()
    itl = [g * 1e3 for r in ok for g in r.get("itl_s", [])]
    b.hist(itl or [0], bins=40)
    b.set_xlabel("inter-token latency (ms)")
    b.set_ylabel("tokens")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _body(p: Mapping[str, Any], prompt: str) -> Dict[str, Any]:
    body: Dict[str, Any] = {"model": p["model"], "max_tokens": p["output_tokens"], "stream": p["stream"],
                            "temperature": p.get("temperature", 0.0)}
    if p["endpoint"] == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if p["stream"]:
        body["stream_options"] = {"include_usage": True}
    if p.get("ignore_eos"):
        body["ignore_eos"] = True   # llama-server and vLLM: generate exactly max_tokens
    return body


def _content(choice: Mapping[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, Mapping):
        return (delta.get("content") or delta.get("reasoning_content") or "")
    return choice.get("text") or ""


async def _one(client: Any, p: Mapping[str, Any], prompt: str, t0: float) -> Dict[str, Any]:
    from httpx_sse import aconnect_sse

    path = "/v1/chat/completions" if p["endpoint"] == "chat" else "/v1/completions"
    rec: Dict[str, Any] = {"ok": False, "itl_s": [], "start_s": time.perf_counter() - t0}
    start = time.perf_counter()
    deltas, last = 0, None
    usage: Mapping[str, Any] = {}
    try:
        if p["stream"]:
            async with aconnect_sse(client, "POST", path, json=_body(p, prompt)) as es:
                if es.response.status_code != 200:
                    await es.response.aread()
                    rec["error"] = "HTTP %d" % es.response.status_code
                    return rec
                async for ev in es.aiter_sse():
                    if ev.data.strip() == "[DONE]":
                        break
                    chunk = json.loads(ev.data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    if chunk.get("timings"):
                        rec["server_tpot_ms"] = chunk["timings"].get("predicted_per_token_ms")
                    text = "".join(_content(c) for c in chunk.get("choices") or [])
                    if not text:
                        continue
                    now = time.perf_counter()
                    if last is None:
                        rec["ttft_s"] = now - start
                    else:
                        rec["itl_s"].append(now - last)
                    last = now
                    deltas += 1
        else:
            r = await client.post(path, json=_body(p, prompt))
            if r.status_code != 200:
                rec["error"] = "HTTP %d" % r.status_code
                return rec
            d = r.json()
            usage = d.get("usage") or {}
            if d.get("timings"):
                rec["server_tpot_ms"] = d["timings"].get("predicted_per_token_ms")
            deltas = 1 if any(_content(c) or (c.get("message") or {}).get("content") for c in d.get("choices", [])) \
                else 0
            rec["ttft_s"] = None
    except Exception as e:  # every failure is a counted error of the load, named by its type
        rec["error"] = type(e).__name__
        rec["e2el_s"] = time.perf_counter() - start
        return rec
    rec["e2el_s"] = time.perf_counter() - start
    rec["output_tokens"] = int(usage.get("completion_tokens") or deltas)
    rec["prompt_tokens"] = int(usage.get("prompt_tokens") or 0)
    rec["ok"] = deltas > 0
    if not rec["ok"]:
        rec["error"] = "no content"
    return rec


async def _run(p: Mapping[str, Any], prompts: Sequence[str]) -> Dict[str, Any]:
    import httpx

    headers = {"Authorization": "Bearer %s" % p["api_key"]} if p.get("api_key") else {}
    timeout = httpx.Timeout(p["timeout"], connect=min(10.0, p["timeout"]))
    limits = httpx.Limits(max_connections=p["parallel"], max_keepalive_connections=p["parallel"])
    async with httpx.AsyncClient(base_url=p["url"].rstrip("/"), headers=headers, timeout=timeout,
                                 limits=limits) as client:
        for i in range(p.get("warmup", 0)):
            await _one(client, p, prompts[i % len(prompts)], time.perf_counter())
        sem = asyncio.Semaphore(p["parallel"])
        t0 = time.perf_counter()

        async def guarded(i: int) -> Dict[str, Any]:
            async with sem:
                return await _one(client, p, prompts[i % len(prompts)], t0)

        records = await asyncio.gather(*(guarded(i) for i in range(p["num_requests"])))
        duration = time.perf_counter() - t0
    return {"records": list(records), "duration_s": duration}


def run_load(params: Mapping[str, Any], prompts: Sequence[str]) -> Dict[str, Any]:
    """Run the load; returns ``{records, duration_s}``."""
    return asyncio.run(_run(params, prompts))


def compare(reports: Sequence[Mapping[str, Any]], baseline: str) -> str:
    """Benchmark reports side by side, each as a ratio against the one labelled ``baseline``.

    ``reports``: what llm_benchmark writes as <name>.json (``setup`` with its ``label``, ``summary``), each with the
    benchmark role's <name>.memory.json as ``memory`` when there is one (node -> service -> ``peak_rss_mb``): the
    table then gives the node whose services peaked highest; and ``first_completion_s`` when the caller timed it (from
    the deploying run's start to its first completed request). A ratio above 1 is better than the baseline in every
    column: for latencies it is baseline / this, for throughput this / baseline. A report that completed nothing is
    listed with its errors and no ratios."""
    by_label = {r["setup"]["label"]: r for r in reports}
    if baseline not in by_label:
        raise ValueError("no report is labelled %r (have: %s)" % (baseline, ", ".join(sorted(by_label)) or "none"))
    base = by_label[baseline]["summary"]

    def mean(s: Mapping[str, Any], key: str) -> Optional[float]:
        return (s.get(key) or {}).get("mean")

    def ratio(num: Optional[float], den: Optional[float]) -> str:
        return "-" if not num or not den else "%.2f" % (num / den)

    def peak(r: Mapping[str, Any]) -> str:
        nodes = {n: sum(m.get("peak_rss_mb") or 0 for m in svcs.values()) for n, svcs in (r.get("memory") or {}).items()}
        if not nodes:
            return "-"
        top = max(nodes, key=lambda n: nodes[n])
        return "%.2f (%s)" % (nodes[top] / 1024.0, top)

    lines = ["| setup | nodes | TTFT ms | TPOT ms | output tok/s | TTFT x | TPOT x | output tok/s x | peak RSS GB (node) "
             "| run start to first completion s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        s, setup = r["summary"], r["setup"]
        nodes = len([n for n in str(setup.get("nodes", "")).split(" + ") if n])
        if not s.get("completed"):
            lines.append("| %s | %d | failed: %s | | | | | | | |" % (setup["label"], nodes, "; ".join(
                "%s x%d" % kv for kv in sorted((s.get("errors") or {}).items())) or "no request completed"))
            continue
        lines.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            setup["label"], nodes, _fmt(mean(s, "ttft_ms")), _fmt(mean(s, "tpot_ms")), _fmt(s.get("output_throughput")),
            ratio(mean(base, "ttft_ms"), mean(s, "ttft_ms")), ratio(mean(base, "tpot_ms"), mean(s, "tpot_ms")),
            ratio(s.get("output_throughput"), base.get("output_throughput")), peak(r),
            "-" if r.get("first_completion_s") is None else "%.0f" % r["first_completion_s"]))
    lines += ["", "Ratios against %s; above 1 is better (latency: baseline / this; throughput: this / baseline)."
              % baseline]
    return "\n".join(lines) + "\n"
