# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sizing: the smallest clusters that hold a model and serve it fast enough, before anything is bought.

For every hardware profile (GB10, Strix Halo, the datasheet GPUs) and every node count up to a maximum, the planner
plans the model as it would for a real inventory (every backend, planning ahead) with the asked concurrency; the
smallest count per profile whose best plan fits and gives every user the target tok/s is the answer for that
profile. Answers are listed cheapest first when prices are given, else by node count and speed; profiles that never
get there are listed after, with the best they reach and why.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import normalize_quant, resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.constants import DEFAULT_PROMPT
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from ansible_collections.llmlab.cluster.plugins.module_utils.profiles import GPU_PROFILES, PROFILES

SIZED_PROFILES = ("gb10", "strix_halo") + GPU_PROFILES
MAX_NODES = 8


def topology_for(profile: str, count: int) -> str:
    """How ``count`` nodes of a profile are wired: one alone, two by a cable, three boxes with two ports in a
    ring, more on a switch (cards of one box: PCIe, planned as a switch)."""
    if count == 1:
        return "single"
    if count == 2:
        return "direct"
    if count == 3 and len(PROFILES[profile]["ports"]) >= 2:
        return "ring"
    return "switch"


def _option(profile: str, count: int, plan: Mapping[str, Any], target: float, price: Optional[float]) -> Dict[str, Any]:
    p = plan["predicted"]
    per_user = p["decode_tok_s"] or 0.0
    return {
        "profile": profile, "nodes": count, "topology": topology_for(profile, count),
        "backend": plan["backend"], "tensor_parallel": plan["tensor_parallel"],
        "pipeline_parallel": plan["pipeline_parallel"], "nodes_used": len(plan["nodes_used"]),
        "fits": bool(plan["fits"]), "memory_per_node_gb": max(plan["memory_per_node_gb"].values() or [0.0]),
        "usable_memory_gb": min(plan["usable_memory_gb"].values() or [0.0]),
        "tok_s_per_user": per_user, "aggregate_tok_s": p["aggregate_tok_s"], "ttft_s": p["ttft_s"],
        "meets": bool(plan["fits"]) and per_user >= target,
        "price": None if price is None else price * count,
        "reasons": list(plan["reasons"]),
    }


def size(model: Any, quant: str, context_tokens: int, users: int, tok_s_per_user: float,
         profiles: Optional[Sequence[str]] = None, max_nodes: int = MAX_NODES,
         prices: Optional[Mapping[str, float]] = None, prompt_tokens: Optional[int] = None) -> Dict[str, Any]:
    """The smallest cluster of every profile that fits ``model`` in ``quant`` with ``context_tokens`` of context for
    each of ``users`` concurrent sequences and gives each ``tok_s_per_user``.

    Returns ``{request, answers: [option], short: [option]}``: ``answers`` are the profiles that get there (the
    smallest count each; cheapest first when ``prices`` gives a price per node of a profile, else fewest nodes, then
    fastest), ``short`` the ones that do not within ``max_nodes`` (their best try: the fastest fitting plan, or the
    largest one when none fits). Each option carries its plan's reasons."""
    m = resolve_model(model)
    q = normalize_quant(quant)
    names = list(profiles or SIZED_PROFILES)
    unknown = [p for p in names if p not in PROFILES]
    if unknown:
        raise PlanError("unknown profile(s) %s" % ", ".join(unknown), variable="profiles",
                        fix="use some of: %s" % ", ".join(SIZED_PROFILES))
    for key, value in (("users", users), ("context_tokens", context_tokens), ("max_nodes", max_nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanError("%s must be a positive integer, got %r" % (key, value), variable=key,
                            fix="give a whole number of at least 1")
    if tok_s_per_user <= 0:
        raise PlanError("the target must be above 0 tok/s", variable="tok_s_per_user", fix="give e.g. 20")
    prompt = min(prompt_tokens or DEFAULT_PROMPT, context_tokens)
    answers: List[Dict[str, Any]] = []
    short: List[Dict[str, Any]] = []
    for profile in names:
        price = (prices or {}).get(profile)
        tries: List[Dict[str, Any]] = []
        for count in range(1, max_nodes + 1):
            nodes = [{"name": "%s-%d" % (profile, i + 1), "profile": profile} for i in range(count)]
            try:
                plan = plan_parallel(nodes, topology=topology_for(profile, count), model=m, quant=q,
                                     context_tokens=context_tokens, prompt_tokens=prompt, concurrency=users,
                                     fail_on_no_fit=False)
            except PlanError as exc:          # nothing can run this quantization on this profile at this count
                tries.append({"profile": profile, "nodes": count, "meets": False, "fits": False,
                              "tok_s_per_user": 0.0, "reasons": [str(exc)], "price": None})
                continue
            option = _option(profile, count, plan, tok_s_per_user, price)
            tries.append(option)
            if option["meets"]:
                answers.append(option)
                break
        else:
            fitting = [t for t in tries if t["fits"]]
            best = max(fitting, key=lambda t: float(t["tok_s_per_user"])) if fitting else tries[-1]
            short.append(best)
    if prices:
        answers.sort(key=lambda o: (o["price"] is None, o["price"] or 0.0, -o["tok_s_per_user"]))
    else:
        answers.sort(key=lambda o: (o["nodes"], -o["tok_s_per_user"]))
    return {"request": {"model": m.id, "quant": q, "context_tokens": context_tokens, "users": users,
                        "tok_s_per_user": tok_s_per_user, "max_nodes": max_nodes, "prompt_tokens": prompt},
            "answers": answers, "short": short}


def markdown(result: Mapping[str, Any]) -> str:
    """The answers as a table, then the profiles that fall short, then the first answer's plan in words."""
    r = result["request"]
    lines = ["%s in %s, %d tokens of context, %d concurrent user(s), at least %.0f tok/s each:"
             % (r["model"], r["quant"], r["context_tokens"], r["users"], r["tok_s_per_user"]), "",
             "| profile | nodes | backend | TP x PP | GB per node (usable) | tok/s per user | aggregate | "
             "first token | price |",
             "|---|---:|---|---|---:|---:|---:|---:|---:|"]
    for o in result["answers"]:
        lines.append("| %s | %d | %s | %d x %d | %.1f (%.1f) | %.1f | %.1f | %.2f s | %s |" % (
            o["profile"], o["nodes"], o["backend"], o["tensor_parallel"], o["pipeline_parallel"],
            o["memory_per_node_gb"], o["usable_memory_gb"], o["tok_s_per_user"], o["aggregate_tok_s"], o["ttft_s"],
            "-" if o["price"] is None else "%.0f" % o["price"]))
    if not result["answers"]:
        lines.append("| (none within %d nodes) | | | | | | | | |" % r["max_nodes"])
    if result["short"]:
        lines += ["", "Not within %d nodes:" % r["max_nodes"]]
        for o in result["short"]:
            if o["fits"]:
                why = "at best %.1f tok/s per user (%d nodes, %s)" % (o["tok_s_per_user"], o["nodes"], o["backend"])
            else:
                why = next((x for x in o["reasons"] if x.startswith("does not fit")), o["reasons"][0])
            lines.append("- %s: %s" % (o["profile"], why))
    if result["answers"]:
        first = result["answers"][0]
        lines += ["", "Plan of the first answer (%d x %s):" % (first["nodes"], first["profile"])]
        lines += ["- " + x for x in first["reasons"]]
    return "\n".join(lines)
