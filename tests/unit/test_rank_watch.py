"""The vLLM role's rank watchdog (roles/vllm_ray/files/rank-watch.py), run for real on loopback: it runs its command,
ends it when the store it watches stops answering after having answered, passes the command's exit code on, and
does not end a rank whose head has not come up yet."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WATCH = os.path.join(ROOT, "roles", "vllm_ray", "files", "rank-watch.py")
ENV = dict(os.environ, LLMLAB_RANK_WATCH_INTERVAL="0.2")


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def _watch(port: int, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, WATCH, "127.0.0.1:%d" % port, "--"] + list(cmd), env=ENV,
                            stdout=subprocess.PIPE, text=True)


def test_the_rank_ends_when_the_store_it_saw_goes_away() -> None:
    store = _listener()
    port = store.getsockname()[1]
    proc = _watch(port, "sleep", "60")
    time.sleep(1.0)                 # the store answered: the watch is armed
    assert proc.poll() is None
    store.close()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "stopped answering" in out


def test_a_rank_whose_head_is_not_up_yet_keeps_waiting_and_its_exit_code_is_passed_on() -> None:
    store = _listener()
    port = store.getsockname()[1]
    store.close()                   # nothing answers there, and nothing ever did
    proc = _watch(port, sys.executable, "-c", "import time, sys; time.sleep(1.5); sys.exit(7)")
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 7 and "stopped answering" not in out


def test_a_rank_that_dies_ends_its_watch_at_once_not_at_the_next_check() -> None:
    store = _listener()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, WATCH, "127.0.0.1:%d" % store.getsockname()[1], "--", "sh", "-c",
                             "sleep 0.3; kill -9 $$"], env=dict(os.environ, LLMLAB_RANK_WATCH_INTERVAL="30"))
    assert proc.wait(timeout=10) != 0
    assert time.monotonic() - start < 5
    store.close()


def test_a_bad_call_says_how_to_call_it() -> None:
    res = subprocess.run([sys.executable, WATCH, "127.0.0.1:1"], capture_output=True, text=True, timeout=10)
    assert res.returncode == 2 and "Usage: rank-watch.py HOST:PORT -- COMMAND" in res.stderr
