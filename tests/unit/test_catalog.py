"""The model catalog and the quantization table."""

from __future__ import annotations

import json

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import catalog
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

REQUIRED = [
    "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.1-405B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct",
    "Qwen/Qwen3-30B-A3B", "Qwen/Qwen3-235B-A22B", "zai-org/GLM-4.5-Air", "openai/gpt-oss-20b", "openai/gpt-oss-120b",
    "deepseek-ai/DeepSeek-R1", "mistralai/Mistral-7B-Instruct-v0.3", "llmlab/tiny-llama-test",
]


@pytest.mark.parametrize("model_id", REQUIRED)
def test_required_models_are_in_the_catalog(model_id: str) -> None:
    m = catalog.resolve_model(model_id)
    assert m.id == model_id
    assert m.heads % m.kv_heads == 0
    assert 0 < m.params_active_b <= m.params_total_b


@pytest.mark.parametrize("alias,expected", [
    ("QWEN/qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B"),
    ("qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B"),
    ("GPT-OSS-120B", "openai/gpt-oss-120b"),
    ("gpt-oss:20b", "openai/gpt-oss-20b"),
    ("Llama-3.3-70B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"),
    ("tiny", "llmlab/tiny-llama-test"),
])
def test_aliases_resolve_case_insensitively(alias: str, expected: str) -> None:
    assert catalog.resolve_model(alias).id == expected


# Dense models: the parameter count in the catalog agrees with the one the shapes give (within 2 %), so the
# dimensions the planner splits and the sizes it adds up describe the same model.
@pytest.mark.parametrize("model_id", [m for m in REQUIRED if not catalog.resolve_model(m).is_moe])
def test_dense_parameter_counts_match_their_shapes(model_id: str) -> None:
    m = catalog.resolve_model(model_id)
    attn = m.hidden * m.heads * m.head_dim * 2 + 2 * m.hidden * m.kv_heads * m.head_dim
    mlp = 3 * m.hidden * m.ffn
    embed = 2 * m.vocab * m.hidden
    shaped = (m.layers * (attn + mlp) + embed) / 1e9
    assert shaped == pytest.approx(m.params_total_b, rel=0.02)


@pytest.mark.parametrize("quant,bpw", [
    ("bf16", 2.0), ("fp16", 2.0), ("f16", 2.0), ("fp8", 1.0), ("nvfp4", 0.5625), ("mxfp4", 0.53125),
    ("q8_0", 1.0625), ("q6_k", 0.8203125), ("q5_k_m", 0.71), ("q4_k_m", 0.606), ("q4_0", 0.5625), ("q40", 0.5625),
    ("Q4_K_M", 0.606), ("q3_k_m", 0.489), ("q2_k", 0.37),
])
def test_bytes_per_weight(quant: str, bpw: float) -> None:
    assert catalog.bytes_per_weight(quant) == bpw


def test_quants_are_ordered_by_precision() -> None:
    order = ["bf16", "q8_0", "fp8", "q6_k", "q5_k_m", "q4_k_m", "q4_0", "nvfp4", "mxfp4", "q3_k_m", "q2_k"]
    sizes = [catalog.bytes_per_weight(q) for q in order]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("spec,words", [
    ("no/such-model", "not in the catalog"),
    ({"layers": 4}, "missing params_total_b"),
    ({"params_total_b": 1, "layers": 4, "hidden": 64, "heads": 6, "kv_heads": 4}, "multiple of kv_heads"),
    ({"params_total_b": 1, "params_active_b": 2, "layers": 4, "hidden": 64, "heads": 4}, "params_active_b"),
    ({"params_total_b": 1, "layers": 4, "hidden": 64, "heads": 4, "colour": "red"}, "unknown keys colour"),
    (42, "must be an id"),
    ("/nonexistent/config.json", "does not exist"),
])
def test_bad_models_are_refused_naming_the_variable(spec: object, words: str) -> None:
    with pytest.raises(PlanError) as err:
        catalog.resolve_model(spec)
    assert words in str(err.value)
    assert err.value.variable == "llmlab_model"
    assert err.value.fix


def test_unknown_quant_names_the_variable_and_choices() -> None:
    with pytest.raises(PlanError) as err:
        catalog.normalize_quant("q1_xs")
    assert err.value.variable == "llmlab_quant"
    assert "q4_k_m" in str(err.value)


def test_model_from_dict() -> None:
    m = catalog.resolve_model({"id": "mine", "params_total_b": 13, "layers": 40, "hidden": 5120, "heads": 40,
                               "architecture": "LlamaForCausalLM"})
    assert (m.kv_heads, m.head_dim, m.pp_supported, m.is_moe) == (40, 128, True, False)


def test_model_from_hf_config_json(tmp_path) -> None:
    cfg = {"architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 48,
           "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128, "vocab_size": 151936,
           "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
           "tie_word_embeddings": False, "_name_or_path": "Qwen/Qwen3-30B-A3B"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    m = catalog.resolve_model(str(path))
    ref = catalog.resolve_model("Qwen/Qwen3-30B-A3B")
    # the counts from the shapes agree with the published ones within 2 %
    assert m.params_total_b == pytest.approx(ref.params_total_b, rel=0.02)
    assert m.params_active_b == pytest.approx(ref.params_active_b, rel=0.02)
    assert (m.experts, m.experts_active, m.kv_heads, m.pp_supported) == (128, 8, 4, True)
    # a directory holding config.json works too
    assert catalog.resolve_model(str(tmp_path)).layers == 48


def test_mla_cache_is_the_latent_not_full_heads() -> None:
    r1 = catalog.resolve_model("deepseek-ai/DeepSeek-R1")
    assert r1.kv_elements_per_token == 61 * 576
    llama = catalog.resolve_model("meta-llama/Llama-3.1-70B-Instruct")
    assert llama.kv_elements_per_token == 80 * 2 * 8 * 128
