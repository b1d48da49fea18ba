# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backend-neutral part of the performance model: what one decode step reads, what a link costs, rounding.

Every backend module (``backends/``) builds its memory and speed estimates from these pieces; nothing here knows
any backend. docs/planner.md describes the model as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import Model, param_bytes

MOE_EFFICIENCY = 0.70            # expert routing, gathers and small GEMMs: MoE reads less well than dense
MOE_HOT_FRACTION = 0.15          # share of a layer's experts a batch's tokens draw from (fitted, calibration.py)


@dataclass
class Request:
    """What the user asks of the cluster: the model, its quantization, the link and the load to size for."""
    model: Model
    quant: str
    link: Dict[str, float]
    context_tokens: int
    prompt_tokens: int
    concurrency: int


def gb(x: float) -> float:
    """Bytes as GB, rounded up to 0.01 GB: the reported need is never below the real one."""
    return math.ceil(x / 1e7) / 100.0


def sig(x: float, digits: int = 4, up: bool = False) -> float:
    """Round to ``digits`` significant digits, down (predictions) or up (limits), so a rounded prediction never
    passes its rounded limit."""
    if x <= 0:
        return 0.0
    scale = 10.0 ** (digits - 1 - int(math.floor(math.log10(x))))
    return (math.ceil(x * scale) if up else math.floor(x * scale)) / scale


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def proportional_split(total: int, weights: Sequence[float]) -> List[int]:
    """Split ``total`` integer units in proportion to ``weights`` (largest remainder), every share >= 1."""
    if total < len(weights):
        raise ValueError("cannot give %d nodes at least one of %d layers" % (len(weights), total))
    s = float(sum(weights))
    raw = [total * w / s for w in weights]
    out = [max(1, int(math.floor(r))) for r in raw]
    while sum(out) > total:  # the floor of 1 over-allocated: take from the share furthest above its ideal
        j = max((k for k in range(len(out)) if out[k] > 1), key=lambda k: out[k] - raw[k])
        out[j] -= 1
    order = sorted(range(len(weights)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in range(total - sum(out)):
        out[order[i % len(order)]] += 1
    return out


def distinct_experts(experts: int, active: int, batch: int, hot_fraction: float = 1.0) -> float:
    """Expected number of distinct experts of one layer that ``batch`` tokens touch, each choosing ``active`` of
    ``experts``. Routing is skewed (tokens of a batch favour the same experts), modelled as uniform choice within a
    hot set of ``hot_fraction`` of the experts (never fewer than ``active``). One token touches exactly ``active``."""
    hot = max(float(active), hot_fraction * experts)
    return hot * (1.0 - (1.0 - active / hot) ** batch)


def decode_step(model: Model, quant: str, batch: int, kv_tokens: int, kv_bytes: float) -> Dict[str, float]:
    """What one decode step for ``batch`` concurrent sequences reads and computes.

    ``weights``: the weights read once for the whole batch (MoE: the shared part plus the expected distinct experts
    the batch touches); ``kv``: every sequence's KV cache of ``kv_tokens``; ``flops``: 2 x active parameters per
    token plus attention over the cache; ``min_total``: the fewest bytes the step can read at all (MoE: every
    sequence choosing the same experts) - what the physical limit is computed from; ``experts``: the distinct experts
    per layer the batch is expected to touch (0 for a dense model)."""
    if model.is_moe:
        e, k = model.experts, model.experts_active
        per_expert = (model.params_total_b - model.params_active_b) / (e - k)
        shared = model.params_active_b - k * per_expert
        touched = distinct_experts(e, k, batch, MOE_HOT_FRACTION)
        weights = param_bytes(model, quant, shared + touched * per_expert)
        least = param_bytes(model, quant, model.params_active_b)
    else:
        touched = 0.0
        weights = least = param_bytes(model, quant, model.params_active_b)
    kv = float(model.kv_elements_per_token) * kv_bytes * kv_tokens * batch
    attention = 4.0 * model.layers * model.heads * model.head_dim * kv_tokens
    flops = (2.0 * model.params_active_b * 1e9 + attention) * batch
    return {"weights": weights, "kv": kv, "total": weights + kv, "min_total": least + kv, "flops": flops,
            "experts": touched}


def link_bytes_per_s(link: Mapping[str, float]) -> float:
    return link["gbps"] * 1e9 / 8.0


def allreduce_s(tp: int, layers: int, size_bytes: float, link: Mapping[str, float], fixed_us: float) -> float:
    """Two ring all-reduces per layer over ``tp`` ranks: latency per ring step + size / bandwidth + a fixed cost."""
    if tp <= 1:
        return 0.0
    step = link["latency_us"] * 1e-6 + size_bytes / tp / link_bytes_per_s(link)
    per = 2 * (tp - 1) * step + fixed_us * 1e-6
    return 2 * layers * per


def hop_s(size_bytes: float, link: Mapping[str, float], round_trips: float, fixed_us: float) -> float:
    """One hand-over between nodes: round trips x 2 x latency + size / bandwidth + a fixed cost."""
    return round_trips * 2 * link["latency_us"] * 1e-6 + size_bytes / link_bytes_per_s(link) + fixed_us * 1e-6
