"""The lab's model: the writer makes the file the sim inventory pins, with the catalog's dimensions."""
from __future__ import annotations

import os

import gguf
import numpy as np

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import read_header
from tools.simlab.inputs import pinned_sha256
from tools.tiny_gguf import FIRST_PIECE, vocab, weights, write


def test_writer_reproduces_the_pinned_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "tiny.gguf")
    assert write(path) == pinned_sha256(), "tools/tiny_gguf.py changed: update llmlab_model_sha256 in the sim inventory"
    m, h = resolve_model("llmlab/tiny-llama-test"), read_header(path)
    assert (h["architecture"], h["block_count"]) == ("llama", m.layers)
    assert h["metadata"]["llama.embedding_length"] == m.hidden and h["metadata"]["llama.attention.head_count_kv"] == m.kv_heads
    # the planner's F16 weight estimate and the file agree within the header and the norms
    assert abs(os.path.getsize(path) - m.params_total_b * 1e9 * 2) / os.path.getsize(path) < 0.02


def test_every_piece_is_reachable_by_merging_two_tokens() -> None:
    """Pair-merging tokenizers (llama.cpp's SPM, distributed-llama's) only produce a piece that is two tokens joined;
    distributed-llama v0.16.4 crashes on a prompt in which no merge happens (tools/tiny_gguf.vocab)."""
    tokens, _, types = vocab(resolve_model("llmlab/tiny-llama-test").vocab)
    text = {t.decode().replace("\u2581", " ") for t, k in zip(tokens, types) if k == gguf.TokenType.NORMAL}
    singles = {chr(i) for i in range(128)}
    unreachable = [p for p in sorted(text) if len(p) > 1
                   and not any(p[:i] in text | singles and p[i:] in text | singles for i in range(1, len(p)))]
    assert unreachable == []
    merges = [p for p in text if len(p) > 1]
    assert " the" in merges and len(merges) >= 30


def test_the_model_answers_in_word_pieces_and_the_rest_of_the_draw_is_unchanged() -> None:
    """distributed-llama v0.16.4 aborts on a reply that ends inside a UTF-8 sequence or runs long on undecodable bytes
    (DEVELOPERS.md): the lab's random model gives the control and byte tokens logit 0 and the word pieces a wide spread,
    so for any final hidden state (RMS-normalised, as the output norm leaves it) the best token is a piece and the
    others are rarely sampled at distributed-llama's default temperature (0.8)."""
    m = resolve_model("llmlab/tiny-llama-test")
    tokens, _, types = vocab(m.vocab)
    w = dict(weights())
    out = w["output.weight"].astype(np.float32)
    n = FIRST_PIECE
    assert all(k != gguf.TokenType.NORMAL for k in types[:n]) and all(k == gguf.TokenType.NORMAL for k in types[n:])
    assert not out[:n].any() and out[n:].std() > 0.15
    rng = np.random.default_rng(1)
    h = rng.standard_normal((500, m.hidden))
    h /= np.sqrt((h ** 2).mean(axis=1, keepdims=True))            # RMSNorm with unit weights
    logits = h @ out.T
    assert (logits.argmax(axis=1) >= n).all()
    p = np.exp((logits - logits.max(axis=1, keepdims=True)) / 0.8)
    p /= p.sum(axis=1, keepdims=True)
    rest = p[:, :n].sum(axis=1)                                       # a control or byte token's chance per step
    assert rest.mean() < 1e-3 and rest.max() < 1e-2
    # only the output rows changed: the tensor drawn before it is the generator's plain draw
    plain = np.random.default_rng(0).standard_normal((m.vocab, m.hidden), dtype=np.float32) * 0.02
    assert np.array_equal(w["token_embd.weight"], plain.astype(np.float16))
