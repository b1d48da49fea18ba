# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How much memory a service's processes hold, from /proc: every process under a root PID (the unit's main process,
or a container's first process), with its resident set now (VmRSS) and its peak (VmHWM, the high-water mark).

Plain Python; ``proc`` is the procfs mount so that tests can point it at a directory."""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Optional


def parse_status(text: str) -> Dict[str, int]:
    """``/proc/<pid>/status`` -> ``{rss_kb, peak_rss_kb}`` (0 for a kernel thread or a zombie, which have none)."""
    out = {"rss_kb": 0, "peak_rss_kb": 0}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM") and value.split():
            out["rss_kb" if key == "VmRSS" else "peak_rss_kb"] = int(value.split()[0])
    return out


def parse_ppid(stat: str) -> Optional[int]:
    """The parent PID from ``/proc/<pid>/stat``, whose second field (the command) may hold spaces and parentheses."""
    rest = stat[stat.rfind(")") + 2:].split()
    return int(rest[1]) if len(rest) > 1 else None


def descendants(parents: Mapping[int, Optional[int]], roots: Iterable[int]) -> List[int]:
    """The roots that exist and every process below them, sorted."""
    children: Dict[int, List[int]] = {}
    for pid, ppid in parents.items():
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    seen = set()
    todo = [r for r in roots if r in parents]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return sorted(seen)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:   # the process ended while we read
        return ""


def process_table(proc: str = "/proc") -> Dict[int, Optional[int]]:
    """pid -> parent pid of every process now."""
    table: Dict[int, Optional[int]] = {}
    for name in os.listdir(proc):
        if name.isdigit():
            stat = _read(os.path.join(proc, name, "stat"))
            if stat:
                table[int(name)] = parse_ppid(stat)
    return table


def tree_memory(roots: Iterable[int], proc: str = "/proc") -> Dict[str, object]:
    """``{pids, rss_mb, peak_rss_mb}`` of the roots and their descendants. ``peak_rss_mb`` sums each process's own
    peak: an upper bound of the tree's peak (the processes need not have peaked at the same moment)."""
    pids = descendants(process_table(proc), [r for r in roots if r])
    rss = peak = 0
    for pid in pids:
        s = parse_status(_read(os.path.join(proc, str(pid), "status")))
        rss += s["rss_kb"]
        peak += s["peak_rss_kb"]
    return {"pids": pids, "rss_mb": round(rss / 1024.0, 1), "peak_rss_mb": round(peak / 1024.0, 1)}
