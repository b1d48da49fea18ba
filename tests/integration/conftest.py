"""Helpers to run the real ansible tools from the venv the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Optional

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def run(args: List[str], cwd: str = ROOT, env: Optional[Dict[str, str]] = None,
        timeout: int = 300) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.setdefault("ANSIBLE_CONFIG", os.path.join(ROOT, "ansible.cfg"))
    full_env["ANSIBLE_NOCOLOR"] = "1"
    full_env["ANSIBLE_FORCE_COLOR"] = "0"
    full_env.update(env or {})
    cmd = [os.path.join(BIN, args[0])] + args[1:]
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def installed_collection(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the collection tarball and install it into a fresh collections path; return that path."""
    tmp = tmp_path_factory.mktemp("galaxy")
    build = run(["ansible-galaxy", "collection", "build", "--output-path", str(tmp), ROOT])
    assert build.returncode == 0, build.stdout + build.stderr
    tarballs = [f for f in os.listdir(tmp) if f.startswith("llmlab-cluster-") and f.endswith(".tar.gz")]
    assert len(tarballs) == 1, tarballs
    dest = tmp / "collections"
    # --offline: the dependencies are satisfied by the collections the `ansible` package ships; Galaxy is not
    # reachable from the lab machines.
    inst = run(["ansible-galaxy", "collection", "install", "--offline", "--force", "-p", str(dest), str(tmp / tarballs[0])])
    assert inst.returncode == 0, inst.stdout + inst.stderr
    assert os.path.isfile(dest / "ansible_collections" / "llmlab" / "cluster" / "MANIFEST.json")
    return str(dest)
