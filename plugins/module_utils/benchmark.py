# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A streaming load against an OpenAI-compatible endpoint, and what it measured.

The metrics are the ones vLLM's ``benchmark_serving`` and evalscope report:
- TTFT: request sent -> first *non-empty* content delta (role-only and empty deltas do not count). The first-chunk
  TTFT (request sent -> first streamed event of any kind, what evalscope reports) is kept beside it: a server that
  sends an empty role chunk before the prefill makes the two differ by the whole prefill (the lab's llama-server
  sends it with the first token);
- ITL: the gaps between successive content deltas;
- TPOT: (E2EL - TTFT) / (output tokens - 1), per request;
- E2EL: request sent -> last byte.
Prompt and output tokens come from the server's ``usage`` (``stream_options.include_usage``), prompts of N tokens
are sized with the server's own ``/tokenize``, and the served context is asked of the server before any load: a
request that cannot fit is refused before the first one is sent. Each run is cold by default: fresh prompts from a
recorded seed, ``cache_prompt: false`` (llama-server) and a fresh ``cache_salt`` (vLLM) per request; ``cache: warm``
primes every prompt first. What the server says it served from its cache, and its own time per output token
(llama-server's ``timings``, vLLM's ``/metrics``), are reported beside ours.

The HTTP side uses httpx and httpx-sse (imported when a load runs); the statistics and the report are plain Python.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any, Awaitable, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

PERCENTILES = (50, 90, 99)
# Common English words: the random prompts are made of them and sized to N tokens by the server's tokenizer.
WORDS = ("the of and to in is that it was for on are as with his they at be this from have or by one had not but what "
         "all were when we there can an your which their said if do will each about how up out them").split()
# The long-context mode fills the served context up to this many tokens short of it (at least LONG_MARGIN_MIN).
LONG_MARGIN_FRACTION = 0.02
LONG_MARGIN_MIN = 4
# Server measures of time per output token, in the order they are preferred (all are Prometheus histograms in s).
SERVER_TPOT_METRICS = ("vllm:request_time_per_output_token_seconds", "vllm:time_per_output_token_seconds",
                       "vllm:inter_token_latency_seconds")
# Prometheus counters (in tokens) of a server's prefix cache: hits, queries.
PREFIX_CACHE_METRICS = ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total")


class Refused(ValueError):
    """The load would not fit what the server serves; raised before any request is sent."""


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


def draw_seed() -> int:
    """A fresh seed for a run's prompts (recorded in the report, so ``seed:`` repeats the run exactly)."""
    return random.SystemRandom().randrange(1, 2 ** 31)


# Short words a tokenizer makes one token of (with their leading space), to top a prompt up to its exact length.
FILLERS = ("a", "I", "the", "and", "of", "to")


def random_words(rng: random.Random, n: int) -> List[str]:
    return [rng.choice(WORDS) for _ in range(max(1, n))]


def _turns(conversation: Sequence[Mapping[str, Any]]) -> Tuple[Optional[str], Optional[str]]:
    """The first user turn and the reply that follows it, from ShareGPT (``from``/``value``) or OpenAI
    (``role``/``content``) turns."""
    user = reply = None
    for turn in conversation:
        who = str(turn.get("from") or turn.get("role") or "").lower()
        text = turn.get("value") if "value" in turn else turn.get("content")
        if not isinstance(text, str):
            continue
        if user is None and who in ("human", "user"):
            user = text
        elif user is not None and who in ("gpt", "assistant", "model", "chatgpt", "bard"):
            reply = text
            break
    return user, reply


def _entry(d: Mapping[str, Any], where: str) -> Optional[Dict[str, Any]]:
    prompt: Optional[str] = None
    reply: Optional[str] = None
    for key in ("conversations", "conversation", "messages"):
        if isinstance(d.get(key), list):
            prompt, reply = _turns(d[key])
            break
    else:
        prompt = d.get("prompt") or d.get("text") or d.get("question")
        reply = d.get("completion") or d.get("response") or d.get("answer")
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    out: Dict[str, Any] = {"prompt": prompt, "where": where}
    for key in ("output_tokens", "max_tokens", "output_len"):
        if isinstance(d.get(key), int) and not isinstance(d.get(key), bool) and d[key] > 0:
            out["output_tokens"] = d[key]
            break
    if isinstance(reply, str) and reply.strip():
        out["reply"] = reply
    return out


def load_dataset(path: str) -> List[Dict[str, Any]]:
    """Prompts from a local file, in file order: ``{prompt, where, [output_tokens], [reply]}`` each.

    - a JSON array (ShareGPT: ``[{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", ...}]}]``, or
      OpenAI ``messages``, or objects with ``prompt``);
    - JSON lines of the same objects;
    - plain text, one prompt per line.
    The first user turn is the prompt; the reply after it, or an ``output_tokens``/``max_tokens`` field, gives the
    expected output length. Entries without a user turn are skipped; a file without any prompt is an error."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    name = path.rsplit("/", 1)[-1]
    out: List[Dict[str, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as err:
            raise ValueError("%s is not valid JSON: %s" % (name, err))
        for i, d in enumerate(items):
            entry = _entry(d, "%s item %d" % (name, i + 1)) if isinstance(d, Mapping) else None
            if entry:
                out.append(entry)
    else:
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    d = json.loads(line)
                except ValueError as err:
                    raise ValueError("%s line %d is not valid JSON: %s" % (name, n, err))
                entry = _entry(d, "%s line %d" % (name, n))
                if entry:
                    out.append(entry)
            else:
                out.append({"prompt": line, "where": "%s line %d" % (name, n)})
    if not out:
        raise ValueError("%s has no prompts (no user turn in any entry)" % name)
    return out


def long_target(context: int, output_tokens: int) -> int:
    """The prompt length of the long-context mode: the served context less the output and a small margin."""
    return context - output_tokens - max(LONG_MARGIN_MIN, int(context * LONG_MARGIN_FRACTION))


async def size_words(count: Callable[[str], Awaitable[int]], words: List[str], target: int,
                     more: Callable[[int], List[str]]) -> Tuple[str, int]:
    """The longest run of ``words`` (extended with ``more(n)`` as needed) whose prompt is at most ``target`` tokens
    by ``count`` (the server's tokenizer), and its count. Binary search over the number of words: token counts grow
    with every word, so that run is short of ``target`` by less than the tokens of one word (a random word can be 5
    tokens); the gap is then filled with short common words while one still fits, so the prompt has ``target``
    tokens unless no filler is a single token."""
    words = list(words)
    while await count(" ".join(words)) <= target:
        words += more(len(words))
    lo, hi = 1, len(words)          # count(hi words) > target
    least = await count(words[0])
    if least > target:
        raise Refused("a prompt of %d tokens cannot be made: the chat template and one word already take %d; ask "
                      "for at least %d prompt tokens" % (target, least, least))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await count(" ".join(words[:mid])) <= target:
            lo = mid
        else:
            hi = mid
    text = " ".join(words[:lo])
    n = await count(text)
    while n < target:
        for filler in FILLERS:
            more_n = await count(text + " " + filler)
            if more_n <= target:
                text, n = text + " " + filler, more_n
                break
        else:
            break   # every filler overshoots: the closest this tokenizer allows
    return text, n


def check_fits(prompts: Sequence[Mapping[str, Any]], context: Optional[int], where: str) -> None:
    """Refuse, before any load, prompts whose tokens plus their output do not fit the served context."""
    if not context:
        return
    def tokens(p: Mapping[str, Any]) -> Optional[int]:
        return p["tokens"] if p.get("tokens") is not None else p.get("estimated_tokens")

    over = [p for p in prompts if tokens(p) is not None and tokens(p) + p["output_tokens"] > context]
    if over:
        first = over[0]
        n = int(tokens(first) or 0)
        raise Refused("%d of %d requests do not fit the served context of %d tokens (%s): %s has %d prompt tokens%s "
                      "+ %d output tokens = %d; shorten the prompts or lower output_tokens"
                      % (len(over), len(prompts), context, where, first.get("where", "a prompt"), n,
                         "" if first.get("tokens") is not None else " (estimated from probes)",
                         first["output_tokens"], n + first["output_tokens"]))


def parse_metrics(text: str) -> Dict[str, float]:
    """Prometheus text exposition -> {name: value}, the samples of one name summed over their labels (``_bucket``
    samples are left out)."""
    out: Dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, tail = line.split("{", 1)[0], line.rsplit("}", 1)[-1].split()
        else:
            name, tail = line.split()[0], line.split()[1:]
        if not tail or name.endswith("_bucket"):
            continue
        try:
            out[name] = out.get(name, 0.0) + float(tail[0])
        except ValueError:
            continue
    return out


def metrics_delta(before: Optional[Mapping[str, float]], after: Optional[Mapping[str, float]]) -> Dict[str, float]:
    """What the server's counters and histogram sums/counts grew by during the load."""
    if not before or not after:
        return {}
    return {k: round(after[k] - before.get(k, 0.0), 6) for k in sorted(after)
            if (k.endswith(("_total", "_sum", "_count"))) and after[k] != before.get(k, 0.0)}


def server_tpot(records: Sequence[Mapping[str, Any]], delta: Mapping[str, float]) -> Tuple[Optional[Dict[str, Any]],
                                                                                      Optional[str]]:
    """The server's own time per output token and where it comes from: each request's llama-server ``timings``
    when it sent them, else the growth of a vLLM histogram over the load (its mean only)."""
    per_request = [r["server_tpot_ms"] for r in records if r.get("ok") and r.get("server_tpot_ms") is not None]
    if per_request:
        return stats(per_request), "timings.predicted_per_token_ms of each request"
    for name in SERVER_TPOT_METRICS:
        if delta.get(name + "_count"):
            mean = delta[name + "_sum"] * 1e3 / delta[name + "_count"]
            return {"mean": mean, "p50": None, "p90": None, "p99": None}, "/metrics %s (sum / count)" % name
    return None, None


def summarize(records: Sequence[Mapping[str, Any]], duration_s: float,
              metrics: Optional[Mapping[str, float]] = None) -> Dict[str, Any]:
    """Aggregate per-request records into the report (times in ms). ``metrics``: what the server's counters grew by
    during the load (``metrics_delta``)."""
    ok = [r for r in records if r.get("ok")]
    delta = dict(metrics or {})
    out_tokens = sum(int(r.get("output_tokens") or 0) for r in ok)
    prompt_tokens = sum(int(r.get("prompt_tokens") or 0) for r in ok)
    ttft = [r["ttft_s"] * 1e3 for r in ok if r.get("ttft_s") is not None]
    ttft_chunk = [r["ttft_chunk_s"] * 1e3 for r in ok if r.get("ttft_chunk_s") is not None]
    e2el = [r["e2el_s"] * 1e3 for r in ok]
    itl = [g * 1e3 for r in ok for g in r.get("itl_s", [])]
    tpot = [(r["e2el_s"] - r["ttft_s"]) * 1e3 / (r["output_tokens"] - 1)
            for r in ok if r.get("ttft_s") is not None and (r.get("output_tokens") or 0) > 1]
    cached = [int(r["cached_tokens"]) for r in ok if r.get("cached_tokens") is not None]
    s_tpot, s_source = server_tpot(records, delta)
    errors: Dict[str, int] = {}
    for r in records:
        if not r.get("ok"):
            errors[r.get("error") or "unknown"] = errors.get(r.get("error") or "unknown", 0) + 1
    cache: Dict[str, Any] = {"cached_prompt_tokens": sum(cached) if cached else None,
                             "source": "usage.prompt_tokens_details.cached_tokens / timings.cache_n" if cached
                             else None}
    hits, queries = (delta.get(n) for n in PREFIX_CACHE_METRICS)
    if queries:
        cache.update(prefix_cache_hits=hits or 0.0, prefix_cache_queries=queries)
        if not cached:
            cache.update(cached_prompt_tokens=int(hits or 0), source="/metrics %s" % PREFIX_CACHE_METRICS[0])
    if cache["cached_prompt_tokens"] is not None and prompt_tokens:
        cache["hit_rate"] = round(cache["cached_prompt_tokens"] / float(prompt_tokens), 4)
    return {
        "requests": len(records),
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "errors": errors,
        "duration_s": round(duration_s, 3),
        "request_throughput": round(len(ok) / duration_s, 4) if duration_s > 0 else None,
        "output_throughput": round(out_tokens / duration_s, 3) if duration_s > 0 else None,
        "output_tokens": out_tokens,
        "prompt_tokens": prompt_tokens,
        "input_tokens_per_request": stats([float(r.get("prompt_tokens") or 0) for r in ok if r.get("usage")]),
        "output_tokens_per_request": stats([float(r.get("output_tokens") or 0) for r in ok]),
        "tokens_counted_by": "server" if ok and all(r.get("usage") for r in ok) else
        ("client (content deltas: the server sent no usage)" if ok else None),
        "ttft_ms": stats(ttft),
        "ttft_first_chunk_ms": stats(ttft_chunk),
        "itl_ms": stats(itl),
        "tpot_ms": stats(tpot),
        "e2el_ms": stats(e2el),
        "server_tpot_ms": s_tpot,
        "server_tpot_source": s_source,
        "cache": cache,
        "server_metrics": delta,
    }


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else ("%.1f" % v if v >= 10 else "%.2f" % v)


def markdown(summary: Mapping[str, Any], setup: Mapping[str, Any]) -> str:
    """The report: the setup line, then a table of latencies, one of tokens and throughput, and the cache."""
    lines = ["### %s" % setup.get("label", "benchmark"), ""]
    lines.append(", ".join("%s: %s" % (k, v) for k, v in setup.items() if k != "label"))
    lines += ["", "| metric (ms) | mean | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
    rows = [("TTFT (first content token)", "ttft_ms"), ("TTFT (first streamed chunk)", "ttft_first_chunk_ms"),
            ("ITL", "itl_ms"), ("TPOT", "tpot_ms"), ("E2EL", "e2el_ms")]
    if summary.get("server_tpot_ms"):
        rows.append(("TPOT by the server (%s)" % summary.get("server_tpot_source"), "server_tpot_ms"))
    for label, key in rows:
        s = summary.get(key) or {}
        lines.append("| %s | %s |" % (label, " | ".join(_fmt(s.get(k)) for k in ("mean", "p50", "p90", "p99"))))
    inp, outp = summary.get("input_tokens_per_request") or {}, summary.get("output_tokens_per_request") or {}
    lines += ["", "| requests | completed | failed | mean input tokens | mean output tokens | duration s | requests/s "
              "| output tokens/s |", "|---:|---:|---:|---:|---:|---:|---:|---:|",
              "| %d | %d | %d | %s | %s | %.2f | %s | %s |" % (
                  summary["requests"], summary["completed"], summary["failed"], _fmt(inp.get("mean")),
                  _fmt(outp.get("mean")), summary["duration_s"], _fmt(summary["request_throughput"]),
                  _fmt(summary["output_throughput"]))]
    lines += ["", "Tokens counted by: %s." % (summary.get("tokens_counted_by") or "-")]
    cache = summary.get("cache") or {}
    if cache.get("cached_prompt_tokens") is not None:
        lines.append("Prompt tokens served from the server's cache: %d of %d (%.0f%%; %s)." % (
            cache["cached_prompt_tokens"], summary["prompt_tokens"], 100.0 * (cache.get("hit_rate") or 0.0),
            cache.get("source")))
    else:
        lines.append("Prompt tokens served from the server's cache: not reported by the server.")
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


def _body(p: Mapping[str, Any], prompt: str, max_tokens: int, cold: bool, stream: bool,
          slot: Optional[int] = None) -> Dict[str, Any]:
    body: Dict[str, Any] = {"model": p["model"], "max_tokens": max_tokens, "stream": stream,
                            "temperature": p.get("temperature", 0.0)}
    if p["endpoint"] == "chat":
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    if stream:
        body["stream_options"] = {"include_usage": True}
    if p.get("ignore_eos"):
        body["ignore_eos"] = True   # llama-server and vLLM: generate exactly max_tokens
    body["cache_prompt"] = not cold  # llama-server: reuse (or not) the KV cache of an earlier prompt
    if cold:
        body["cache_salt"] = uuid.uuid4().hex   # vLLM: this request shares no prefix-cache block with another
    elif slot is not None:
        body["id_slot"] = slot   # llama-server: the slot that was primed with this prompt (warm runs)
    return body


def _content(choice: Mapping[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, Mapping):
        return (delta.get("content") or delta.get("reasoning_content") or "")
    return choice.get("text") or ""


def _server_side(rec: Dict[str, Any], d: Mapping[str, Any]) -> None:
    """What a chunk or a response says of itself: usage (tokens, cached tokens), llama-server's timings."""
    usage = d.get("usage")
    if isinstance(usage, Mapping) and usage:
        rec["usage"] = True
        rec["prompt_tokens"] = int(usage.get("prompt_tokens") or 0)
        rec["usage_completion_tokens"] = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details")
        if isinstance(details, Mapping) and details.get("cached_tokens") is not None:
            rec["cached_tokens"] = int(details["cached_tokens"])
    timings = d.get("timings")
    if isinstance(timings, Mapping) and timings:
        if timings.get("predicted_per_token_ms") is not None:
            rec["server_tpot_ms"] = timings["predicted_per_token_ms"]
        if rec.get("cached_tokens") is None and timings.get("cache_n") is not None:
            rec["cached_tokens"] = int(timings["cache_n"])


async def _one(client: Any, p: Mapping[str, Any], prompt: Mapping[str, Any], t0: float, cold: bool = True,
               max_tokens: Optional[int] = None, stream: Optional[bool] = None) -> Dict[str, Any]:
    from httpx_sse import aconnect_sse

    stream = p["stream"] if stream is None else stream
    path = "/v1/chat/completions" if p["endpoint"] == "chat" else "/v1/completions"
    body = _body(p, prompt["text"], max_tokens or prompt["output_tokens"], cold, stream, prompt.get("slot"))
    rec: Dict[str, Any] = {"ok": False, "itl_s": [], "start_s": time.perf_counter() - t0,
                           "sized_prompt_tokens": prompt.get("tokens"), "max_tokens": body["max_tokens"]}
    start = time.perf_counter()
    deltas, last = 0, None
    try:
        if stream:
            async with aconnect_sse(client, "POST", path, json=body) as es:
                if es.response.status_code != 200:
                    await es.response.aread()
                    rec["error"] = "HTTP %d" % es.response.status_code
                    return rec
                async for ev in es.aiter_sse():
                    if "ttft_chunk_s" not in rec:
                        rec["ttft_chunk_s"] = time.perf_counter() - start
                    if ev.data.strip() == "[DONE]":
                        break
                    chunk = json.loads(ev.data)
                    _server_side(rec, chunk)
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
            r = await client.post(path, json=body)
            if r.status_code != 200:
                rec["error"] = "HTTP %d" % r.status_code
                return rec
            d = r.json()
            _server_side(rec, d)
            deltas = 1 if any(_content(c) or (c.get("message") or {}).get("content") for c in d.get("choices", [])) \
                else 0
            rec["ttft_s"] = None
    except Exception as e:  # every failure is a counted error of the load, named by its type
        rec["error"] = type(e).__name__
        rec["e2el_s"] = time.perf_counter() - start
        return rec
    rec["e2el_s"] = time.perf_counter() - start
    rec["output_tokens"] = int(rec.pop("usage_completion_tokens", 0) or deltas)
    rec.setdefault("prompt_tokens", 0)
    rec["ok"] = deltas > 0
    if not rec["ok"]:
        rec["error"] = "no content"
    return rec


class ServerTokenizer:
    """Counts tokens with the server's own tokenizer, as the server will see a request's prompt: vLLM's
    ``/tokenize`` (chat messages with the generation prompt, or a completion prompt) or llama-server's
    ``/apply-template`` then ``/tokenize``. ``kind`` stays None for a server with neither (distributed-llama)."""

    def __init__(self, client: Any, model: str, endpoint: str) -> None:
        self.client, self.model, self.endpoint = client, model, endpoint
        self.kind: Optional[str] = None
        self.calls = 0
        self._seen: Dict[Tuple[str, bool], int] = {}

    async def _post(self, path: str, body: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        self.calls += 1
        try:
            r = await self.client.post(path, json=body)
        except Exception:  # no such endpoint, or the server closed: the caller falls back
            return None
        if r.status_code != 200:
            return None
        try:
            d = r.json()
        except ValueError:
            return None
        return d if isinstance(d, dict) else None

    async def detect(self) -> Optional[str]:
        d = await self._post("/tokenize", {"model": self.model, "prompt": "hello"})
        if d is not None and isinstance(d.get("count"), int):
            self.kind = "vllm"
        else:
            d = await self._post("/tokenize", {"content": "hello"})
            if d is not None and isinstance(d.get("tokens"), list):
                self.kind = "llama"
        return self.kind

    async def count(self, text: str, plain: bool = False) -> int:
        """Tokens of ``text`` as a request's prompt, or (``plain``) as bare text, such as a reply."""
        key = (text, plain)
        if key in self._seen:
            return self._seen[key]
        n: Optional[int] = None
        if self.kind == "vllm":
            if plain:
                body: Dict[str, Any] = {"model": self.model, "prompt": text, "add_special_tokens": False}
            elif self.endpoint == "chat":
                body = {"model": self.model, "messages": [{"role": "user", "content": text}],
                        "add_generation_prompt": True}
            else:
                body = {"model": self.model, "prompt": text}
            d = await self._post("/tokenize", body)
            n = d.get("count") if d else None
        elif self.kind == "llama":
            content: Optional[str] = text
            if self.endpoint == "chat" and not plain:
                d = await self._post("/apply-template", {"messages": [{"role": "user", "content": text}]})
                content = (d or {}).get("prompt")
            if isinstance(content, str):
                d = await self._post("/tokenize", {"content": content, "add_special": not plain,
                                                   "parse_special": not plain})
                n = len(d["tokens"]) if d and isinstance(d.get("tokens"), list) else None
        if not isinstance(n, int):
            raise Refused("the server's tokenizer (%s) did not answer for a prompt" % self.kind)
        self._seen[key] = n
        return n


async def server_slots(client: Any) -> Optional[int]:
    """llama-server's slot count (``/props`` total_slots); None from a server without slots (vLLM)."""
    try:
        r = await client.get("/props")
        n = (r.json() or {}).get("total_slots") if r.status_code == 200 else None
    except Exception:  # not llama-server
        return None
    return n if isinstance(n, int) and n > 0 else None


async def served_context(client: Any) -> Tuple[Optional[int], str]:
    """The longest request (prompt + output) the server takes, as it says: llama-server's ``/props`` (per slot),
    vLLM's ``max_model_len`` in ``/v1/models``."""
    try:
        r = await client.get("/props")
        if r.status_code == 200:
            n = ((r.json() or {}).get("default_generation_settings") or {}).get("n_ctx")
            if isinstance(n, int) and n > 0:
                return n, "the server's /props n_ctx, per slot"
    except Exception:  # not llama-server
        pass
    try:
        r = await client.get("/v1/models")
        if r.status_code == 200:
            for m in (r.json() or {}).get("data") or []:
                if isinstance(m.get("max_model_len"), int):
                    return m["max_model_len"], "the server's /v1/models max_model_len"
    except Exception:  # no model list
        pass
    return None, ""


async def scrape(client: Any) -> Optional[Dict[str, float]]:
    """The server's Prometheus metrics, or None when it has none for us."""
    try:
        r = await client.get("/metrics")
    except Exception:  # no metrics endpoint reachable
        return None
    if r.status_code != 200 or "text/plain" not in r.headers.get("content-type", "text/plain"):
        return None
    return parse_metrics(r.text)


async def probe_fit(client: Any, p: Mapping[str, Any], rng: random.Random) -> Optional[Tuple[float, float]]:
    """For a server without a tokenizer endpoint: the prompt tokens its ``usage`` reports for 16 and for 48 random
    words (two unstreamed requests of one output token, before the load), as ``(a, b)`` in tokens = a + b * words -
    ``a`` the chat template, ``b`` tokens a word. None when the server reports no usage."""
    counts = []
    for n in (16, 48):
        rec = await _one(client, p, {"text": " ".join(random_words(rng, n)), "output_tokens": 1}, time.perf_counter(),
                         max_tokens=1, stream=False)
        if not rec.get("usage") or not rec.get("prompt_tokens"):
            return None
        counts.append(rec["prompt_tokens"])
    b = (counts[1] - counts[0]) / 32.0
    return (counts[0] - 16 * b, b) if b > 0 else None


async def build_prompts(p: Mapping[str, Any], tok: ServerTokenizer, client: Any, context: Optional[int],
                        context_source: str) -> Tuple[List[Dict[str, Any]], Optional[Dict[str, Any]], Dict[str, Any]]:
    """The measured prompts (``text``, ``tokens`` by the server, ``output_tokens``, ``where``), one more for a cold
    run's warm-up (None when there is none), and how they were made. Raises Refused before any load when a request
    cannot fit ``context``."""
    rng = random.Random(p["seed"])
    output = int(p["output_tokens"])
    mode = p.get("dataset") or "random"
    info: Dict[str, Any] = {"mode": mode, "seed": p["seed"], "served_context": context,
                            "served_context_from": context_source or None}
    where = "%d tokens, %s" % (context, context_source) if context else ""
    if mode == "long":
        if not context:
            raise Refused("dataset long fills the served context, but the server reports none: set context_tokens")
        target = long_target(context, output)
        if target < 1:
            raise Refused("output_tokens %d leaves no room for a prompt in the served context of %s"
                          % (output, where))
    else:
        target = int(p["prompt_tokens"])
    if mode != "file" and context and target + output > context:
        raise Refused("prompt_tokens %d + output_tokens %d = %d do not fit the served context of %s: lower "
                      "prompt_tokens or output_tokens" % (target, output, target + output, where))

    fit: Optional[Tuple[float, float]] = None     # tokens = a + b * words, from probes, for a server without /tokenize

    def estimated(words: int) -> Optional[int]:
        return int(round(fit[0] + fit[1] * words)) if fit else None

    async def random_prompt(i: int, n: int) -> Dict[str, Any]:
        if tok.kind:
            text, tokens = await size_words(tok.count, random_words(rng, n), n, lambda k: random_words(rng, k))
            return {"text": text, "tokens": tokens, "output_tokens": output, "where": "random prompt %d" % (i + 1)}
        a, b = fit or (0.0, 1.0)
        words = max(1, int((n - a) / b))
        return {"text": " ".join(random_words(rng, words)), "tokens": None, "output_tokens": output,
                "estimated_tokens": estimated(words), "where": "random prompt %d" % (i + 1)}

    await tok.detect()
    if not tok.kind:
        fit = await probe_fit(client, p, rng)
    info["sized_by"] = {"vllm": "the server's /tokenize", "llama": "the server's /apply-template and /tokenize"}.get(
        tok.kind or "", "the usage of two probe requests (the server has no /tokenize), %.2f tokens a word" % fit[1]
        if fit else "words: the server has no /tokenize and reports no usage")
    prompts: List[Dict[str, Any]] = []
    if mode == "file":
        for e in load_dataset(p["dataset_file"]):
            n_out = e.get("output_tokens") or output
            if e.get("output_tokens") is None and e.get("reply") and tok.kind:
                n_out = max(1, await tok.count(e["reply"], plain=True))
            prompts.append({"text": e["prompt"], "tokens": await tok.count(e["prompt"]) if tok.kind else None,
                            "estimated_tokens": estimated(len(e["prompt"].split())),
                            "output_tokens": n_out, "where": e["where"]})
        info["file"] = p["dataset_file"].rsplit("/", 1)[-1]
        info["entries"] = len(prompts)
        check_fits(prompts, context, where)
        asked = int(p["prompt_tokens"])
        warm_target = max(1, min(asked, (context - output - 1) if context else asked))
    else:
        prompts = [await random_prompt(i, target) for i in range(p["num_requests"])]
        check_fits(prompts, context, where)
        warm_target = target
    # the cold run's warm-up has a prompt of its own; a warm run primes the measured prompts instead
    warm = await random_prompt(len(prompts), warm_target) \
        if p.get("cache", "cold") == "cold" and p.get("warmup", 0) else None
    info["prompt_tokens_target"] = target if mode != "file" else None
    counted = [x["tokens"] for x in prompts if x["tokens"] is not None]
    if counted:
        info["prompt_tokens_sized"] = {"min": min(counted), "max": max(counted)}
    info["tokenizer_calls"] = tok.calls
    return prompts, warm, info


async def _run(p: Mapping[str, Any]) -> Dict[str, Any]:
    import httpx

    headers = {"Authorization": "Bearer %s" % p["api_key"]} if p.get("api_key") else {}
    timeout = httpx.Timeout(p["timeout"], connect=min(10.0, p["timeout"]))
    limits = httpx.Limits(max_connections=p["parallel"], max_keepalive_connections=p["parallel"])
    cold = p.get("cache", "cold") == "cold"
    async with httpx.AsyncClient(base_url=p["url"].rstrip("/"), headers=headers, timeout=timeout,
                                 limits=limits) as client:
        server_ctx, source = await served_context(client)
        known = [c for c in (server_ctx, p.get("context_tokens")) if c]
        context = min(known) if known else None
        if context and context != server_ctx:
            source = "context_tokens"
        tok = ServerTokenizer(client, p["model"], p["endpoint"])
        prompts, warm, info = await build_prompts(p, tok, client, context, source)
        if warm is not None:
            for _ in range(p.get("warmup", 0)):      # a prompt of its own: the measured ones stay unseen
                await _one(client, p, warm, time.perf_counter())
        if not cold:
            # Every measured prompt once, into the cache. On llama-server each distinct prompt is pinned to a slot
            # (id_slot), primed there and measured there: left to itself the server may measure a prompt in a slot
            # that holds another one (then only the chat template's tokens hit). More distinct prompts than slots
            # share slots, and only the last primed of each stays cached: the report says so.
            distinct = list({x["text"]: x for x in prompts}.values())
            slots = await server_slots(client)
            if slots:
                slot_of = {x["text"]: i % slots for i, x in enumerate(distinct)}
                for prompt in prompts:
                    prompt["slot"] = slot_of[prompt["text"]]
                info["slots"] = slots
                if len(distinct) > slots:
                    info["note"] = ("%d distinct prompts for %d slots: prompts share slots, and only the last "
                                    "primed of each stays cached" % (len(distinct), slots))
            primed = 0
            for prompt in distinct:
                primed += bool((await _one(client, p, prompt, time.perf_counter(), cold=False, max_tokens=1,
                                           stream=False)).get("ok"))
            info["primed"] = primed
        before = await scrape(client)
        sem = asyncio.Semaphore(p["parallel"])
        t0 = time.perf_counter()

        async def guarded(i: int) -> Dict[str, Any]:
            async with sem:
                return await _one(client, p, prompts[i % len(prompts)], t0, cold=cold)

        records = await asyncio.gather(*(guarded(i) for i in range(p["num_requests"])))
        duration = time.perf_counter() - t0
        after = await scrape(client)
    return {"records": list(records), "duration_s": duration, "metrics": metrics_delta(before, after),
            "prompting": info}


def sweep_rows(levels: Sequence[Mapping[str, Any]],
               predicted: Optional[Sequence[Mapping[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One row per concurrency of a sweep: what was measured (aggregate output tok/s over the wall clock, mean TPOT
    per request) beside the plan's prediction at the same concurrency (``predicted``: the plan's
    ``predicted_curve``; None where the curve has no such point)."""
    curve = {int(p["concurrency"]): p for p in predicted or []}
    rows = []
    for level in levels:
        c, s = int(level["parallel"]), level["summary"]
        tpot = (s.get("tpot_ms") or {}).get("mean")
        pred = curve.get(c) or {}
        decode = pred.get("decode_tok_s")
        rows.append({"concurrency": c, "completed": s.get("completed"), "requests": s.get("requests"),
                     "aggregate_tok_s": s.get("output_throughput"), "tpot_ms": tpot,
                     "predicted_aggregate_tok_s": pred.get("aggregate_tok_s"),
                     "predicted_tpot_ms": 1000.0 / decode if decode else None,
                     "predicted_fits": pred.get("fits")})
    return rows


def sweep_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| in flight | completed | aggregate tok/s | planned aggregate | TPOT ms | planned TPOT ms | "
             "measured / planned (aggregate) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        a, pa = r["aggregate_tok_s"], r["predicted_aggregate_tok_s"]
        lines.append("| %d | %s/%s | %s | %s | %s | %s | %s |" % (
            r["concurrency"], r["completed"], r["requests"], _fmt(a), _fmt(pa), _fmt(r["tpot_ms"]),
            _fmt(r["predicted_tpot_ms"]), "%.2f" % (a / pa) if a and pa else "-"))
    return "\n".join(lines) + "\n"


def plot_sweep(rows: Sequence[Mapping[str, Any]], predicted: Optional[Sequence[Mapping[str, Any]]], path: str,
               title: str) -> None:
    """PNG: aggregate tok/s and per-request TPOT against concurrency, measured beside the plan's predicted curve
    (its points up to the highest measured concurrency, and the next one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(r["concurrency"] for r in rows)
    curve = sorted((p for p in predicted or [] if p.get("aggregate_tok_s")), key=lambda p: p["concurrency"])
    beyond = [p for p in curve if p["concurrency"] > top][:1]
    curve = [p for p in curve if p["concurrency"] <= top] + beyond
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    xs = [r["concurrency"] for r in rows if r["aggregate_tok_s"]]
    a.plot(xs, [r["aggregate_tok_s"] for r in rows if r["aggregate_tok_s"]], "o-", label="measured")
    b.plot([r["concurrency"] for r in rows if r["tpot_ms"]], [r["tpot_ms"] for r in rows if r["tpot_ms"]], "o-",
           label="measured")
    if curve:
        a.plot([p["concurrency"] for p in curve], [p["aggregate_tok_s"] for p in curve], "s--", label="planned")
        b.plot([p["concurrency"] for p in curve], [1000.0 / p["decode_tok_s"] for p in curve], "s--",
               label="planned")
    ticks = sorted({r["concurrency"] for r in rows} | {p["concurrency"] for p in curve})
    for ax, label in ((a, "aggregate output tok/s"), (b, "TPOT per request (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("requests in flight")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_load(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Build the prompts, refuse what cannot fit, run the load: ``{records, duration_s, metrics, prompting}``.
    ``params``: the module's options (``url``, ``model``, ``endpoint``, ``num_requests``, ``parallel``,
    ``dataset``, ``dataset_file``, ``prompt_tokens``, ``output_tokens``, ``cache``, ``seed``, ...)."""
    return asyncio.run(_run(params))


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
