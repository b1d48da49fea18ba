"""The llama.cpp build plan: which nodes share a build, what CMake is told, and what is refused."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import build_id
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.llamacpp_rpc import (
    cluster_builds, cmake_flags, plan_builds)

SOURCE = {"version": "0c1e570", "source_id": "archive:0c1e570"}


def node(name: str, accel: str = "cuda", arch: str = "aarch64", **kw: Any) -> Dict[str, Any]:
    return dict({"name": name, "accelerator": accel, "arch": arch, "os": "ubuntu-24.04", "cmake_flags": [],
                 "version": "0c1e570", "source_id": "archive:0c1e570"}, **kw)


@pytest.mark.parametrize("accel, must_have", [
    ("cuda", ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=121a-real"]),
    ("rocm", ["-DGGML_HIP=ON", "-DGPU_TARGETS=gfx1151"]),
    ("vulkan", ["-DGGML_VULKAN=ON"]),
    ("cpu", []),
])
def test_flags_per_accelerator_always_with_rpc(accel: str, must_have: List[str]) -> None:
    flags = cmake_flags(accel)
    assert "-DGGML_RPC=ON" in flags and "-DBUILD_SHARED_LIBS=OFF" in flags
    assert all(f in flags for f in must_have)
    assert not any("CUDA" in f or "HIP" in f or "VULKAN" in f for f in flags) if accel == "cpu" else True


def test_identical_boxes_share_one_build_made_on_the_first() -> None:
    out = plan_builds([node("gx10-a"), node("gx10-b"), node("gx10-c")], SOURCE)
    assert len(out["builds"]) == 1
    (bid, b), = out["builds"].items()
    assert b["builder"] == "gx10-a" and b["hosts"] == ["gx10-a", "gx10-b", "gx10-c"]
    assert set(out["hosts"].values()) == {bid}


def test_mixed_cluster_gets_one_build_per_kind() -> None:
    nodes = [node("gx10-a"), node("fw-1", "vulkan", "x86_64", os="fedora-42"), node("gx10-b"),
             node("fw-2", "vulkan", "x86_64", os="fedora-42")]
    out = plan_builds(nodes, SOURCE)
    assert sorted(b["builder"] for b in out["builds"].values()) == ["fw-1", "gx10-a"]
    assert out["hosts"]["gx10-b"] == out["hosts"]["gx10-a"] != out["hosts"]["fw-2"]


@pytest.mark.parametrize("change", [
    {"cmake_flags": ["-DGGML_CUDA_FA_ALL_QUANTS=ON"]}, {"arch": "x86_64"}, {"os": "ubuntu-22.04"},
    {"accelerator": "cpu"},
])
def test_anything_that_changes_the_binaries_changes_the_id(change: Dict[str, Any]) -> None:
    base = plan_builds([node("a")], SOURCE)["hosts"]["a"]
    assert plan_builds([node("a", **change)], SOURCE)["hosts"]["a"] != base


def test_version_is_part_of_the_id() -> None:
    other = {"version": "b9999", "source_id": "archive:b9999"}
    assert plan_builds([node("a", **other)], other)["hosts"]["a"] != plan_builds([node("a")], SOURCE)["hosts"]["a"]
    assert build_id({"x": 1}) == build_id({"x": 1}) and len(build_id({"x": 1})) == 16


@pytest.mark.parametrize("key, value, variable", [
    ("version", "b6000", "llmlab_llamacpp_version"),
    ("source_id", "git:0c1e570", "llmlab_llamacpp_source"),
])
def test_a_worker_on_another_build_is_refused_by_name(key: str, value: str, variable: str) -> None:
    with pytest.raises(PlanError) as e:
        plan_builds([node("head"), node("w1"), node("w2", **{key: value})], SOURCE)
    assert e.value.host == "w2" and e.value.variable == variable and "same build" in str(e.value)


def test_bad_accelerator_and_bad_extra_flag_are_named() -> None:
    with pytest.raises(PlanError) as e:
        cmake_flags("metal", host="mac")
    assert e.value.variable == "llmlab_llamacpp_accelerator" and e.value.host == "mac"
    with pytest.raises(PlanError) as e:
        cmake_flags("cpu", ["GGML_AVX512=ON"])
    assert e.value.variable == "llmlab_llamacpp_cmake_flags"


def test_cluster_builds_reads_the_inventory_and_the_facts() -> None:
    plan = {"nodes_used": ["node1", "node2", "node3"]}
    facts = {"arch": "x86_64", "os": {"id": "debian", "version_id": "12"}}
    hv = {n: {"llmlab_profile": "sim", "llmlab_node": facts} for n in plan["nodes_used"]}
    defaults = {"version": "0c1e570", "source": "archive", "cmake_flags": [], "accelerator": ""}
    out = cluster_builds(plan, hv, defaults)
    (b,) = out["builds"].values()
    assert b["inputs"]["arch"] == "x86_64" and b["inputs"]["os"] == "debian-12" and b["builder"] == "node1"
    assert not any("CUDA" in f for f in b["flags"])          # the sim profile builds for the CPU
    hv["node3"]["llmlab_llamacpp_version"] = "b6000"        # host_vars pin another version on one worker
    with pytest.raises(PlanError) as e:
        cluster_builds(plan, hv, defaults)
    assert e.value.host == "node3"
