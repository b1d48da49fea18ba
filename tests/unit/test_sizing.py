"""Sizing before buying (plugins/module_utils/sizing.py, make size): the two questions of the README pinned, the
ordering rules, and the refusals."""

from __future__ import annotations

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import sizing
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.planner import plan_parallel
from tools import size as size_cli


def by_profile(result):
    return {o["profile"]: o for o in result["answers"]}


def test_a_9b_model_fits_one_card_of_every_kind_and_the_fast_ones_come_first() -> None:
    r = sizing.size("google/gemma-2-9b-it", "q4_k_m", 8192, 1, 30.0)
    got = by_profile(r)
    assert set(got) == set(sizing.SIZED_PROFILES) and not r["short"]
    assert all(o["nodes"] == 1 and o["fits"] and o["tok_s_per_user"] >= 30 for o in got.values())
    # one node each: ordered by speed, the HBM cards first, the unified-memory boxes last
    speeds = [o["tok_s_per_user"] for o in r["answers"]]
    assert speeds == sorted(speeds, reverse=True)
    assert r["answers"][0]["profile"] == "h100" and {o["profile"] for o in r["answers"][-2:]} == {"gb10", "strix_halo"}


def test_a_9b_model_in_bf16_at_a_long_context_needs_more_than_a_24gb_card() -> None:
    r = sizing.size("google/gemma-2-9b-it", "bf16", 65536, 1, 10.0, profiles=["rtx4090", "rtx6000_ada"])
    got = by_profile(r)
    assert got["rtx6000_ada"]["nodes"] == 1
    assert got["rtx4090"]["nodes"] >= 2          # 18.5 GB of weights and 25.8 GB of KV cache


def test_sparks_for_qwen3_235b_at_20_tok_s_for_8_users() -> None:
    """The answer is "not with Sparks": 8 users at 20 tok/s each is 160 tok/s of a 22B-active MoE, and the best a
    GB10 cluster reaches is about 15 per user (published: 36 tok/s aggregate at 4 users on two)."""
    r = sizing.size("Qwen/Qwen3-235B-A22B", "awq", 8192, 8, 20.0, profiles=["gb10"])
    assert not r["answers"]
    best = r["short"][0]
    assert best["profile"] == "gb10" and best["fits"] and 10.0 < best["tok_s_per_user"] < 20.0
    # at 10 tok/s per user two Sparks do it, with vLLM tensor parallel
    r = sizing.size("Qwen/Qwen3-235B-A22B", "awq", 8192, 8, 10.0, profiles=["gb10"])
    first = r["answers"][0]
    assert (first["nodes"], first["backend"], first["tensor_parallel"]) == (2, "vllm_ray", 2)


def test_prices_order_the_answers_cheapest_first() -> None:
    prices = {"h100": 30000.0, "a100_80gb": 15000.0, "rtx6000_ada": 7000.0, "rtx4090": 1800.0}
    r = sizing.size("Qwen/Qwen3-235B-A22B", "awq", 8192, 8, 20.0, prices=prices, profiles=sorted(prices))
    totals = [o["price"] for o in r["answers"]]
    assert totals == sorted(totals) and all(t is not None for t in totals)
    assert all(o["price"] == prices[o["profile"]] * o["nodes"] for o in r["answers"])
    assert [o["profile"] for o in r["answers"]][0] == "rtx4090"  # 8 cards at 1800 beat 2 H100s


@pytest.mark.parametrize("kwargs, variable", [
    (dict(profiles=["tpu"]), "profiles"),
    (dict(users=0), "users"),
    (dict(context_tokens=-1), "context_tokens"),
    (dict(tok_s_per_user=0.0), "tok_s_per_user"),
])
def test_bad_questions_name_what_to_fix(kwargs, variable) -> None:
    ask = dict(model="gemma-2-9b", quant="q4_k_m", context_tokens=4096, users=1, tok_s_per_user=10.0)
    ask.update(kwargs)
    with pytest.raises(PlanError) as err:
        sizing.size(**ask)
    assert err.value.variable == variable


def test_llama_405b_awq_plans_on_two_sparks_at_2k_and_says_the_margin() -> None:
    plan = plan_parallel([{"name": "spark-a", "profile": "gb10"}, {"name": "spark-b", "profile": "gb10"}], "direct",
                         model="meta-llama/Llama-3.1-405B-Instruct", quant="awq", context_tokens=2048)
    assert (plan["backend"], plan["tensor_parallel"], plan["fits"]) == ("vllm_ray", 2, True)
    margin = next(r for r in plan["reasons"] if r.startswith("margin:"))
    assert "after weights 108.6 GB" in margin and "KV cache 0.53 GB" in margin and "runtime 3.0 GB" in margin
    # at 32k the KV cache no longer fits next to the weights
    big = plan_parallel([{"name": "spark-a", "profile": "gb10"}, {"name": "spark-b", "profile": "gb10"}], "direct",
                        model="meta-llama/Llama-3.1-405B-Instruct", quant="awq", context_tokens=32768,
                        fail_on_no_fit=False)
    assert not big["fits"]


def test_the_cli_answers_both_questions(capsys) -> None:
    assert size_cli.main([]) == 0
    out = capsys.readouterr().out
    assert "Is a 9B model enough on my GPU?" in out and "How many Sparks" in out and "| h100 | 1 |" in out
    assert size_cli.main(["gemma-2-9b", "--profile", "tpu"]) == 2


def test_the_readme_worked_example_is_what_make_size_prints() -> None:
    import os
    prices = {"gb10": 4000.0, "strix_halo": 2000.0, "rtx3090": 800.0, "rtx4090": 1800.0, "rtx6000_ada": 7000.0,
              "a100_80gb": 15000.0, "h100": 30000.0}
    out = sizing.markdown(sizing.size("Qwen/Qwen3-235B-A22B", "awq", 8192, 8, 20.0, prices=prices))
    table = out.split("\n\nPlan of the first answer")[0]
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8") as fh:
        assert table in fh.read(), "README.md's make size example is stale: run it again and paste it"
