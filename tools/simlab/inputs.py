"""What the lab's inventory needs besides nodes: the tiny model file and the Vault-encrypted API key.

- ``.cache/models/tiny-llama-test-f16.gguf``: written by tools/tiny_gguf.py when missing or not the pinned file
  (inventories/sim/group_vars/all/model.yml pins its SHA-256; the role checks it again).
- ``.cache/simlab/vault-pass``: the lab's Vault password (random, made once; ansible.cfg points at it).
- ``inventories/sim/group_vars/all/vault.yml``: ``vault_llmlab_api_key``, a random key encrypted with it, as a real
  inventory keeps its secrets. Both are git-ignored.
"""
from __future__ import annotations

import os
import secrets
import sys
from typing import Callable

import yaml

from .spec import ROOT

sys.path.insert(0, os.path.join(ROOT, ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file  # noqa: E402

MODEL_VARS = os.path.join(ROOT, "inventories", "sim", "group_vars", "all", "model.yml")
MODEL = os.path.join(ROOT, ".cache", "models", "tiny-llama-test-f16.gguf")
VAULT_PASS = os.path.join(ROOT, ".cache", "simlab", "vault-pass")
VAULT_FILE = os.path.join(ROOT, "inventories", "sim", "group_vars", "all", "vault.yml")


def pinned_sha256() -> str:
    with open(MODEL_VARS, encoding="utf-8") as fh:
        return str(yaml.safe_load(fh)["llmlab_model_sha256"])


def ensure_model(log: Callable[[str], None]) -> str:
    want = pinned_sha256()
    if os.path.exists(MODEL) and sha256_file(MODEL) == want:
        return MODEL
    from tools.tiny_gguf import write  # needs gguf + numpy (requirements-dev.txt)

    os.makedirs(os.path.dirname(MODEL), exist_ok=True)
    got = write(MODEL + ".part")
    if got != want:
        os.unlink(MODEL + ".part")
        raise RuntimeError("tools/tiny_gguf.py wrote %s, the inventory pins %s: update llmlab_model_sha256 in %s"
                           % (got, want, os.path.relpath(MODEL_VARS, ROOT)))
    os.replace(MODEL + ".part", MODEL)
    log("wrote the lab's model %s (sha256 %s)" % (os.path.relpath(MODEL, ROOT), got[:12]))
    return MODEL


def ensure_vault_pass() -> str:
    if not os.path.exists(VAULT_PASS):
        os.makedirs(os.path.dirname(VAULT_PASS), exist_ok=True)
        fd = os.open(VAULT_PASS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    return VAULT_PASS


def ensure_vault(log: Callable[[str], None]) -> str:
    from ansible.constants import DEFAULT_VAULT_ID_MATCH
    from ansible.parsing.vault import VaultLib, VaultSecret

    with open(ensure_vault_pass(), "rb") as fh:
        secret = VaultSecret(fh.read().strip())
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, secret)])
    if os.path.exists(VAULT_FILE):
        with open(VAULT_FILE, encoding="utf-8") as fh:
            text = fh.read()
        try:  # made with this password? (a new vault-pass makes a new key)
            blob = text.split("!vault |", 1)[1]
            vault.decrypt("\n".join(line.strip() for line in blob.strip().splitlines()))
            return VAULT_FILE
        except Exception:  # noqa: BLE001 - any failure means: write it again
            pass
    enc = vault.encrypt(secrets.token_hex(24)).decode()
    body = "\n".join("  " + line for line in enc.splitlines())
    with open(VAULT_FILE, "w", encoding="utf-8") as fh:
        fh.write("---\n# Written by the lab (tools/simlab/inputs.py), git-ignored: the API key, encrypted with the lab's Vault\n"
                 "# password (.cache/simlab/vault-pass). inventories/sim/group_vars/all/api.yml maps it to llmlab_api_key.\n"
                 "vault_llmlab_api_key: !vault |\n" + body + "\n")
    log("wrote %s (a new random API key)" % os.path.relpath(VAULT_FILE, ROOT))
    return VAULT_FILE


def ensure(log: Callable[[str], None]) -> None:
    ensure_model(log)
    ensure_vault(log)
