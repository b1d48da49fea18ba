"""What the lab's inventory needs besides nodes: the tiny model (a GGUF and a Hugging Face directory of the same
weights) and the Vault-encrypted secrets.

- ``.cache/models/tiny-llama-test-f16.gguf``: written by tools/tiny_gguf.py when missing or not the pinned file
  (inventories/sim/group_vars/all/model.yml pins its SHA-256; the role checks it again).
- ``.cache/models/tiny-llama-test-hf/``: written by tools/tiny_hf.py when any file is missing or not the pinned one
  (model.yml pins every file's SHA-256 in llmlab_vllm_model_sha256).
- ``.cache/models/tiny-llama-test-dllama/``: the same weights as distributed-llama's ``.m`` (q40) and ``.t``, written
  by tools/tiny_dllama.py when a file is missing or not the pinned one (``llmlab_dllama_files_sha256``).
- ``.cache/simlab/vault-pass``: the lab's Vault password (random, made once; ansible.cfg points at it).
- ``inventories/sim/group_vars/all/vault.yml``: ``vault_llmlab_api_key`` and ``vault_llmlab_ray_token``, random,
  encrypted with it, as a real inventory keeps its secrets. Both are git-ignored.
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
HF_MODEL = os.path.join(ROOT, ".cache", "models", "tiny-llama-test-hf")
DLLAMA_MODEL = os.path.join(ROOT, ".cache", "models", "tiny-llama-test-dllama")
SECRETS = ("vault_llmlab_api_key", "vault_llmlab_ray_token")
VAULT_PASS = os.path.join(ROOT, ".cache", "simlab", "vault-pass")
VAULT_FILE = os.path.join(ROOT, "inventories", "sim", "group_vars", "all", "vault.yml")


def _model_vars() -> dict:
    with open(MODEL_VARS, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def pinned_sha256() -> str:
    return str(_model_vars()["llmlab_model_sha256"])


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


def _ensure_dir(out_dir: str, pins: str, writer: Callable[[str], dict], what: str,
                log: Callable[[str], None]) -> str:
    """Write ``out_dir`` with ``writer`` unless every file the inventory pins (``pins``: a dict variable of file name
    -> SHA-256 in model.yml) is there with its checksum."""
    want = {str(k): str(v) for k, v in _model_vars()[pins].items()}
    have = {f: sha256_file(os.path.join(out_dir, f)) for f in want if os.path.exists(os.path.join(out_dir, f))}
    if have == want:
        return out_dir
    got = writer(out_dir)
    if got != want:
        raise RuntimeError("the writer made %s, the inventory pins %s: update %s in %s"
                           % (got, want, pins, os.path.relpath(MODEL_VARS, ROOT)))
    log("wrote the lab's model %s (%s)" % (os.path.relpath(out_dir, ROOT), what))
    return out_dir


def ensure_hf_model(log: Callable[[str], None]) -> str:
    from tools.tiny_hf import write  # needs safetensors + tokenizers (requirements-dev.txt)

    return _ensure_dir(HF_MODEL, "llmlab_vllm_model_sha256", write, "the GGUF's weights as a Hugging Face directory",
                       log)


def ensure_dllama_model(log: Callable[[str], None]) -> str:
    from tools.tiny_dllama import write  # numpy only

    return _ensure_dir(DLLAMA_MODEL, "llmlab_dllama_files_sha256", write,
                       "the GGUF's weights as distributed-llama's .m (q40) and .t", log)


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
        try:  # every secret there, made with this password? (a new vault-pass makes new secrets)
            for name in SECRETS:
                blob = text.split(name + ": !vault |", 1)[1].split("\nvault_", 1)[0]
                vault.decrypt("\n".join(line.strip() for line in blob.strip().splitlines()))
            return VAULT_FILE
        except Exception:  # noqa: BLE001 - any failure means: write it again
            pass
    out = ["---", "# Written by the lab (tools/simlab/inputs.py), git-ignored: the API key and Ray's token, encrypted with",
           "# the lab's Vault password (.cache/simlab/vault-pass). inventories/sim/group_vars/all/api.yml maps them to",
           "# llmlab_api_key and llmlab_ray_token."]
    for name in SECRETS:
        enc = vault.encrypt(secrets.token_hex(24)).decode()
        out.append(name + ": !vault |")
        out += ["  " + line for line in enc.splitlines()]
    with open(VAULT_FILE, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")
    log("wrote %s (a new random API key and Ray token)" % os.path.relpath(VAULT_FILE, ROOT))
    return VAULT_FILE


def ensure(log: Callable[[str], None]) -> None:
    ensure_model(log)
    ensure_hf_model(log)
    ensure_dllama_model(log)
    ensure_vault(log)
