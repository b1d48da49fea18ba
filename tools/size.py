"""Which clusters hold a model and serve it fast enough: ``python -m tools.size MODEL --quant Q --context N --users U
--tok-s T [--profile P ...] [--price PROFILE=USD ...] [--max-nodes N]``. Without a model it answers the two questions
of the README (a 9B model on one GPU; Sparks for Qwen3-235B at 20 tok/s for 8 users)."""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

sys.path.insert(0, ".collections")

from ansible_collections.llmlab.cluster.plugins.module_utils import sizing  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError  # noqa: E402

QUESTIONS = [
    ("Is a 9B model enough on my GPU? (one user, 8k context, 30 tok/s)",
     dict(model="google/gemma-2-9b-it", quant="q4_k_m", context_tokens=8192, users=1, tok_s_per_user=30.0)),
    ("How many Sparks for Qwen3-235B-A22B at 20 tok/s for 8 users? (AWQ, 8k context each)",
     dict(model="Qwen/Qwen3-235B-A22B", quant="awq", context_tokens=8192, users=8, tok_s_per_user=20.0)),
]


def _prices(items: List[str]) -> Dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise SystemExit("--price takes PROFILE=USD, got %r" % item)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.size", description=__doc__)
    ap.add_argument("model", nargs="?", help="catalog id or alias, or a config.json path")
    ap.add_argument("--quant", default="q4_k_m")
    ap.add_argument("--context", type=int, default=8192, help="tokens of context per user")
    ap.add_argument("--users", type=int, default=1, help="concurrent sequences")
    ap.add_argument("--tok-s", type=float, default=20.0, help="decode tok/s each user needs")
    ap.add_argument("--profile", action="append", help="only these profiles (default: %s)"
                    % ", ".join(sizing.SIZED_PROFILES))
    ap.add_argument("--price", action="append", default=[], help="PROFILE=USD per node: list cheapest first")
    ap.add_argument("--max-nodes", type=int, default=sizing.MAX_NODES)
    a = ap.parse_args(argv)
    if a.model:
        asks = [(None, dict(model=a.model, quant=a.quant, context_tokens=a.context, users=a.users,
                            tok_s_per_user=a.tok_s))]
    else:
        asks = QUESTIONS
    for title, ask in asks:
        try:
            result = sizing.size(profiles=a.profile, max_nodes=a.max_nodes, prices=_prices(a.price), **ask)
        except PlanError as exc:
            print("error: %s" % exc, file=sys.stderr)
            return 2
        if title:
            print("## %s\n" % title)
        print(sizing.markdown(result))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
