"""distributed-llama's file formats: the header reader (module_utils/dllama.py) on the lab's model as
tools/tiny_dllama.py writes it, and on damaged files; the writer keeps the GGUF's weights."""
from __future__ import annotations

import os
import struct
from typing import Any, Dict

import numpy as np
import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.dllama import (
    DllamaFormatError, expected_size, read_model_header, read_tokenizer_header, tensor_bytes)
from tools import tiny_dllama, tiny_gguf
from tools.simlab.inputs import _model_vars

# What tools/tiny_dllama.py writes (numpy's seeded generator, as tools/tiny_gguf.py) is what the lab inventory pins.
_PINS = _model_vars()["llmlab_dllama_files_sha256"]
PINNED = {"q40": _PINS["tiny-llama-test-q40.m"], "tokenizer": _PINS["tiny-llama-test.t"]}


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> Dict[str, str]:
    d = str(tmp_path_factory.mktemp("dllama"))
    m, t = (os.path.join(d, n) for n in tiny_dllama.names("llmlab/tiny-llama-test", "q40"))
    return {"model": m, "model_sha": tiny_dllama.write_model(m), "tok": t, "tok_sha": tiny_dllama.write_tokenizer(t)}


def test_writer_reproduces_the_pinned_files(files: Dict[str, str]) -> None:
    assert files["model_sha"] == PINNED["q40"] and files["tok_sha"] == PINNED["tokenizer"], \
        "tools/tiny_dllama.py changed: update llmlab_dllama_files_sha256 in the sim inventory"


def test_header_has_the_catalog_dimensions_and_the_exact_size(files: Dict[str, str]) -> None:
    m, h = resolve_model("llmlab/tiny-llama-test"), read_model_header(files["model"])
    assert (h["architecture"], h["n_layers"], h["dim"], h["n_heads"], h["n_kv_heads"], h["head_dim"],
            h["vocab_size"], h["hidden_dim"], h["weight_type"]) == (
        "llama", m.layers, m.hidden, m.heads, m.kv_heads, m.head_dim, m.vocab, m.ffn, "q40")
    assert h["file_size"] == h["expected_size"] == os.path.getsize(files["model"])


def test_tokenizer_puts_bos_first_of_the_special_tokens(files: Dict[str, str]) -> None:
    t = read_tokenizer_header(files["tok"])
    tokens, _scores, order = tiny_dllama.token_order(t["vocab_size"])
    assert t["vocab_size"] == resolve_model("llmlab/tiny-llama-test").vocab and t["trailing_bytes"] == 0
    assert tokens[t["bos_id"]] == b"<s>" and [tokens[i] for i in t["eos_ids"]] == [b"</s>"]
    assert all(len(tok) == 1 for tok in tokens[:256])          # the byte tokens as raw bytes, ids below BOS
    assert sorted(order) == list(range(len(order)))           # a permutation of the GGUF's ids
    assert "<|im_start|>" in t["chat_template"] and t["add_bos"]


def test_the_embedding_rows_follow_the_tokens(files: Dict[str, str]) -> None:
    """Token <0x41> of the GGUF is b'A' here: its embedding row is the same vector in both files."""
    h = read_model_header(files["model"])
    _tokens, _scores, order = tiny_dllama.token_order(h["vocab_size"])
    gguf_embd = dict(tiny_gguf.weights())["token_embd.weight"].astype(np.float32)
    with open(files["model"], "rb") as f:
        f.seek(h["header_size"])
        embd = np.frombuffer(f.read(h["vocab_size"] * h["dim"] * 4), dtype="<f4").reshape(h["vocab_size"], h["dim"])
    assert np.array_equal(embd, gguf_embd[order])
    assert np.array_equal(embd[ord("A")], gguf_embd[3 + ord("A")])


def test_q40_blocks_dequantise_close_to_the_values() -> None:
    x = np.random.default_rng(1).standard_normal(64).astype(np.float32)
    raw = np.frombuffer(tiny_dllama.q40(x), dtype=np.uint8).reshape(2, 18)
    deltas = raw[:, :2].copy().view("<f2").astype(np.float32).reshape(2)
    q = np.concatenate([raw[:, 2:] & 0xF, raw[:, 2:] >> 4], axis=1).astype(np.float32) - 8.0
    back = (q * deltas[:, None]).reshape(-1)
    assert len(tiny_dllama.q40(x)) == tensor_bytes("q40", 64) == 36
    assert np.max(np.abs(back - x)) <= np.max(np.abs(deltas)) * 0.51 + 1e-3


def _truncated(src: str, dst: str, cut: int) -> str:
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read()[:-cut])
    return dst


def test_a_truncated_model_is_seen_by_its_size(files: Dict[str, str], tmp_path: Any) -> None:
    h = read_model_header(_truncated(files["model"], str(tmp_path / "cut.m"), 18))
    assert h["expected_size"] - h["file_size"] == 18


@pytest.mark.parametrize("magic, words", [
    (0xABCD00, "old distributed-llama model format"),
    (0x46554747, "not a distributed-llama model"),      # a GGUF's magic
])
def test_wrong_magic_is_named(tmp_path: Any, magic: int, words: str) -> None:
    p = tmp_path / "x.m"
    p.write_bytes(struct.pack("<ii", magic, 8))
    with pytest.raises(DllamaFormatError, match=words):
        read_model_header(str(p))


def test_unknown_key_and_missing_weight_type_are_refused(tmp_path: Any) -> None:
    p = tmp_path / "k.m"
    p.write_bytes(struct.pack("<iiii", 0xA00ABCD, 16, 99, 1))
    with pytest.raises(DllamaFormatError, match="unknown header key 99"):
        read_model_header(str(p))
    p.write_bytes(struct.pack("<ii" + "ii" * 7, 0xA00ABCD, 8 + 56, 1, 0xABCD00, 2, 64, 3, 128, 4, 1, 5, 2, 6, 2,
                              9, 32))
    with pytest.raises(DllamaFormatError, match="no weights_float_type"):
        read_model_header(str(p))


def test_a_truncated_tokenizer_is_refused(files: Dict[str, str], tmp_path: Any) -> None:
    with pytest.raises(DllamaFormatError, match="token table"):
        read_tokenizer_header(_truncated(files["tok"], str(tmp_path / "cut.t"), 3))


def test_expected_size_counts_experts_and_qwen3_norms() -> None:
    base = {"architecture": "llama", "weight_type": "f32", "dim": 64, "vocab_size": 32, "head_dim": 16,
            "n_heads": 4, "n_kv_heads": 2, "hidden_dim": 128, "moe_hidden_dim": 0, "n_experts": 0, "n_layers": 1,
            "header_size": 8}
    dense = expected_size(base)
    assert expected_size(dict(base, architecture="qwen3")) - dense == 2 * 16 * 4
    moe = expected_size(dict(base, n_experts=2, moe_hidden_dim=32))
    assert moe - dense == 64 * 2 * 4 + 2 * 3 * 64 * 32 * 4 - 3 * 64 * 128 * 4
