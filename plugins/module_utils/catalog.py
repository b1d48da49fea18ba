# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Model catalog and quantizations: data, plus lookup by id, alias, dict or a local config.json."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

# Bytes per weight, block scales included (llama.cpp's published bits per weight / 8).
QUANTS: Dict[str, float] = {
    "f32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "nvfp4": 0.5625,    # 4-bit values + one FP8 scale per 16
    "mxfp4": 0.53125,   # 4-bit values + one E8M0 scale per 32
    "q8_0": 1.0625,
    "q6_k": 0.8203125,
    "q5_k_m": 0.71,
    "q4_k_m": 0.606,
    "q4_0": 0.5625,
    "q3_k_m": 0.489,
    "q2_k": 0.37,
    # int4 weight-only (w4a16), group size 128: 4-bit values + an fp16 scale and a 4-bit zero point per 128
    # (4.16 bits); embeddings and the LM head stay in 16 bit (EMBEDDING_BYTES).
    "awq": 0.52,
    "gptq": 0.52,
}
# Quantizations that keep the token embeddings and the LM head in 16 bit (bytes per weight there): AutoAWQ and
# GPTQ checkpoints quantize the linear layers of the blocks only.
EMBEDDING_BYTES: Dict[str, float] = {"awq": 2.0, "gptq": 2.0}
QUANT_ALIASES: Dict[str, str] = {
    "q40": "q4_0",          # distributed-llama's spelling
    "q80": "q8_0",
    "f16": "fp16",
    "float16": "fp16",
    "bfloat16": "bf16",
    "float32": "f32",
}

# vLLM architectures that implement pipeline parallelism (SupportsPP).
PP_ARCHITECTURES = {
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
    "Qwen2MoeForCausalLM", "MixtralForCausalLM", "GptOssForCausalLM", "DeepseekV3ForCausalLM",
    "DeepseekV2ForCausalLM", "Glm4MoeForCausalLM",
}


@dataclass
class Model:
    """What the planner needs to know of a model. Parameters are in billions."""

    id: str
    architecture: str
    params_total_b: float
    params_active_b: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int = 32000
    ffn: int = 0
    experts: int = 0
    experts_active: int = 0
    kv_dim_per_layer: int = 0      # elements cached per token per layer; 0 = 2 * kv_heads * head_dim
    pp_supported: bool = True
    aliases: List[str] = field(default_factory=list)

    @property
    def is_moe(self) -> bool:
        return self.experts > 1

    @property
    def kv_elements_per_token(self) -> int:
        """Elements of KV cache one token adds across all layers."""
        per_layer = self.kv_dim_per_layer or 2 * self.kv_heads * self.head_dim
        return per_layer * self.layers

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _m(id_: str, arch: str, total: float, active: float, layers: int, hidden: int, heads: int, kv: int,
       head_dim: int, vocab: int, aliases: List[str], **kw: Any) -> Model:
    return Model(id=id_, architecture=arch, params_total_b=total, params_active_b=active, layers=layers,
                 hidden=hidden, heads=heads, kv_heads=kv, head_dim=head_dim, vocab=vocab, aliases=aliases, **kw)


_CATALOG: List[Model] = [
    _m("meta-llama/Llama-3.1-8B-Instruct", "LlamaForCausalLM", 8.03, 8.03, 32, 4096, 32, 8, 128, 128256,
       ["llama-3.1-8b", "llama3.1:8b", "llama3_1_8b_instruct"], ffn=14336),
    _m("meta-llama/Llama-3.1-70B-Instruct", "LlamaForCausalLM", 70.55, 70.55, 80, 8192, 64, 8, 128, 128256,
       ["llama-3.1-70b", "llama3.1:70b"], ffn=28672),
    _m("meta-llama/Llama-3.1-405B-Instruct", "LlamaForCausalLM", 405.85, 405.85, 126, 16384, 128, 8, 128, 128256,
       ["llama-3.1-405b", "llama3.1:405b"], ffn=53248),
    _m("meta-llama/Llama-3.3-70B-Instruct", "LlamaForCausalLM", 70.55, 70.55, 80, 8192, 64, 8, 128, 128256,
       ["llama-3.3-70b", "llama3.3:70b", "llama3_3_70b_instruct"], ffn=28672),
    _m("meta-llama/Llama-2-70b-hf", "LlamaForCausalLM", 68.98, 68.98, 80, 8192, 64, 8, 128, 32000,
       ["llama-2-70b", "llama2:70b"], ffn=28672),
    _m("Qwen/Qwen2.5-7B-Instruct", "Qwen2ForCausalLM", 7.62, 7.62, 28, 3584, 28, 4, 128, 152064,
       ["qwen2.5-7b", "qwen2.5:7b"], ffn=18944),
    _m("Qwen/Qwen2.5-72B-Instruct", "Qwen2ForCausalLM", 72.71, 72.71, 80, 8192, 64, 8, 128, 152064,
       ["qwen2.5-72b", "qwen2.5:72b"], ffn=29568),
    _m("Qwen/Qwen3-30B-A3B", "Qwen3MoeForCausalLM", 30.53, 3.34, 48, 2048, 32, 4, 128, 151936,
       ["qwen3-30b-a3b", "qwen3:30b"], experts=128, experts_active=8),
    _m("Qwen/Qwen3-235B-A22B", "Qwen3MoeForCausalLM", 235.09, 22.14, 94, 4096, 64, 4, 128, 151936,
       ["qwen3-235b-a22b", "qwen3:235b", "Qwen/Qwen3-VL-235B-A22B-Instruct"], experts=128, experts_active=8),
    _m("zai-org/GLM-4.5-Air", "Glm4MoeForCausalLM", 106.85, 12.0, 46, 4096, 96, 8, 128, 151552,
       ["glm-4.5-air", "THUDM/GLM-4.5-Air"], experts=128, experts_active=8),
    _m("openai/gpt-oss-20b", "GptOssForCausalLM", 20.91, 3.61, 24, 2880, 64, 8, 64, 201088,
       ["gpt-oss-20b", "gpt-oss:20b"], experts=32, experts_active=4),
    _m("openai/gpt-oss-120b", "GptOssForCausalLM", 116.83, 5.13, 36, 2880, 64, 8, 64, 201088,
       ["gpt-oss-120b", "gpt-oss:120b"], experts=128, experts_active=4),
    # MLA: the cache holds the compressed latent (512) plus the rope key (64) per layer, not full K and V.
    _m("deepseek-ai/DeepSeek-R1", "DeepseekV3ForCausalLM", 671.0, 37.0, 61, 7168, 128, 128, 128, 129280,
       ["deepseek-r1", "deepseek-r1:671b"], experts=256, experts_active=8, kv_dim_per_layer=576),
    _m("google/gemma-2-9b-it", "Gemma2ForCausalLM", 9.24, 9.24, 42, 3584, 16, 8, 256, 256000,
       ["gemma-2-9b", "gemma2:9b"], ffn=14336),
    _m("mistralai/Mistral-7B-Instruct-v0.3", "MistralForCausalLM", 7.25, 7.25, 32, 4096, 32, 8, 128, 32768,
       ["mistral-7b", "mistral:7b"], ffn=14336),
    # The simulated lab's model: a llama-architecture GGUF with random weights written by the lab itself
    # from exactly these dimensions (tools/tiny_gguf.py). 152 MB in F16: small enough for a 2-core machine, big
    # enough that every token costs real compute.
    _m("llmlab/tiny-llama-test", "LlamaForCausalLM", 0.0760, 0.0760, 12, 768, 12, 4, 64, 320,
       ["tiny", "tiny-llama-test"], ffn=2048),
]


def catalog() -> Dict[str, Model]:
    return {m.id: m for m in _CATALOG}


def _index() -> Dict[str, Model]:
    idx: Dict[str, Model] = {}
    for m in _CATALOG:
        idx[m.id.lower()] = m
        idx[m.id.split("/", 1)[-1].lower()] = m
        for a in m.aliases:
            idx[a.lower()] = m
    return idx


def normalize_quant(quant: Any) -> str:
    if not isinstance(quant, str):
        raise PlanError("quantization must be a string, got %r" % (quant,), variable="llmlab_quant",
                        fix="use one of: %s" % ", ".join(sorted(QUANTS)))
    q = quant.strip().lower()
    q = QUANT_ALIASES.get(q, q)
    if q not in QUANTS:
        raise PlanError("unknown quantization %r" % quant, variable="llmlab_quant",
                        fix="use one of: %s (q40 is accepted for q4_0)" % ", ".join(sorted(QUANTS)))
    return q


def bytes_per_weight(quant: str) -> float:
    return QUANTS[normalize_quant(quant)]


def _from_hf_config(cfg: Mapping[str, Any], source: str) -> Model:
    """Read the fields the planner needs from a Hugging Face ``config.json``."""
    try:
        arch = (cfg.get("architectures") or ["unknown"])[0]
        hidden = int(cfg["hidden_size"])
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        kv_heads = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        vocab = int(cfg.get("vocab_size", 32000))
        ffn = int(cfg.get("intermediate_size", 4 * hidden))
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanError("%s is not a usable Hugging Face config.json (%s)" % (source, exc), variable="llmlab_model",
                        fix="point llmlab_model at a config.json with hidden_size, num_hidden_layers, "
                            "num_attention_heads, or give the model as a dict")
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    experts_active = int(cfg.get("num_experts_per_tok") or cfg.get("num_experts_per_token") or 0)
    moe_ffn = int(cfg.get("moe_intermediate_size") or ffn)
    # Parameter count from the shapes: attention + MLP (+ experts) per layer, embeddings and LM head.
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    if experts > 1:
        expert = 3 * hidden * moe_ffn
        total = layers * (attn + experts * expert) + embed
        active = layers * (attn + max(experts_active, 1) * expert) + embed
    else:
        total = active = layers * (attn + 3 * hidden * ffn) + embed
    return Model(id=str(cfg.get("_name_or_path") or source), architecture=arch, params_total_b=total / 1e9,
                 params_active_b=active / 1e9, layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads,
                 head_dim=head_dim, vocab=vocab, ffn=ffn, experts=experts, experts_active=experts_active,
                 pp_supported=arch in PP_ARCHITECTURES)


_REQUIRED_DICT_KEYS = ("params_total_b", "layers", "hidden", "heads")


def resolve_model(spec: Any) -> Model:
    """A model by catalog id or alias (any case), a dict, or the path of a local config.json."""
    if isinstance(spec, Model):
        return spec
    if isinstance(spec, Mapping):
        missing = [k for k in _REQUIRED_DICT_KEYS if k not in spec]
        if missing:
            raise PlanError("a model dict is missing %s" % ", ".join(missing), variable="llmlab_model",
                            fix="give at least %s (parameters in billions)" % ", ".join(_REQUIRED_DICT_KEYS))
        data = dict(spec)
        data.setdefault("id", "custom")
        data.setdefault("architecture", "unknown")
        data.setdefault("params_active_b", data["params_total_b"])
        data.setdefault("kv_heads", data["heads"])
        data.setdefault("head_dim", int(data["hidden"]) // int(data["heads"]))
        data.setdefault("pp_supported", data["architecture"] in PP_ARCHITECTURES)
        known = set(Model.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError("a model dict has unknown keys %s" % ", ".join(unknown), variable="llmlab_model",
                            fix="use only: %s" % ", ".join(sorted(known)))
        try:
            model = Model(**data)
            for key in ("layers", "hidden", "heads", "kv_heads", "head_dim"):
                setattr(model, key, int(getattr(model, key)))
            model.params_total_b = float(model.params_total_b)
            model.params_active_b = float(model.params_active_b)
        except (TypeError, ValueError) as exc:
            raise PlanError("a model dict has a value of the wrong type (%s)" % exc, variable="llmlab_model",
                            fix="numbers for params_total_b, layers, hidden, heads")
        _check_model(model)
        return model
    if isinstance(spec, str):
        if spec.endswith(".json") or os.path.isdir(spec):
            path = os.path.join(spec, "config.json") if os.path.isdir(spec) else spec
            if not os.path.isfile(path):
                raise PlanError("model config %s does not exist on the controller" % path, variable="llmlab_model",
                                fix="give a catalog id, a dict, or the path of a Hugging Face config.json")
            with open(path, encoding="utf-8") as fh:
                try:
                    cfg = json.load(fh)
                except ValueError as exc:
                    raise PlanError("%s is not JSON (%s)" % (path, exc), variable="llmlab_model",
                                    fix="point at the model's config.json")
            model = _from_hf_config(cfg, path)
            _check_model(model)
            return model
        found = _index().get(spec.strip().lower())
        if found is None:
            raise PlanError("model %r is not in the catalog" % spec, variable="llmlab_model",
                            fix="use one of: %s; or give the model as a dict or a config.json path"
                                % ", ".join(sorted(catalog())))
        return found
    raise PlanError("model must be an id, a dict or a config.json path, got %r" % (spec,), variable="llmlab_model",
                    fix="set llmlab_model to e.g. Qwen/Qwen3-235B-A22B")


def _check_model(m: Model) -> None:
    def bad(msg: str) -> PlanError:
        return PlanError("model %s: %s" % (m.id, msg), variable="llmlab_model", fix="correct the model's dimensions")
    if m.params_total_b <= 0 or m.params_active_b <= 0 or m.params_active_b > m.params_total_b:
        raise bad("needs 0 < params_active_b <= params_total_b")
    if min(m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim) <= 0:
        raise bad("layers, hidden, heads, kv_heads and head_dim must be positive")
    if m.heads % m.kv_heads:
        raise bad("heads (%d) must be a multiple of kv_heads (%d)" % (m.heads, m.kv_heads))
    if m.experts and not 0 < m.experts_active < m.experts:
        raise bad("experts_active must be between 1 and experts - 1")


def embedding_params(model: Model) -> float:
    """Parameters of the token embeddings and the LM head (untied), in units (not billions)."""
    return 2.0 * float(model.vocab) * model.hidden


def param_bytes(model: Model, quant: str, params_b: float) -> float:
    """Bytes of ``params_b`` billion parameters of ``model`` that include its embeddings and LM head, in ``quant``
    (16-bit embeddings where the format keeps them, EMBEDDING_BYTES)."""
    q = normalize_quant(quant)
    out = params_b * 1e9 * QUANTS[q]
    if q in EMBEDDING_BYTES:
        emb = min(embedding_params(model), params_b * 1e9)
        out += emb * (EMBEDDING_BYTES[q] - QUANTS[q])
    return out


def model_weight_bytes(model: Model, quant: str, active: bool = False) -> float:
    return param_bytes(model, quant, model.params_active_b if active else model.params_total_b)


