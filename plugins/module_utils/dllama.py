# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read distributed-llama's model (``.m``) and tokenizer (``.t``) headers, standard library only.

Format, as distributed-llama 0.16 reads it (``src/llm.cpp`` ``loadLlmHeader``/``loadLlmNetWeight``,
``src/tokenizer.cpp``; written by ``converter/writer.py`` and ``tokenizer-writer.py``), little-endian int32:

* ``.m``: magic ``0xA00ABCD``, header size (bytes from the file's start to the first tensor), then key/value pairs;
  then the tensors in a fixed order (embedding in f32; per layer q, k, v, wo, w1, w2, w3 in the weight type, MoE
  gate and experts when there are experts, q/k norms for qwen3, two norms in f32; the final norm; the logits). The
  file size must match exactly: the loader refuses a file with bytes missing or left over, after the workers have
  started - so it is checked here, before anything is deployed.
* ``.t``: magic ``0x567124``, header size, key/value pairs, the chat template, the EOS ids, then per token a score,
  a length and the bytes. Tokens below the BOS id are the regular vocabulary, the rest special ones.

And what the loader and the slicer accept (``split_problems``, ``model_problems``): the backend module plans with the
same rules the lab and preflight check a file with.
"""
from __future__ import annotations

import struct
from typing import IO, Any, Dict, List, Mapping, Optional

from ansible_collections.llmlab.cluster.plugins.module_utils.perf import is_power_of_two

MODEL_MAGIC = 0xA00ABCD
OLD_MODEL_MAGICS = (0xABCD00, 0xABCD01)
TOKENIZER_MAGIC = 0x567124

MODEL_KEYS = {
    0: "version", 1: "arch_type", 2: "dim", 3: "hidden_dim", 4: "n_layers", 5: "n_heads", 6: "n_kv_heads",
    7: "n_experts", 8: "n_active_experts", 9: "vocab_size", 10: "max_seq_len", 11: "hidden_act", 12: "rope_theta",
    13: "weights_float_type", 14: "rope_scaling_factor", 15: "rope_scaling_low_freq_factor",
    16: "rope_scaling_high_freq_factory", 17: "rope_scaling_orig_max_seq_len", 18: "rope_type", 19: "head_dim",
    20: "norm_epsilon", 21: "moe_hidden_dim",
}
ARCHITECTURES = {0xABCD00: "llama", 0xABCD01: "qwen3", 0xABCD02: "qwen3_moe"}
FLOAT_TYPES = {0: "f32", 1: "f16", 2: "q40", 3: "q80"}
HIDDEN_ACTS = {0: "gelu", 1: "silu"}
NORM_EPSILONS = {5: 1e-5, 6: 1e-6}
BLOCK = 32
# bytes per block of 32 values: f16 delta + 16 packed nibbles (q40), f16 delta + 32 int8 (q80)
_BLOCK_BYTES = {"q40": 18, "q80": 34}
_ELEMENT_BYTES = {"f32": 4, "f16": 2}

TOKENIZER_KEYS = {0: "version", 1: "vocab_size", 2: "max_token_length", 3: "bos_id", 4: "eos_id", 5: "pad_id",
                  6: "chat_eos_id", 7: "chat_template", 8: "chat_stop", 9: "n_eos_tokens", 10: "add_bos"}
_MAX_KV = 256


class DllamaFormatError(ValueError):
    """Not a distributed-llama file, or a damaged one."""


def _ints(f: IO[bytes], n: int) -> List[int]:
    b = f.read(4 * n)
    if len(b) != 4 * n:
        raise DllamaFormatError("the file ends inside its header")
    return list(struct.unpack("<%di" % n, b))


def _pairs(f: IO[bytes], keys: Mapping[int, str], what: str) -> Dict[str, int]:
    """After the magic: the header size, then its key/value pairs, by name (an unknown key is refused, as the
    loaders refuse it)."""
    header_size, = _ints(f, 1)
    n_kv = (header_size - 8) // 4
    if header_size < 8 or (header_size - 8) % 8 or n_kv > 2 * _MAX_KV:
        raise DllamaFormatError("a header size of %d bytes is not a whole number of key/value pairs" % header_size)
    values = _ints(f, n_kv)
    raw: Dict[str, int] = {"header_size": header_size}
    for key, value in zip(values[0::2], values[1::2]):
        if key not in keys:
            raise DllamaFormatError("unknown %sheader key %d (the loader refuses it)" % (what, key))
        raw[keys[key]] = value
    return raw


def tensor_bytes(float_type: str, count: int) -> int:
    """Bytes of ``count`` values stored as ``float_type``."""
    if float_type in _ELEMENT_BYTES:
        return count * _ELEMENT_BYTES[float_type]
    if float_type in _BLOCK_BYTES:
        if count % BLOCK:
            raise DllamaFormatError("%d %s values are not whole blocks of %d" % (count, float_type, BLOCK))
        return count // BLOCK * _BLOCK_BYTES[float_type]
    raise DllamaFormatError("unknown float type %r" % float_type)


def expected_size(h: Mapping[str, Any]) -> int:
    """The exact file size the loader accepts for this header (``loadLlmNetWeight``'s order)."""
    wt, dim, vocab = h["weight_type"], h["dim"], h["vocab_size"]
    q_dim, kv_dim = h["head_dim"] * h["n_heads"], h["head_dim"] * h["n_kv_heads"]
    ff = h["moe_hidden_dim"] if h["n_experts"] > 0 and h["moe_hidden_dim"] else h["hidden_dim"]
    per_layer = (tensor_bytes(wt, dim * q_dim) + 2 * tensor_bytes(wt, dim * kv_dim) + tensor_bytes(wt, q_dim * dim)
                 + 2 * tensor_bytes("f32", dim))
    ffn = 3 * tensor_bytes(wt, dim * ff)
    if h["n_experts"] > 0:
        per_layer += tensor_bytes("f32", dim * h["n_experts"]) + h["n_experts"] * ffn
    else:
        per_layer += ffn
    if h["architecture"] in ("qwen3", "qwen3_moe"):
        per_layer += 2 * tensor_bytes("f32", h["head_dim"])
    return (h["header_size"] + tensor_bytes("f32", vocab * dim) + h["n_layers"] * per_layer
            + tensor_bytes("f32", dim) + tensor_bytes(wt, dim * vocab))


def read_model_header(path: str) -> Dict[str, Any]:
    """The ``.m`` header in plain terms, with ``file_size`` and ``expected_size`` (equal for a whole file)."""
    with open(path, "rb") as f:
        magic, = _ints(f, 1)
        if magic in OLD_MODEL_MAGICS:
            raise DllamaFormatError("an old distributed-llama model format (magic 0x%X): convert the model again "
                                    "with this version's converter" % magic)
        if magic != MODEL_MAGIC:
            raise DllamaFormatError("not a distributed-llama model (magic 0x%X, expected 0x%X)" % (magic, MODEL_MAGIC))
        raw = _pairs(f, MODEL_KEYS, "")
        f.seek(0, 2)
        file_size = f.tell()
    header_size = raw["header_size"]
    for need in ("arch_type", "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                 "weights_float_type"):
        if need not in raw:
            raise DllamaFormatError("the header has no %s" % need)
    if raw["arch_type"] not in ARCHITECTURES:
        raise DllamaFormatError("unknown architecture 0x%X" % raw["arch_type"])
    if raw["weights_float_type"] not in FLOAT_TYPES:
        raise DllamaFormatError("unknown weight type %d" % raw["weights_float_type"])
    if raw.get("norm_epsilon", 5) not in NORM_EPSILONS:
        raise DllamaFormatError("unsupported norm epsilon code %d" % raw["norm_epsilon"])
    if raw["n_heads"] <= 0 or raw["dim"] <= 0:
        raise DllamaFormatError("the header has no heads or no dimension")
    h: Dict[str, Any] = {
        "architecture": ARCHITECTURES[raw["arch_type"]],
        "version": raw.get("version", 0),
        "dim": raw["dim"],
        "hidden_dim": raw["hidden_dim"],
        "n_layers": raw["n_layers"],
        "n_heads": raw["n_heads"],
        "n_kv_heads": raw["n_kv_heads"],
        "head_dim": raw.get("head_dim") or raw["dim"] // raw["n_heads"],
        "n_experts": raw.get("n_experts", 0),
        "n_active_experts": raw.get("n_active_experts", 0),
        "moe_hidden_dim": raw.get("moe_hidden_dim", 0),
        "vocab_size": raw["vocab_size"],
        "max_seq_len": raw.get("max_seq_len", 0),
        "hidden_act": HIDDEN_ACTS.get(raw.get("hidden_act", 1), "unknown"),
        "rope_theta": raw.get("rope_theta", 10000),
        "weight_type": FLOAT_TYPES[raw["weights_float_type"]],
        "norm_epsilon": NORM_EPSILONS[raw.get("norm_epsilon", 5)],
        "header_size": header_size,
        "file_size": file_size,
    }
    h["expected_size"] = expected_size(h)
    return h


def read_tokenizer_header(path: str) -> Dict[str, Any]:
    """The ``.t`` header: vocabulary size, BOS id, EOS ids, whether it has a chat template; the whole token table is
    walked, so a truncated file fails here and not in dllama-api."""
    with open(path, "rb") as f:
        magic, = _ints(f, 1)
        if magic != TOKENIZER_MAGIC:
            raise DllamaFormatError("not a distributed-llama tokenizer (magic 0x%X, expected 0x%X; the old format "
                                    "0x567123 is refused)" % (magic, TOKENIZER_MAGIC))
        raw = _pairs(f, TOKENIZER_KEYS, "tokenizer ")
        f.seek(raw.get("chat_stop", 0), 1)   # the old chat-stop string, skipped as the loader skips it
        if raw.get("version") != 1:
            raise DllamaFormatError("tokenizer version %s, distributed-llama needs 1 (regenerate it)"
                                    % raw.get("version"))
        template = f.read(raw["chat_template"]) if raw.get("chat_template", 0) > 0 else b""
        eos = _ints(f, raw.get("n_eos_tokens", 0))
        vocab = raw.get("vocab_size", 0)
        for _ in range(vocab):
            head = f.read(8)
            if len(head) != 8:
                raise DllamaFormatError("the file ends inside its token table")
            _score, length = struct.unpack("<fI", head)
            if len(f.read(length)) != length:
                raise DllamaFormatError("the file ends inside its token table")
        trailing = len(f.read())
    return {"vocab_size": vocab, "bos_id": raw.get("bos_id", -1), "eos_ids": eos,
            "add_bos": raw.get("add_bos", 0) == 1, "chat_template": template.decode("utf-8", errors="replace"),
            "max_token_length": raw.get("max_token_length", 0), "trailing_bytes": trailing}


# The catalog's quantization -> the .m weight type it loads (q40 with q80 buffers, or f32 with f32).
WEIGHT_TYPES = {"q4_0": "q40", "f32": "f32"}


# --- what the loader and the slicer accept ----------------------------------------------------------------------------------------------

def split_problems(dims: Mapping[str, Any], nodes: int) -> List[str]:
    """Why ``nodes`` nodes cannot split a model of these dimensions (``heads``, ``kv_heads``, ``head_dim``, ``dim``,
    ``hidden_dim``, ``vocab``, ``weight_type``; 0 or missing = unknown): the root slices every matrix by rows or
    columns into ``nodes`` equal parts, q40/q80 blocks hold 32 values. Release v0.16.4 asserts (SIGABRT) otherwise."""
    n = int(nodes)
    out = []
    if not is_power_of_two(n):
        out.append("distributed-llama needs a power-of-two node count, not %d" % n)
    kv_heads = int(dims.get("kv_heads") or 0)
    if kv_heads and n > kv_heads:
        out.append("distributed-llama cannot use more nodes (%d) than the model's %d KV heads" % (n, kv_heads))
    kv_dim = int(dims.get("head_dim") or 0) * kv_heads
    parts = (("attention heads", dims.get("heads")), ("KV heads", kv_heads), ("KV dimension", kv_dim),
             ("vocabulary", dims.get("vocab")), ("feed-forward dimension", dims.get("hidden_dim")))
    for what, value in parts:
        if value and n and int(value) % n:
            out.append("its %s (%d) is not divisible by %d nodes" % (what, int(value), n))
    if dims.get("weight_type") == "q40" and n and not out:
        slices = {"hidden dimension": int(dims.get("dim") or 0), "feed-forward slice": int(dims.get("hidden_dim") or 0) // n,
                  "KV slice": kv_dim // n}
        bad = ["%s %d" % kv for kv in slices.items() if kv[1] % 32]
        if bad:
            out.append("q40 blocks hold 32 values: %s on %d nodes are not multiples of 32" % (", ".join(bad), n))
    return out


def model_problems(header: Mapping[str, Any], nodes: int, plan_model: Optional[Mapping[str, Any]] = None,
                   quant: Optional[str] = None) -> List[str]:
    """What is wrong with a ``.m`` file (its header, ``dllama.read_model_header``) for ``nodes`` nodes and the plan's
    model and quantization, in plain words; empty when it loads."""
    wt = header["weight_type"]
    out = split_problems({"heads": header["n_heads"], "kv_heads": header["n_kv_heads"],
                          "head_dim": header["head_dim"], "dim": header["dim"], "hidden_dim": header["hidden_dim"],
                          "vocab": header["vocab_size"], "weight_type": wt}, nodes)
    if wt not in WEIGHT_TYPES.values():
        out.append("its weights are %s; distributed-llama loads q40 (with q80 buffers) or f32" % wt)
    elif quant is not None and WEIGHT_TYPES.get(quant, wt) != wt:
        out.append("its weights are %s, the plan's quantization %s is %s" % (wt, quant, WEIGHT_TYPES[quant]))
    if header.get("expected_size") is not None and header.get("file_size") != header["expected_size"]:
        out.append("it holds %d bytes where its header describes %d (truncated, or not a whole model)"
                   % (header["file_size"], header["expected_size"]))
    for key, mine in (("layers", "n_layers"), ("heads", "n_heads"), ("kv_heads", "n_kv_heads"),
                      ("hidden", "dim"), ("vocab", "vocab_size")):
        if plan_model and plan_model.get(key) and int(plan_model[key]) != int(header[mine]):
            out.append("its %s is %d, the plan's model %s has %d" % (key.replace("_", " "), int(header[mine]),
                                                                      plan_model.get("id", ""), int(plan_model[key])))
    return out
