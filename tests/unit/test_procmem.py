"""Memory of a process tree from /proc: the parsers table-driven, the tree walk against this machine's real /proc."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.llmlab.cluster.plugins.module_utils import procmem


@pytest.mark.parametrize("text, want", [
    ("Name:\tpython3\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n", {"rss_kb": 10240, "peak_rss_kb": 20480}),
    ("Name:\tkthreadd\nState:\tS (sleeping)\n", {"rss_kb": 0, "peak_rss_kb": 0}),   # kernel thread: no Vm lines
    ("", {"rss_kb": 0, "peak_rss_kb": 0}),                                          # ended while read
])
def test_status(text: str, want: dict) -> None:
    assert procmem.parse_status(text) == want


@pytest.mark.parametrize("stat, ppid", [
    ("812 (python3) S 1 812 812 0 -1", 1),
    ("901 (vllm (rank) 1) R 812 901 812 0 -1", 812),      # a command with spaces and parentheses
    ("7 (x)", None),
])
def test_ppid(stat: str, ppid: object) -> None:
    assert procmem.parse_ppid(stat) == ppid


def test_descendants_walks_the_tree_from_the_roots_only() -> None:
    parents = {1: 0, 10: 1, 11: 10, 12: 11, 20: 1, 21: 20, 30: None}
    assert procmem.descendants(parents, [10]) == [10, 11, 12]
    assert procmem.descendants(parents, [10, 21, 99]) == [10, 11, 12, 21]   # 99 does not exist
    assert procmem.descendants(parents, []) == []


def test_tree_memory_of_a_real_child_that_holds_memory() -> None:
    """A child that touches 64 MiB, under a parent: both found, the child's peak counted."""
    code = "import sys, time; b = bytearray(64 << 20); sys.stdout.write('ready\\n'); sys.stdout.flush(); time.sleep(30)"
    parent = subprocess.Popen(["/bin/sh", "-c", "%s -c \"%s\"; :" % (sys.executable, code)], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"ready\n"
        got = procmem.tree_memory([parent.pid])
        assert parent.pid in got["pids"] and len(got["pids"]) == 2
        assert got["peak_rss_mb"] >= 64 and got["rss_mb"] >= 64
        assert os.getpid() not in got["pids"]
        assert procmem.tree_memory([0]) == {"pids": [], "rss_mb": 0.0, "peak_rss_mb": 0.0}
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
