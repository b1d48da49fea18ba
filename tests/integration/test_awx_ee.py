"""AWX's side, offline: the config-as-code parses, and the execution environment's definition makes a build context
(`ansible-builder create`: validates the definition and writes the context without a registry)."""

from __future__ import annotations

import os
import subprocess

import yaml

from .conftest import ROOT, run


def test_the_awx_configuration_passes_syntax_check() -> None:
    res = run(["ansible-playbook", "awx/configure.yml", "--syntax-check"])
    assert res.returncode == 0, res.stdout + res.stderr


def _pins(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return dict(l.split("==") for l in (x.split("#")[0].strip() for x in fh) if "==" in l)


def test_the_execution_environment_build_context_is_created() -> None:
    res = subprocess.run(["make", "-s", "ee"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    ctx = os.path.join(ROOT, "build", "ee")
    files = [f for f in ("Containerfile", "Dockerfile") if os.path.isfile(os.path.join(ctx, f))]
    assert files, os.listdir(ctx)
    with open(os.path.join(ctx, files[0]), encoding="utf-8") as fh:
        recipe = fh.read()
    # this collection's own build goes in, and the image checks it is there
    assert os.listdir(os.path.join(ctx, "_build", "llmlab")) == ["llmlab-cluster-%s.tar.gz" % _version()]
    assert "ansible-galaxy collection list llmlab.cluster" in recipe
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"' in recipe  # AWX runs jobs with it
    with open(os.path.join(ctx, "_build", "requirements.yml"), encoding="utf-8") as fh:
        galaxy = {c["name"] for c in yaml.safe_load(fh)["collections"]}
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        assert galaxy == set(yaml.safe_load(fh)["dependencies"])  # every collection dependency, nothing else


def test_the_execution_environment_pins_what_the_tests_run_with() -> None:
    ee, dev = _pins(os.path.join(ROOT, "ee", "requirements.txt")), _pins(os.path.join(ROOT, "requirements-dev.txt"))
    assert {k: dev.get(k) for k in ee} == ee
    with open(os.path.join(ROOT, "execution-environment.yml"), encoding="utf-8") as fh:
        deps = yaml.safe_load(fh)["dependencies"]
    assert deps["ansible_core"]["package_pip"] == "ansible-core==" + dev["ansible-core"]
    assert deps["ansible_runner"]["package_pip"] == "ansible-runner==" + dev["ansible-runner"]


def _version() -> str:
    with open(os.path.join(ROOT, "galaxy.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["version"]
