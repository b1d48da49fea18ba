# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a Hugging Face model directory as vLLM will load it: ``config.json``, the safetensors files (one file or
shards listed by ``model.safetensors.index.json``) and their headers, and the tokenizer.

Runs on the nodes with the standard library only (the ``safetensors`` package is not there): a safetensors file is an
8-byte little-endian header length, a JSON header of tensor names -> dtype, shape and byte offsets, then the data.
Fails with the file and what is wrong: a missing config or shard, a damaged header, data shorter than the header
says, a checksum that differs.
"""
from __future__ import annotations

import json
import os
import struct
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file

INDEX = "model.safetensors.index.json"
_MAX_HEADER = 100 * 1024 * 1024


class HFModelError(ValueError):
    """Not a model directory vLLM can load, or a damaged one."""


def read_safetensors_header(path: str) -> Dict[str, Any]:
    """Tensor name -> {dtype, shape, data_offsets}; checks the data is as long as the header says."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) != 8:
            raise HFModelError("%s is too short to be a safetensors file" % path)
        n = struct.unpack("<Q", head)[0]
        if n > min(_MAX_HEADER, size - 8):
            raise HFModelError("%s is not a safetensors file (header length %d)" % (path, n))
        try:
            header = json.loads(fh.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise HFModelError("%s has a damaged safetensors header: %s" % (path, e))
    if not isinstance(header, dict):
        raise HFModelError("%s has a damaged safetensors header" % path)
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    if 8 + n + end > size:
        raise HFModelError("%s is truncated: its header describes %d bytes of data, the file holds %d"
                           % (path, end, size - 8 - n))
    return tensors


def weight_files(path: str) -> List[str]:
    """The safetensors files vLLM loads: the index's shards, or the directory's ``*.safetensors``."""
    index = os.path.join(path, INDEX)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as fh:
            shards = sorted(set((json.load(fh).get("weight_map") or {}).values()))
        missing = [s for s in shards if not os.path.isfile(os.path.join(path, s))]
        if missing:
            raise HFModelError("%s lists shards that are not in %s: %s" % (INDEX, path, ", ".join(missing)))
        return shards
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    if not files:
        raise HFModelError("%s has no safetensors weights (vLLM loads *.safetensors)" % path)
    return files


def read_model_dir(path: str, sha256: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """What the directory holds, checked: the config's dimensions, the weights' files, tensors and bytes, whether a
    tokenizer is there, and (when ``sha256`` maps file names to checksums) every listed file's checksum."""
    if not os.path.isdir(path):
        raise HFModelError("model directory %s does not exist" % path)
    cfg_path = os.path.join(path, "config.json")
    if not os.path.isfile(cfg_path):
        raise HFModelError("%s has no config.json" % path)
    try:
        with open(cfg_path, encoding="utf-8") as fh:
            cfg = json.load(fh)
    except ValueError as e:
        raise HFModelError("%s is not JSON: %s" % (cfg_path, e))
    text = cfg.get("text_config") or cfg            # multimodal configs keep the language model's inside
    files = weight_files(path)
    tensors = 0
    data = 0
    for f in files:
        header = read_safetensors_header(os.path.join(path, f))
        tensors += len(header)
        data += sum(int(v["data_offsets"][1]) - int(v["data_offsets"][0]) for v in header.values())
    checked: Dict[str, str] = {}
    for name, want in sorted((sha256 or {}).items()):
        p = os.path.join(path, name)
        if not os.path.isfile(p):
            raise HFModelError("%s is listed with a checksum but is not in %s" % (name, path))
        got = sha256_file(p)
        if got != str(want).strip().lower():
            raise HFModelError("%s in %s has SHA-256 %s, expected %s: a partial copy or another file"
                               % (name, path, got, want))
        checked[name] = got
    heads = text.get("num_attention_heads")
    return {
        "architecture": (cfg.get("architectures") or ["unknown"])[0],
        "model_type": cfg.get("model_type"),
        "layers": text.get("num_hidden_layers"),
        "heads": heads,
        "kv_heads": text.get("num_key_value_heads") or heads,
        "hidden": text.get("hidden_size"),
        "vocab": text.get("vocab_size"),
        "dtype": text.get("torch_dtype") or text.get("dtype"),
        "files": files,
        "tensor_count": tensors,
        "size": data,
        "tokenizer": any(os.path.isfile(os.path.join(path, t)) for t in ("tokenizer.json", "tokenizer.model")),
        "sha256": checked,
    }


def mismatches(info: Mapping[str, Any], model: Mapping[str, Any]) -> List[str]:
    """How the directory differs from the plan's model (``architecture``, ``layers``, ``heads``, ``kv_heads``,
    ``hidden``), in words; empty when it is the planned model."""
    out = []
    for key, words in (("architecture", "architecture"), ("layers", "layers"), ("heads", "attention heads"),
                       ("kv_heads", "KV heads"), ("hidden", "hidden size")):
        if model.get(key) is not None and info.get(key) != model.get(key):
            out.append("%s %s, the plan's model has %s" % (words, info.get(key), model.get(key)))
    if not info.get("tokenizer"):
        out.append("no tokenizer (tokenizer.json or tokenizer.model)")
    return out
