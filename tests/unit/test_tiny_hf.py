"""The lab's model as a Hugging Face directory (tools/tiny_hf.py): the GGUF's tensors under Hugging Face's names and
layout, a config that matches the catalog, the GGUF's vocabulary as a tokenizer, and the same bytes every time."""
from __future__ import annotations

import json
import os

import numpy as np
from hypothesis import given, settings, strategies as st
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from tools import tiny_gguf, tiny_hf

MODEL = resolve_model("llmlab/tiny-llama-test")


@settings(max_examples=30, deadline=None)
@given(heads=st.integers(1, 8), half=st.integers(1, 8), cols=st.integers(1, 5))
def test_unpermute_inverts_the_converters_rotary_permutation(heads: int, half: int, cols: int) -> None:
    w = np.arange(heads * 2 * half * cols, dtype=np.float32).reshape(heads * 2 * half, cols)
    assert np.array_equal(tiny_hf.permute(tiny_hf.unpermute(w, heads), heads), w)
    assert np.array_equal(tiny_hf.unpermute(tiny_hf.permute(w, heads), heads), w)
    if half > 1:  # the permutation interleaves the two rotary halves of each head: row 1 of a head is its half's 0
        assert np.array_equal(tiny_hf.permute(w, heads)[1], w[half])


def test_the_directory_holds_the_ggufs_tensors_in_hugging_faces_names_and_layout(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "hf")
    digests = tiny_hf.write(out)
    assert sorted(digests) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                               "tokenizer_config.json"]
    assert tiny_hf.write(out) == digests                     # the same bytes every time
    t = load_file(os.path.join(out, "model.safetensors"))
    gguf = dict(tiny_gguf.weights())
    assert len(t) == len(gguf) == 9 * MODEL.layers + 3
    assert np.array_equal(t["model.embed_tokens.weight"], gguf["token_embd.weight"])
    assert np.array_equal(t["lm_head.weight"], gguf["output.weight"])
    assert np.array_equal(t["model.layers.11.mlp.down_proj.weight"], gguf["blk.11.ffn_down.weight"])
    q, k = t["model.layers.0.self_attn.q_proj.weight"], t["model.layers.0.self_attn.k_proj.weight"]
    assert q.shape == (MODEL.heads * MODEL.head_dim, MODEL.hidden) and k.shape == (MODEL.kv_heads * MODEL.head_dim,
                                                                                   MODEL.hidden)
    assert not np.array_equal(q, gguf["blk.0.attn_q.weight"])   # rows reordered ...
    assert np.array_equal(tiny_hf.permute(q, MODEL.heads), gguf["blk.0.attn_q.weight"])  # ... as the converter would
    assert np.array_equal(tiny_hf.permute(k, MODEL.kv_heads), gguf["blk.0.attn_k.weight"])
    with open(os.path.join(out, "config.json"), encoding="utf-8") as fh:
        cfg = json.load(fh)
    assert (cfg["architectures"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"],
            cfg["hidden_size"], cfg["vocab_size"]) == (["LlamaForCausalLM"], MODEL.layers, MODEL.heads,
                                                       MODEL.kv_heads, MODEL.hidden, MODEL.vocab)


def test_the_tokenizer_is_the_ggufs_vocabulary(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "tokenizer.json")
    tiny_hf.tokenizer(MODEL.vocab).save(path)
    tok = Tokenizer.from_file(path)
    pieces, _, _ = tiny_gguf.vocab(MODEL.vocab)
    enc = tok.encode("the of and")
    assert enc.ids == [1] + [pieces.index(("\u2581" + w).encode()) for w in ("the", "of", "and")]
    assert tok.decode(enc.ids) == "the of and"
    assert tok.get_vocab_size() == MODEL.vocab
    z = tok.encode("Z").ids   # not a piece: its UTF-8 bytes, as SentencePiece's byte fallback does
    assert pieces[z[-1]] == b"<0x5A>"


def test_the_writer_reproduces_the_files_the_lab_inventory_pins(tmp_path: object) -> None:
    """The sim inventory pins every file's SHA-256 (llmlab_vllm_model_sha256); the vllm_ray role checks them."""
    from tools.simlab.inputs import _model_vars

    pinned = {str(k): str(v) for k, v in _model_vars()["llmlab_vllm_model_sha256"].items()}
    assert tiny_hf.write(str(tmp_path)) == pinned, \
        "tools/tiny_hf.py changed: update llmlab_vllm_model_sha256 in the sim inventory"
