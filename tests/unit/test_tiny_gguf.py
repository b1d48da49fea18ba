"""The lab's model: the writer makes the file the sim inventory pins, with the catalog's dimensions."""
from __future__ import annotations

import os

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import read_header
from tools.simlab.inputs import pinned_sha256
from tools.tiny_gguf import write


def test_writer_reproduces_the_pinned_file(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "tiny.gguf")
    assert write(path) == pinned_sha256(), "tools/tiny_gguf.py changed: update llmlab_model_sha256 in the sim inventory"
    m, h = resolve_model("llmlab/tiny-llama-test"), read_header(path)
    assert (h["architecture"], h["block_count"]) == ("llama", m.layers)
    assert h["metadata"]["llama.embedding_length"] == m.hidden and h["metadata"]["llama.attention.head_count_kv"] == m.kv_heads
    # the planner's F16 weight estimate and the file agree within the header and the norms
    assert abs(os.path.getsize(path) - m.params_total_b * 1e9 * 2) / os.path.getsize(path) < 0.02
