# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published measurements the planner is scored on, and the scoring itself.

Every row names its source. The rows were split *before* the constants were fitted: those marked ``held_out`` were
never used to set a constant (perf.py, the backend modules) and show how the model carries over. Gates (checked by
``tests/unit/test_calibration.py``, printed by ``make test``): the held-out median error at most 20 %, every row
within a factor of 1.5, no prediction above its physical limit - and no measurement above it either, since a limit a
real machine beats is not a limit. A row the model cannot reach yet is kept, marked ``unreached`` with the reason,
printed and left out of the gates. ``make calibration-table`` regenerates the README's copy.
"""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Mapping

from ansible_collections.llmlab.cluster.plugins.module_utils import backends
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel

HELD_OUT_MEDIAN = 0.20      # the held-out rows' median |error|
FACTOR = 1.5                # every row: prediction / measurement within [1/1.5, 1.5]
MIN_ROWS = 25
MIN_HELD_OUT_SHARE = 1.0 / 3

# Google Cloud c3d-highcpu-30 VMs of distributed-llama's published run: 30 vCPUs, 59 GB. Their memory bandwidth
# is not published: 70 GB/s is our estimate for the share of a Genoa socket such a VM gets.
_C3D = {"profile": "generic", "accelerator": "cpu", "memory_gb": 59.0, "usable_memory_gb": 57.0, "mem_bw_gbs": 70.0}
_GB10 = {"profile": "gb10"}
_SH = {"profile": "strix_halo"}

# Sources (the field notes carry the older ones with their threads)
_NOTES = "field notes (Published speeds)"
_DLLAMA = "github.com/b4rtaz/distributed-llama README (Llama 2 70B on c3d-highcpu-30)"
_KUBIS = "kubis.ai/blog/dgx_series/benchmarks/gpt-oss-120b-topology-benchmark (vLLM, llama-benchy pp1024 tg128)"
_CONSELARA = "conselara.dev/notes/dgx-spark-benchmarks (vLLM 0.19 TP=2 EP=2, gptq_marlin, 256 tokens)"
_NV = ("site-one-liart-13.vercel.app/en/benchmarks/2026-05-24-dgx-spark-model-throughput (NVIDIA's and LMSYS's "
       "DGX Spark figures, ISL/OSL 2048/128, batch 1)")
_JG = "github.com/geerlingguy/ai-benchmarks/issues/21 (4 Framework Desktop mainboards, dllama Vulkan build, --gpu-index 0)"
_GG = "ggerganov's llama.cpp DGX Spark benchmarks (jetsonhacks.com, build b6767, llama-bench pp2048)"

# metric: "decode" (tok/s of one sequence), "aggregate" (tok/s of all sequences together), "ttft" (seconds).
MEASUREMENTS: List[Dict[str, Any]] = [
    # --- one sequence ----------------------------------------------------------------------------------------
    {"name": "GB10 llama.cpp gpt-oss-120b MXFP4", "nodes": [_GB10], "backend": "llamacpp_rpc",
     "model": "openai/gpt-oss-120b", "quant": "mxfp4", "metric": "decode", "measured": 59.0, "source": _NOTES},
    {"name": "GB10 llama.cpp gpt-oss-20b MXFP4", "nodes": [_GB10], "backend": "llamacpp_rpc",
     "model": "openai/gpt-oss-20b", "quant": "mxfp4", "metric": "decode", "measured": 84.1, "source": _NOTES,
     "held_out": True},
    {"name": "GB10 llama.cpp Qwen2.5-7B Q8_0", "nodes": [_GB10], "backend": "llamacpp_rpc",
     "model": "Qwen/Qwen2.5-7B-Instruct", "quant": "q8_0", "metric": "decode", "measured": 29.3, "source": _NOTES},
    {"name": "GB10 SGLang Llama-3.1-70B FP8 (as vLLM)", "nodes": [_GB10], "backend": "vllm_ray",
     "model": "meta-llama/Llama-3.1-70B-Instruct", "quant": "fp8", "metric": "decode", "measured": 2.7,
     "source": _NOTES + ", LMSYS DGX Spark review"},
    {"name": "GB10 Llama-3.1-8B FP8 (as vLLM)", "nodes": [_GB10], "backend": "vllm_ray",
     "model": "meta-llama/Llama-3.1-8B-Instruct", "quant": "fp8", "prompt_tokens": 2048, "metric": "decode",
     "measured": 20.5, "source": _NV},
    {"name": "GB10 Llama-3.1-8B NVFP4 (as vLLM)", "nodes": [_GB10], "backend": "vllm_ray",
     "model": "meta-llama/Llama-3.1-8B-Instruct", "quant": "nvfp4", "prompt_tokens": 2048, "metric": "decode",
     "measured": 38.65, "source": _NV, "held_out": True},
    {"name": "GB10 vLLM gpt-oss-120b MXFP4", "nodes": [_GB10], "backend": "vllm_ray",
     "model": "openai/gpt-oss-120b", "quant": "mxfp4", "metric": "decode", "measured": 57.5, "source": _KUBIS},
    {"name": "Strix Halo llama.cpp Vulkan gpt-oss-120b MXFP4", "nodes": [_SH], "backend": "llamacpp_rpc",
     "model": "openai/gpt-oss-120b", "quant": "mxfp4", "metric": "decode", "measured": 56.6, "source": _NOTES,
     "held_out": True},
    {"name": "Strix Halo llama.cpp Llama-3.3-70B Q8_0", "nodes": [_SH], "backend": "llamacpp_rpc",
     "model": "meta-llama/Llama-3.3-70B-Instruct", "quant": "q8_0", "metric": "decode", "measured": 2.79,
     "source": _NOTES},
    # Unsloth's Q3_K_XL is smaller than Q3_K_M; the box ran with the GTT raised to nearly all of its 128 GB.
    {"name": "Strix Halo llama.cpp Qwen3-235B-A22B Q3_K_XL (as Q3_K_M)",
     "nodes": [dict(_SH, usable_memory_gb=124.0)], "backend": "llamacpp_rpc", "model": "Qwen/Qwen3-235B-A22B",
     "quant": "q3_k_m", "metric": "decode", "measured": 18.1, "source": _NOTES, "held_out": True},
    {"name": "2xGB10 llama.cpp RPC Qwen3-VL-235B Q4_K_M", "nodes": [_GB10, _GB10], "topology": "direct",
     "backend": "llamacpp_rpc", "model": "Qwen/Qwen3-235B-A22B", "quant": "q4_k_m", "metric": "decode",
     "measured": 13.0, "source": _NOTES, "held_out": True},
    {"name": "2xGB10 vLLM TP=2 gpt-oss-120b MXFP4", "nodes": [_GB10, _GB10], "topology": "direct",
     "backend": "vllm_ray", "tensor_parallel": 2, "model": "openai/gpt-oss-120b", "quant": "mxfp4",
     "metric": "decode", "measured": 69.0, "source": _KUBIS},
    {"name": "2xGB10 vLLM TP=2 Qwen3-235B-A22B GPTQ-Int4", "nodes": [_GB10, _GB10], "topology": "direct",
     "backend": "vllm_ray", "tensor_parallel": 2, "model": "Qwen/Qwen3-235B-A22B", "quant": "gptq",
     "metric": "decode", "measured": 17.0, "source": _CONSELARA},
    {"name": "1 VM distributed-llama Llama-2-70B Q40", "nodes": [_C3D], "backend": "distributed_llama",
     "model": "meta-llama/Llama-2-70b-hf", "quant": "q40", "link": "eth_10g", "metric": "decode",
     "measured": 1000.0 / 910.0, "source": _DLLAMA},
    {"name": "2 VMs distributed-llama Llama-2-70B Q40", "nodes": [_C3D, _C3D], "topology": "switch",
     "backend": "distributed_llama", "model": "meta-llama/Llama-2-70b-hf", "quant": "q40", "link": "eth_10g",
     "tensor_parallel": 2, "metric": "decode", "measured": 1000.0 / 501.0, "source": _DLLAMA, "held_out": True},
    {"name": "4 VMs distributed-llama Llama-2-70B Q40", "nodes": [_C3D] * 4, "topology": "switch",
     "backend": "distributed_llama", "model": "meta-llama/Llama-2-70b-hf", "quant": "q40", "link": "eth_10g",
     "tensor_parallel": 4, "metric": "decode", "measured": 1000.0 / 293.0, "source": _DLLAMA},
    # Reported, not gated (see UNREACHED): one published Strix Halo cluster row of distributed-llama.
    {"name": "4x Strix Halo distributed-llama Llama-3.1-405B Q40", "nodes": [dict(_SH, usable_memory_gb=120.0)] * 4,
     "topology": "switch", "backend": "distributed_llama", "model": "meta-llama/Llama-3.1-405B-Instruct",
     "quant": "q40", "link": "eth_5g", "tensor_parallel": 4, "prompt_tokens": 16, "metric": "decode",
     "measured": 0.45, "source": _JG, "held_out": True,
     "unreached": "over-predicted x2.3. The run used distributed-llama's Vulkan path on the iGPU; our guess is its "
                  "cost per synchronisation (a queue submit and a read-back of the buffers, 252 syncs per token), "
                  "which the planner does not model - one row cannot both set that constant and be held out. The "
                  "link is assumed to be the boards' built-in 5GbE (the thread does not name it): at 10GbE the "
                  "prediction moves 3 %, so the link is not what is missing"},
    # --- under load: aggregate tok/s of every sequence (the gpt-oss-120b sweep: below the list) ----------------------
    {"name": "2xGB10 vLLM TP=2 Qwen3-235B GPTQ, 2 concurrent", "nodes": [_GB10, _GB10], "topology": "direct",
     "backend": "vllm_ray", "tensor_parallel": 2, "model": "Qwen/Qwen3-235B-A22B", "quant": "gptq",
     "concurrency": 2, "metric": "aggregate", "measured": 24.1, "source": _CONSELARA, "held_out": True},
    {"name": "2xGB10 vLLM TP=2 Qwen3-235B GPTQ, 4 concurrent", "nodes": [_GB10, _GB10], "topology": "direct",
     "backend": "vllm_ray", "tensor_parallel": 2, "model": "Qwen/Qwen3-235B-A22B", "quant": "gptq",
     "concurrency": 4, "metric": "aggregate", "measured": 36.4, "source": _CONSELARA},
    # --- time to first token, where the prompt length is given --------------------------------------------------
    {"name": "GB10 llama.cpp gpt-oss-20b, first token of 2048", "nodes": [_GB10], "backend": "llamacpp_rpc",
     "model": "openai/gpt-oss-20b", "quant": "mxfp4", "prompt_tokens": 2048, "metric": "ttft",
     "measured": 2048 / 3610.56, "source": _GG},
]

# kubis.ai's gpt-oss-120b sweep (vLLM, llama-benchy pp1024 tg128): (concurrency, one GB10, two GB10s TP=2, held out)
_GPT_OSS_SWEEP = [(4, 107.9, 155.3, (False, True)), (8, 153.5, 231.0, (False, False)),
                  (16, 218.5, 342.1, (True, True)), (32, 318.7, 471.7, (False, False))]
for _c, _solo, _tp2, (_held_solo, _held_tp2) in _GPT_OSS_SWEEP:
    for _nodes, _measured, _held in (([_GB10], _solo, _held_solo), ([_GB10, _GB10], _tp2, _held_tp2)):
        MEASUREMENTS.append({
            "name": "%sGB10 vLLM%s gpt-oss-120b, %d concurrent" % ("2x" if len(_nodes) > 1 else "",
                                                                 " TP=2" if len(_nodes) > 1 else "", _c),
            "nodes": _nodes, "topology": "direct" if len(_nodes) > 1 else "single", "backend": "vllm_ray",
            "tensor_parallel": len(_nodes), "model": "openai/gpt-oss-120b", "quant": "mxfp4", "concurrency": _c,
            "prompt_tokens": 1024, "metric": "aggregate", "measured": _measured, "source": _KUBIS, "held_out": _held})

# What was looked for and not found in a source we could read (reported in the README, not scored): Strix Halo
# clusters on 5GbE or USB4 (llama.cpp RPC, distributed-llama), and aggregate llama.cpp RPC rows.
NOT_FOUND = ("Strix Halo clusters with the link named (5GbE, USB4) for llama.cpp RPC and distributed-llama, and "
             "aggregate llama.cpp RPC rows: no published tok/s was found in a source we could read. Their costs come "
             "from the protocols (RPC round trips and graph bytes, distributed-llama's bytes per token); the one "
             "Strix Halo cluster row found (distributed-llama, 405B, link not named) is above, not reached")

_PREDICTED = {"decode": "decode_tok_s", "aggregate": "aggregate_tok_s", "ttft": "ttft_s"}
_LIMIT = {"decode": "physical_limit_tok_s", "aggregate": "aggregate_limit_tok_s"}


def predict(case: Mapping[str, Any]) -> Dict[str, Any]:
    """The plan of one measurement's setup (its backend and shape, 4k context)."""
    nodes = [dict(n, name="node%d" % i) for i, n in enumerate(case["nodes"])]
    tp, pp = backends.get(case["backend"]).default_shape(len(nodes))
    return plan_parallel(nodes, topology=case.get("topology", "single"), link=case.get("link"), model=case["model"],
                         quant=case["quant"], backend=case["backend"],
                         tensor_parallel=case.get("tensor_parallel", tp),
                         pipeline_parallel=case.get("pipeline_parallel", pp), context_tokens=4096,
                         prompt_tokens=case.get("prompt_tokens", 128), concurrency=case.get("concurrency", 1),
                         fail_on_no_fit=False)


def score() -> List[Dict[str, Any]]:
    """Predict every measurement: the prediction, its error, its factor and where it stands to its limit."""
    rows = []
    for case in MEASUREMENTS:
        plan = predict(case)
        metric = case["metric"]
        predicted = float(plan["predicted"][_PREDICTED[metric]])
        measured = float(case["measured"])
        limit = plan["predicted"].get(_LIMIT[metric]) if metric in _LIMIT else None
        factor = max(predicted / measured, measured / predicted)
        rows.append({
            "name": case["name"], "source": case["source"], "nodes": len(case["nodes"]), "backend": case["backend"],
            "metric": metric, "concurrency": case.get("concurrency", 1), "measured": measured,
            "predicted": predicted, "limit": None if limit is None else float(limit),
            "error": predicted / measured - 1.0, "factor": factor, "within_factor": factor <= FACTOR,
            "prediction_within_limit": limit is None or predicted <= float(limit),
            "measurement_within_limit": limit is None or measured <= float(limit),
            "held_out": bool(case.get("held_out")), "unreached": case.get("unreached"),
        })
    return rows


def summary(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The gates' figures: median |error| of the fitted and held-out rows, the worst factor, what breaks a gate."""
    gated = [r for r in rows if not r["unreached"]]
    fitted = [abs(r["error"]) for r in gated if not r["held_out"]]
    held = [abs(r["error"]) for r in gated if r["held_out"]]
    return {
        "rows": len(rows), "held_out": len(held), "fitted": len(fitted),
        "unreached": [(r["name"], r["factor"], r["unreached"]) for r in rows if r["unreached"]],
        "fitted_median_error": statistics.median(fitted) if fitted else None,
        "held_out_median_error": statistics.median(held) if held else None,
        "worst_factor": max(r["factor"] for r in gated),
        "outside_factor": [r["name"] for r in gated if not r["within_factor"]],
        "predictions_above_limit": [r["name"] for r in rows if not r["prediction_within_limit"]],
        "measurements_above_limit": [r["name"] for r in rows if not r["measurement_within_limit"]],
    }


def _num(metric: str, value: float) -> str:
    return ("%.2f s" % value) if metric == "ttft" else ("%.1f" % value if value >= 10 else "%.2f" % value)


def markdown_table(rows: List[Dict[str, Any]]) -> str:
    s = summary(rows)
    lines = ["| measurement | nodes | backend | what | measured | predicted | error | limit | split | source |",
             "|---|---:|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        what = {"decode": "tok/s, 1 seq", "aggregate": "tok/s, %d seqs" % r["concurrency"],
                "ttft": "first token"}[r["metric"]]
        lines.append("| %s | %d | %s | %s | %s | %s | %+.0f %% | %s | %s | %s |" % (
            r["name"], r["nodes"], r["backend"], what, _num(r["metric"], r["measured"]),
            _num(r["metric"], r["predicted"]), 100 * r["error"],
            "-" if r["limit"] is None else _num(r["metric"], r["limit"]),
            "not reached (below)" if r["unreached"] else "held out" if r["held_out"] else "fitted", r["source"]))
    lines.append("")
    lines.append("%d rows scored, %d held out: median error %.1f %% held out, %.1f %% fitted; worst factor %.2f "
                 "(gates: held-out median <= %d %%, every row within x%.1f, nothing above its limit)"
                 % (s["fitted"] + s["held_out"], s["held_out"], 100 * s["held_out_median_error"],
                    100 * s["fitted_median_error"], s["worst_factor"], int(100 * HELD_OUT_MEDIAN), FACTOR))
    for name, factor, why in s["unreached"]:
        lines.append("")
        lines.append("Not reached, reported and not gated: %s (factor %.2f) - %s." % (name, factor, why))
    return "\n".join(lines)
