"""One source of truth for the variables: every llmlab_* input the roles, playbooks and plugins read is declared in
an argument spec, and README.md carries the table generated from those specs."""

from __future__ import annotations

import glob
import os
import re

from tools import spec_table

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
# names that look like inputs but are not: facts and groups the collection sets, nftables table names, a prefix
NOT_INPUTS = {"llmlab_plan", "llmlab_node", "llmlab_nodes", "llmlab_api", "llmlab_fabric", "llmlab_llamacpp_", "llmlab_dllama_",
              "llmlab_vllm_"}


def _used() -> set:
    files = glob.glob(os.path.join(ROOT, "roles", "**", "*"), recursive=True) + \
        glob.glob(os.path.join(ROOT, "playbooks", "*.yml")) + \
        glob.glob(os.path.join(ROOT, "plugins", "**", "*.py"), recursive=True)
    used = set()
    for f in files:
        if os.path.isfile(f):
            with open(f, encoding="utf-8") as fh:
                used |= set(re.findall(r"\bllmlab_[a-z0-9_]+", fh.read()))
    return used - NOT_INPUTS


def test_every_input_is_in_an_argument_spec() -> None:
    declared = set(spec_table.collect())
    missing = sorted(_used() - declared)
    assert not missing, "read but declared in no roles/*/meta/argument_specs.yml: %s" % missing
    assert not sorted(declared - _used()), "declared but read nowhere"


def test_each_input_has_one_default() -> None:
    """A variable defaulted in two roles' defaults/main.yml drifts apart (cluster_defaults holds the shared ones)."""
    seen: dict = {}
    for path in glob.glob(os.path.join(ROOT, "roles", "*", "defaults", "main.yml")):
        role = path.split(os.sep)[-3]
        with open(path, encoding="utf-8") as fh:
            for name in re.findall(r"(?m)^(llmlab_[a-z0-9_]+):", fh.read()):
                seen.setdefault(name, []).append(role)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, twice


def test_the_readme_carries_the_generated_table() -> None:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        assert spec_table.table() in fh.read(), "README.md's variable table is stale: run `make variables-table`"


def test_markup_becomes_markdown() -> None:
    assert spec_table._text(["C(auto) or", "I(none) - M(llmlab.cluster.plan)"]) == \
        "`auto` or *none* - `llmlab.cluster.plan`"
    assert spec_table._default({"default": True}) == "`true`" and spec_table._default({"required": True}) == \
        "required" and spec_table._default({"default": {"a": 1}}) == "`{a: 1}`"
