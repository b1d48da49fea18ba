"""The GGUF header reader the nodes use, against files the gguf package writes."""
from __future__ import annotations

import os
import struct

import gguf
import numpy as np
import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import GGUFError, read_header


def _write(path: str, layers: int = 3) -> None:
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(layers)
    w.add_name("t")
    w.add_token_list([b"a"] * 100)               # a long array: skipped, not returned
    w.add_tensor("x", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_reads_what_gguf_writes(tmp_path: object) -> None:
    p = os.path.join(str(tmp_path), "m.gguf")
    _write(p, layers=7)
    h = read_header(p)
    assert (h["architecture"], h["block_count"], h["name"], h["tensor_count"], h["version"]) == ("llama", 7, "t", 1, 3)
    assert h["metadata"]["tokenizer.ggml.tokens"] == {"type": 8, "length": 100} or \
        h["metadata"]["tokenizer.ggml.tokens"]["length"] == 100


@pytest.mark.parametrize("content, words", [
    (b"<html>not a model</html>", "not a GGUF"),
    (b"GGUF" + struct.pack("<I", 1), "version 1"),
    (b"GGUF" + struct.pack("<IQQ", 3, 1, 5), "ends inside"),
    (b"", "not a GGUF"),
])
def test_refuses_what_is_not_a_gguf(tmp_path: object, content: bytes, words: str) -> None:
    p = os.path.join(str(tmp_path), "bad.gguf")
    with open(p, "wb") as f:
        f.write(content)
    with pytest.raises(GGUFError, match=words):
        read_header(p)
