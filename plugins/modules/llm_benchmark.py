#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: llm_benchmark
short_description: A streaming load against an OpenAI-compatible endpoint - TTFT, ITL, TPOT, E2EL, tokens/s
version_added: "0.2.0"
description:
  - Sends O(num_requests) chat or completion requests, O(parallel) at a time, to any OpenAI-compatible server
    (llama-server, vLLM, distributed-llama's API) and measures each one as it streams (Server-Sent Events).
  - "TTFT is counted to the first non-empty content delta; ITL is the gap between content deltas; TPOT is
    (E2EL - TTFT) / (output tokens - 1); E2EL is the whole request. Each is reported as mean, p50, p90 and p99, with
    requests/s, output tokens/s and the errors by kind."
  - "TTFT is also reported to the first streamed chunk of any kind (C(ttft_first_chunk_ms)): that is what evalscope
    and some other tools call TTFT. A server that sends an empty role chunk before the prefill makes the first chunk
    come long before the first token (the lab's llama-server sends it with the first token)."
  - Prompt and output tokens are the server's (C(usage), asked for with C(stream_options.include_usage)); prompts are
    sized with the server's C(/tokenize), and a request that does not fit the served context is refused before any
    load is sent.
  - The server's own time per output token (llama-server's C(timings), else vLLM's C(/metrics) histograms over the
    load) and the prompt tokens it served from its cache are reported beside ours.
  - Writes a Markdown table and a PNG latency plot when O(report_dir) is given. A measurement changes nothing, so
    the task reports C(changed=false); in check mode no load is sent.
  - Runs where the client should be, usually the controller (C(delegate_to=localhost)). Needs C(httpx) and
    C(httpx-sse) there, and C(matplotlib) for the plot.
author:
  - llmlab.cluster contributors
requirements:
  - httpx
  - httpx-sse
  - matplotlib (for the PNG)
attributes:
  check_mode:
    support: full
    description: No request is sent in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  url:
    description: Base URL of the server, without C(/v1), for example C(http://10.213.0.1:8080).
    type: str
    required: true
  api_key:
    description: Sent as C(Authorization Bearer). Comes from a Vault variable.
    type: str
  model:
    description:
      - The C(model) field of each request - the served model name (the benchmark role sends the plan's
        C(api.served_model_name)). vLLM refuses a name it does not serve; llama-server accepts any.
    type: str
    default: default
  endpoint:
    description: C(chat) for C(/v1/chat/completions), C(completions) for C(/v1/completions).
    type: str
    choices: [chat, completions]
    default: chat
  num_requests:
    description: How many requests to send.
    type: int
    default: 16
  parallel:
    description:
      - How many requests are in flight at once.
      - "A list (C([1, 2, 4, 8])) runs a sweep - one load per value, each of O(num_requests) requests but at least as
        many as in flight, with fresh prompts - and writes a sweep table and C(<name>.sweep.png): aggregate output
        tok/s and per-request TPOT against concurrency, beside O(predicted). Each level's own report is
        C(<name>-c<N>.*)."
    type: list
    elements: int
    default: [1]
  predicted:
    description:
      - "The planner's curve for the plan's backend and nodes (C(llmlab_plan.plan.predicted_curve)) - items with
        C(concurrency), C(aggregate_tok_s), C(decode_tok_s) - drawn and tabled beside a sweep."
    type: list
    elements: dict
    default: []
  dataset:
    description:
      - Where the prompts come from. C(random) makes O(num_requests) prompts of random words, each sized to
        O(prompt_tokens) tokens by the server's own tokenizer (C(/tokenize)). C(long) does the same with prompts that
        fill the served context less O(output_tokens) and a 2% margin (long-context prefill). C(file) reads
        O(dataset_file).
      - The default is C(file) when O(dataset_file) is set, else C(random).
    type: str
    choices: [random, long, file]
  dataset_file:
    description:
      - A local dataset, used in turn. A JSON array of ShareGPT conversations (C(conversations) with C(from)
        C(human)/C(gpt) and C(value)) or of objects with OpenAI C(messages) or a C(prompt); the same objects as JSON
        lines; or plain text, one prompt per line.
      - The first user turn is the prompt. The expected output length is an entry's C(output_tokens) or C(max_tokens),
        else the length of the reply that follows the prompt (counted by the server's tokenizer), else O(output_tokens).
    type: path
    aliases: [prompts_file]
  prompt_tokens:
    description:
      - Length of each random prompt in tokens, as the server counts them (chat template included), made with the
        server's C(/tokenize); a server without one (distributed-llama) gets as many words as two probe requests'
        C(usage) say make this many tokens. Used by O(dataset=random), and for the warm-up prompt.
    type: int
    default: 64
  output_tokens:
    description: C(max_tokens) of each request (a dataset entry may give its own).
    type: int
    default: 64
  context_tokens:
    description:
      - The longest request (prompt + output) the cluster serves, when the caller knows it (the benchmark role passes
        the plan's). What the server reports (llama-server's per-slot C(n_ctx), vLLM's C(max_model_len)) is used when
        smaller. A request that does not fit is refused before any request is sent.
    type: int
  cache:
    description:
      - C(cold) (the default) measures prefills the server has not seen - fresh prompts (see O(seed)), C(cache_prompt
        false) for llama-server and a fresh C(cache_salt) per request for vLLM; the warm-up request has a prompt of its
        own.
      - C(warm) sends every measured prompt once (one output token, not measured) before the load, with the cache on,
        so each measured prefill can come from the server's prompt cache.
      - Either way the report gives the prompt tokens the server says it served from its cache.
    type: str
    choices: [cold, warm]
    default: cold
  ignore_eos:
    description: Ask the server to generate exactly O(output_tokens) (llama-server and vLLM honour C(ignore_eos)).
    type: bool
    default: true
  stream:
    description: Stream the answer (needed for TTFT and ITL).
    type: bool
    default: true
  warmup:
    description: Requests sent, one at a time, before the measured ones and not counted.
    type: int
    default: 1
  timeout:
    description: Seconds a request may take.
    type: float
    default: 300
  seed:
    description:
      - Seed of the random prompts. Unset, each run draws a fresh one and records it in the report's C(setup), so a
        run can be repeated exactly with that seed (with O(cache=cold) a repeat is still cold on the server).
    type: int
  label:
    description: Title of the report.
    type: str
    default: benchmark
  setup:
    description: Facts about the setup shown in the report (nodes, backend, model, ...).
    type: dict
    default: {}
  report_dir:
    description: Where to write C(<name>.md), C(<name>.json) and C(<name>.png). Nothing is written when unset.
    type: path
  report_name:
    description: File name stem of the report.
    type: str
    default: benchmark
  min_success_rate:
    description: Fail when fewer than this fraction of the requests succeed.
    type: float
    default: 1.0
"""

EXAMPLES = r"""
- name: Measure the cluster from the controller
  llmlab.cluster.llm_benchmark:
    url: "{{ llmlab_plan.plan.api.url }}"
    api_key: "{{ llmlab_api_key }}"
    model: "{{ llmlab_plan.plan.api.served_model_name }}"
    num_requests: 16
    parallel: 2
    prompt_tokens: 64
    output_tokens: 64
    context_tokens: "{{ llmlab_plan.plan.context_tokens }}"
    report_dir: "{{ inventory_dir }}/artifacts/benchmark"
  delegate_to: localhost
  run_once: true
  register: bench

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ bench.markdown }}"

- name: Conversations from a ShareGPT file, with the cache warm
  llmlab.cluster.llm_benchmark:
    url: http://10.213.0.1:8080
    dataset_file: files/sharegpt-sample.json
    cache: warm
  delegate_to: localhost
"""

RETURN = r"""
summary:
  description: C(requests), C(completed), C(failed), C(errors) (by kind), C(duration_s), C(request_throughput),
    C(output_throughput) (tokens/s), C(output_tokens), C(prompt_tokens), C(tokens_counted_by), and
    C(input_tokens_per_request), C(output_tokens_per_request), C(ttft_ms), C(ttft_first_chunk_ms), C(itl_ms),
    C(tpot_ms), C(e2el_ms), C(server_tpot_ms) each with C(mean), C(p50), C(p90), C(p99); C(server_tpot_source);
    C(cache) (C(cached_prompt_tokens), C(hit_rate), C(source)); C(server_metrics) (what the server's counters grew
    by during the load).
  returned: success
  type: dict
prompting:
  description: How the prompts were made - C(mode), C(seed), C(sized_by), C(served_context) and where it came from,
    C(prompt_tokens_target), C(prompt_tokens_sized) (min, max), and for a file its name and entries.
  returned: success
  type: dict
sweep:
  description: "For a list of O(parallel) - C(levels) (each C(parallel) and its C(summary)) and C(rows) (measured
    beside planned per concurrency); the first level's summary is also C(summary)."
  returned: when O(parallel) has more than one value
  type: dict
markdown:
  description: The report as a Markdown table.
  returned: success
  type: str
seed:
  description: The seed of the random prompts (drawn for this run unless given).
  returned: success
  type: int
files:
  description: The report files written.
  returned: when report_dir is set
  type: list
  elements: str
"""

import json
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.llmlab.cluster.plugins.module_utils import benchmark as bm

try:
    import httpx  # noqa: F401
    import httpx_sse  # noqa: F401
    HAS_HTTPX, HTTPX_ERROR = True, None
except ImportError:
    HAS_HTTPX, HTTPX_ERROR = False, traceback.format_exc()


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            api_key=dict(type="str", no_log=True),
            model=dict(type="str", default="default"),
            endpoint=dict(type="str", default="chat", choices=["chat", "completions"]),
            num_requests=dict(type="int", default=16),
            parallel=dict(type="list", elements="int", default=[1]),
            predicted=dict(type="list", elements="dict", default=[]),
            dataset=dict(type="str", choices=["random", "long", "file"]),
            dataset_file=dict(type="path", aliases=["prompts_file"]),
            prompt_tokens=dict(type="int", default=64),
            output_tokens=dict(type="int", default=64),
            context_tokens=dict(type="int"),
            cache=dict(type="str", default="cold", choices=["cold", "warm"]),
            ignore_eos=dict(type="bool", default=True),
            stream=dict(type="bool", default=True),
            warmup=dict(type="int", default=1),
            timeout=dict(type="float", default=300.0),
            seed=dict(type="int"),
            label=dict(type="str", default="benchmark"),
            setup=dict(type="dict", default={}),
            report_dir=dict(type="path"),
            report_name=dict(type="str", default="benchmark"),
            min_success_rate=dict(type="float", default=1.0),
        ),
        required_if=[("dataset", "file", ["dataset_file"])],
        supports_check_mode=True,
    )
    p = dict(module.params)
    levels = sorted(set(p["parallel"] or [1]))
    for key in ("num_requests", "output_tokens", "prompt_tokens"):
        if p[key] < 1:
            module.fail_json(msg="%s must be at least 1, got %d" % (key, p[key]))
    if min(levels) < 1:
        module.fail_json(msg="parallel must be at least 1, got %s" % levels)
    p["dataset"] = p["dataset"] or ("file" if p["dataset_file"] else "random")
    if p["dataset_file"] and p["dataset"] != "file":
        module.fail_json(msg="dataset_file is only read with dataset=file (dataset is %s)" % p["dataset"])
    if p["seed"] is None:
        p["seed"] = bm.draw_seed()
    if not HAS_HTTPX:
        module.fail_json(msg=missing_required_lib("httpx and httpx-sse"), exception=HTTPX_ERROR)
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no load sent")
    sweep = len(levels) > 1
    results, files = [], []
    for i, level in enumerate(levels):
        # a sweep: every level its own fresh prompts (seed + i) and at least as many requests as in flight
        lp = dict(p, parallel=level, seed=p["seed"] + i,
                  num_requests=max(p["num_requests"], level) if sweep else p["num_requests"],
                  report_name="%s-c%d" % (p["report_name"], level) if sweep else p["report_name"])
        results.append(_one_level(module, lp, files))
    first = results[0]
    result = dict(changed=False, summary=first["summary"], markdown=first["markdown"], files=files,
                  prompting=first["prompting"], seed=p["seed"])
    if sweep:
        measured = [{"parallel": r["parallel"], "summary": r["summary"]} for r in results]
        rows = bm.sweep_rows(measured, p["predicted"])
        md = "# %s: sweep over %s requests in flight\n\n%s" % (p["label"], ", ".join(map(str, levels)),
                                                               bm.sweep_markdown(rows))
        md += "".join("\n" + r["markdown"] for r in results)
        result.update(markdown=md, sweep={"levels": measured, "rows": rows})
        if p["report_dir"]:
            stem = os.path.join(p["report_dir"], p["report_name"] + ".sweep")
            with open(stem + ".md", "w", encoding="utf-8") as f:
                f.write(md)
            with open(stem + ".json", "w", encoding="utf-8") as f:
                json.dump({"setup": dict(label=p["label"], **p["setup"]), "rows": rows, "predicted": p["predicted"],
                           "levels": measured}, f, indent=1, sort_keys=True)
            files += [stem + ".md", stem + ".json"]
            try:
                bm.plot_sweep(rows, p["predicted"], stem + ".png", "%s: sweep" % p["label"])
                files.append(stem + ".png")
            except ImportError:
                module.warn("matplotlib is not installed: no PNG plot")
    failed = [r for r in results if r["rate"] < p["min_success_rate"]]
    if failed:
        s = failed[0]["summary"]
        module.fail_json(msg="%d of %d requests failed at %d in flight (%s); at least %.0f%% had to succeed"
                             % (s["failed"], s["requests"], failed[0]["parallel"], s["errors"],
                                100 * p["min_success_rate"]), **result)
    module.exit_json(**result)


def _one_level(module: AnsibleModule, p: dict, files: list) -> dict:
    """One load at ``p["parallel"]`` in flight: its summary and report files (appended to ``files``)."""
    try:
        run = bm.run_load(p)
    except bm.Refused as e:
        module.fail_json(msg="refused before any load was sent: %s" % e, refused=True)
    except (OSError, ValueError) as e:
        module.fail_json(msg="dataset_file: %s" % e)
    info = run["prompting"]
    summary = bm.summarize(run["records"], run["duration_s"], run["metrics"])
    setup = dict(label=p["label"], **p["setup"])
    if p["dataset"] == "file":
        prompt = "%s (%d entries)" % (info["file"], info["entries"])
    else:
        prompt = "%s, %d tokens (sized by %s)" % ("long context" if p["dataset"] == "long" else "random words",
                                                 info["prompt_tokens_target"], info["sized_by"])
    setup.update({"requests": p["num_requests"], "parallel": p["parallel"],
                  "output tokens": p["output_tokens"] if p["dataset"] != "file"
                  else "each entry's (its reply's length, else %d)" % p["output_tokens"],
                  "prompt": prompt, "served context": info["served_context"] or "unknown", "cache": p["cache"],
                  "seed": p["seed"], "stream": p["stream"]})
    md = bm.markdown(summary, setup)
    if p["report_dir"]:
        os.makedirs(p["report_dir"], exist_ok=True)
        stem = os.path.join(p["report_dir"], p["report_name"])
        with open(stem + ".md", "w", encoding="utf-8") as f:
            f.write(md)
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump({"setup": setup, "summary": summary, "prompting": info, "requests": run["records"]}, f,
                      indent=1, sort_keys=True)
        files += [stem + ".md", stem + ".json"]
        try:
            bm.plot(run["records"], stem + ".png", "%s, %d in flight" % (p["label"], p["parallel"]))
            files.append(stem + ".png")
        except ImportError:
            module.warn("matplotlib is not installed: no PNG plot")
    return {"parallel": p["parallel"], "summary": summary, "markdown": md, "prompting": info,
            "rate": summary["completed"] / float(summary["requests"])}


if __name__ == "__main__":
    main()
