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
  - When the server sends llama.cpp's C(timings), its own per-token time is reported beside ours.
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
    description: How many requests are in flight at once.
    type: int
    default: 1
  prompt_tokens:
    description: Length of the random prompts, in words (about one token each). Ignored with O(prompts_file).
    type: int
    default: 64
  prompts_file:
    description: Prompts to use instead of random ones, one per line or JSON lines with C(prompt). Used in turn.
    type: path
  output_tokens:
    description: C(max_tokens) of each request.
    type: int
    default: 64
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
    description: Seed of the random prompts.
    type: int
    default: 0
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
    report_dir: "{{ inventory_dir }}/artifacts/benchmark"
  delegate_to: localhost
  run_once: true
  register: bench

- name: Show the table
  ansible.builtin.debug:
    msg: "{{ bench.markdown }}"
"""

RETURN = r"""
summary:
  description: C(requests), C(completed), C(failed), C(errors) (by kind), C(duration_s), C(request_throughput),
    C(output_throughput) (tokens/s), C(output_tokens), C(prompt_tokens), and C(ttft_ms), C(itl_ms), C(tpot_ms),
    C(e2el_ms), C(server_tpot_ms) each with C(mean), C(p50), C(p90), C(p99).
  returned: success
  type: dict
markdown:
  description: The report as a Markdown table.
  returned: success
  type: str
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
            parallel=dict(type="int", default=1),
            prompt_tokens=dict(type="int", default=64),
            prompts_file=dict(type="path"),
            output_tokens=dict(type="int", default=64),
            ignore_eos=dict(type="bool", default=True),
            stream=dict(type="bool", default=True),
            warmup=dict(type="int", default=1),
            timeout=dict(type="float", default=300.0),
            seed=dict(type="int", default=0),
            label=dict(type="str", default="benchmark"),
            setup=dict(type="dict", default={}),
            report_dir=dict(type="path"),
            report_name=dict(type="str", default="benchmark"),
            min_success_rate=dict(type="float", default=1.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    for key in ("num_requests", "parallel", "output_tokens", "prompt_tokens"):
        if p[key] < 1:
            module.fail_json(msg="%s must be at least 1, got %d" % (key, p[key]))
    if not HAS_HTTPX:
        module.fail_json(msg=missing_required_lib("httpx and httpx-sse"), exception=HTTPX_ERROR)
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, msg="check mode: no load sent")
    try:
        prompts = bm.load_prompts(p["prompts_file"]) if p["prompts_file"] else \
            bm.random_prompts(p["num_requests"], p["prompt_tokens"], p["seed"])
    except (OSError, ValueError) as e:
        module.fail_json(msg="prompts_file: %s" % e)
    run = bm.run_load(p, prompts)
    summary = bm.summarize(run["records"], run["duration_s"])
    setup = dict(label=p["label"], **p["setup"])
    setup.update({"requests": p["num_requests"], "parallel": p["parallel"], "output tokens": p["output_tokens"],
                  "prompt": ("file %s" % os.path.basename(p["prompts_file"])) if p["prompts_file"]
                  else "%d random words" % p["prompt_tokens"], "stream": p["stream"]})
    md = bm.markdown(summary, setup)
    files = []
    if p["report_dir"]:
        os.makedirs(p["report_dir"], exist_ok=True)
        stem = os.path.join(p["report_dir"], p["report_name"])
        with open(stem + ".md", "w", encoding="utf-8") as f:
            f.write(md)
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump({"setup": setup, "summary": summary, "requests": run["records"]}, f, indent=1, sort_keys=True)
        files += [stem + ".md", stem + ".json"]
        try:
            bm.plot(run["records"], stem + ".png", p["label"])
            files.append(stem + ".png")
        except ImportError:
            module.warn("matplotlib is not installed: no PNG plot")
    rate = summary["completed"] / float(summary["requests"])
    result = dict(changed=False, summary=summary, markdown=md, files=files)
    if rate < p["min_success_rate"]:
        module.fail_json(msg="%d of %d requests failed (%s); at least %.0f%% had to succeed"
                             % (summary["failed"], summary["requests"], summary["errors"],
                                100 * p["min_success_rate"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
