"""Each backend is one room: its name appears only in its own module, its own role (and that role's playbook), the
registry that catalogs the names, and in what is not code - tests, documentation, changelogs, the inventories users
write, and the published measurements the calibration scores. Anything else that names a backend re-derives it."""

from __future__ import annotations

import os
import re

from ansible_collections.llmlab.cluster.plugins.module_utils import backends

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
SKIP_DIRS = {".git", ".venv", ".collections", ".cache", "build", ".pytest_cache", ".mypy_cache", ".hypothesis",
             "__pycache__", "artifacts"}
NOT_CODE = ("tests/", "molecule/", "docs/", "changelogs/", "inventories/", "README.md", "DEVELOPERS.md",
            "plugins/module_utils/backends/__init__.py",      # the catalog of names
            "plugins/module_utils/calibration.py",            # published measurements name what ran them
            "awx/surveys.yml")                                # generated from the argument specs: data, not code
# Lists of the names that are not code either: the plan's argument spec offers the registry's choices (for its own
# validation and the AWX surveys; tests/unit/test_awx.py keeps it equal to backends.CHOICES).
CATALOG_LINES = {("roles/plan/meta/argument_specs.yml", "choices: [auto, ")}


def _rooms(name: str) -> tuple:
    return ("plugins/module_utils/backends/%s.py" % name, "roles/%s/" % name, "playbooks/%s.yml" % name)


def test_no_backend_name_outside_its_room() -> None:
    pattern = re.compile(r"\b(%s)\b" % "|".join(backends.NAMES))
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for f in files:
            path = os.path.relpath(os.path.join(top, f), ROOT).replace(os.sep, "/")
            if path.startswith(NOT_CODE):
                continue
            try:
                with open(os.path.join(top, f), encoding="utf-8") as fh:
                    text = fh.read()
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                for m in pattern.finditer(line):
                    if not path.startswith(_rooms(m.group(1))) and \
                            not any(path == p and line.strip().startswith(c) for p, c in CATALOG_LINES):
                        found.append("%s:%d: %s" % (path, n, line.strip()))
    assert not found, "backend names outside their rooms:\n" + "\n".join(found)
