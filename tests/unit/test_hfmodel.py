"""module_utils/hfmodel.py (the hf_model_info module's logic): a Hugging Face directory as vLLM will load it, checked
without the safetensors package, and compared with the plan's model."""
from __future__ import annotations

import json
import os
import shutil
import struct
from typing import Any, Callable, Dict

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model
from ansible_collections.llmlab.cluster.plugins.module_utils.hfmodel import HFModelError, mismatches, read_model_dir
from tools import tiny_hf

MODEL = resolve_model("llmlab/tiny-llama-test")


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: Any) -> Dict[str, Any]:
    path = str(tmp_path_factory.mktemp("hf"))
    return {"path": path, "sha256": tiny_hf.write(path)}


def test_the_lab_directory_is_read_as_vllm_would(lab_dir: Dict[str, Any]) -> None:
    info = read_model_dir(lab_dir["path"], lab_dir["sha256"])
    assert (info["architecture"], info["layers"], info["heads"], info["kv_heads"], info["hidden"]) == \
        ("LlamaForCausalLM", MODEL.layers, MODEL.heads, MODEL.kv_heads, MODEL.hidden)
    assert info["files"] == ["model.safetensors"] and info["tensor_count"] == 9 * MODEL.layers + 3
    assert abs(info["size"] - MODEL.params_total_b * 1e9 * 2) / info["size"] < 0.02   # F16, as the planner counts
    assert info["tokenizer"] and sorted(info["sha256"]) == sorted(lab_dir["sha256"])
    assert mismatches(info, MODEL.as_dict()) == []


def _truncate(d: str) -> None:
    p = os.path.join(d, "model.safetensors")
    with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) - 10)


def _not_safetensors(d: str) -> None:
    with open(os.path.join(d, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", 1 << 40) + b"{}")


def _index_names_a_missing_shard(d: str) -> None:
    with open(os.path.join(d, "model.safetensors.index.json"), "w", encoding="utf-8") as fh:
        json.dump({"weight_map": {"a": "model.safetensors", "b": "model-00002-of-00002.safetensors"}}, fh)


def _no_config(d: str) -> None:
    os.remove(os.path.join(d, "config.json"))


def _no_weights(d: str) -> None:
    os.remove(os.path.join(d, "model.safetensors"))


@pytest.mark.parametrize("damage, words", [
    (_truncate, "is truncated"),
    (_not_safetensors, "is not a safetensors file"),
    (_index_names_a_missing_shard, "model-00002-of-00002.safetensors"),
    (_no_config, "has no config.json"),
    (_no_weights, "has no safetensors weights"),
])
def test_a_damaged_directory_is_named_with_what_is_wrong(lab_dir: Dict[str, Any], tmp_path: Any,
                                                         damage: Callable[[str], None], words: str) -> None:
    d = os.path.join(str(tmp_path), "m")
    shutil.copytree(lab_dir["path"], d)
    damage(d)
    with pytest.raises(HFModelError) as err:
        read_model_dir(d)
    assert words in str(err.value)


def test_a_checksum_that_differs_names_the_file(lab_dir: Dict[str, Any]) -> None:
    with pytest.raises(HFModelError) as err:
        read_model_dir(lab_dir["path"], {"config.json": "0" * 64})
    assert "config.json" in str(err.value) and "expected " + "0" * 64 in str(err.value)
    with pytest.raises(HFModelError) as err:
        read_model_dir(lab_dir["path"], {"model-00001.safetensors": "0" * 64})
    assert "is listed with a checksum but is not in" in str(err.value)


def test_another_model_is_named_by_what_differs(lab_dir: Dict[str, Any]) -> None:
    info = read_model_dir(lab_dir["path"])
    other = resolve_model("meta-llama/Llama-3.1-8B-Instruct").as_dict()
    wrong = mismatches(info, other)
    assert "layers %d, the plan's model has 32" % MODEL.layers in wrong
    assert any(w.startswith("hidden size") for w in wrong)
    assert mismatches(dict(info, tokenizer=False), MODEL.as_dict()) == ["no tokenizer (tokenizer.json or tokenizer.model)"]
