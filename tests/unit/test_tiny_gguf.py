"""The lab's model: the writer makes the file the sim inventory pins, with the catalog's dimensions."""
from __future__ import annotations

import os

import gguf

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import read_header
from tools.simlab.inputs import pinned_sha256
from tools.tiny_gguf import vocab, write


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
