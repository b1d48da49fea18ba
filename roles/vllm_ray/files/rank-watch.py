#!/usr/bin/env python3
# llmlab.cluster vllm_ray role: the command of every headless vLLM rank (vLLM's own multi-node mode, executor mp).
"""Run a headless vLLM rank and end it when its group breaks.

A headless rank does not notice that its group is gone: when another rank or the head dies, vLLM's engine on the head
exits and systemd starts it again, but every surviving rank logs the lost gloo peer and keeps waiting on the old
head's queue, so the new head waits for ranks that never come. This wrapper starts the rank's command, and once the
head's torch.distributed store (``HOST:PORT``, vLLM's ``--master-addr``/``--master-port``) has answered, checks it
every few seconds; when it stops answering twice in a row, the head has gone away: the rank is stopped and the
wrapper exits non-zero, so that systemd starts it again and it joins the head's new group. Signals are passed on to
the rank (``docker stop``).

Usage: rank-watch.py HOST:PORT -- COMMAND [ARGS...]   (interval: LLMLAB_RANK_WATCH_INTERVAL seconds, default 3)
"""

import os
import signal
import socket
import subprocess
import sys


def answers(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write(__doc__)
        return 2
    host, port = argv[0].rsplit(":", 1)
    interval = float(os.environ.get("LLMLAB_RANK_WATCH_INTERVAL", "3"))
    proc = subprocess.Popen(argv[2:])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    seen, misses = False, 0
    while True:
        try:
            return proc.wait(timeout=interval)   # the rank ended (or was killed): so does its container, at once
        except subprocess.TimeoutExpired:
            pass
        if answers(host, int(port)):
            seen, misses = True, 0
        elif seen:
            misses += 1
        if misses >= 2:
            print("llmlab rank-watch: the head's torch.distributed store %s:%s stopped answering: this rank's group "
                  "is broken; stopping the rank so that systemd starts it again" % (host, port), flush=True)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
