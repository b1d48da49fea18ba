"""Make the checkout importable as ansible_collections.llmlab.cluster (the layout Ansible itself uses)."""

from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "llmlab", "cluster")

if not os.path.exists(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(os.path.relpath(ROOT, os.path.dirname(LINK)), LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
if ROOT not in sys.path:  # tools.simlab, the lab's own code
    sys.path.insert(0, ROOT)

from hypothesis import settings as _hyp_settings  # noqa: E402

# CI explores the same examples every run (no flaky red builds); developers' runs explore new ones.
_hyp_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    _hyp_settings.load_profile("ci")
