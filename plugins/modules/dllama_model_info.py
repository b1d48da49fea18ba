#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dllama_model_info
short_description: Check a distributed-llama model (.m) and tokenizer (.t) against their checksums and the plan
version_added: "0.5.0"
description:
  - Reads, and never changes, a distributed-llama C(.m) model file and optionally its C(.t) tokenizer. Fails when a
    file is missing, is not in distributed-llama's format, has another SHA-256 than the one given, holds more or
    fewer bytes than its header describes, or cannot run on I(nodes) nodes (power of two, not above the KV heads,
    heads/KV dimension/vocabulary/feed-forward dimension divisible, q40 slices of whole 32-value blocks), or is not
    the plan's model (I(plan_model)) and quantization (I(quant)). Every problem is named at once.
  - distributed-llama itself finds most of these only after the workers have started, with an assertion (SIGABRT)
    or a refusal to load; this module lets preflight refuse them before any service is touched.
  - Needs no Python packages beyond the standard library (it runs on the controller or the nodes).
author:
  - llmlab.cluster contributors
extends_documentation_fragment:
  - llmlab.cluster.read_only
options:
  model:
    description: The C(.m) file.
    type: path
    required: true
  model_sha256:
    description: Its expected SHA-256 (hex). When given, a different checksum fails the task.
    type: str
  tokenizer:
    description: The C(.t) file. Its vocabulary must have the model's size.
    type: path
  tokenizer_sha256:
    description: Its expected SHA-256 (hex).
    type: str
  nodes:
    description: The number of nodes that will split the model (the plan's tensor-parallel size).
    type: int
  plan_model:
    description: The plan's model (C(llmlab_plan.plan.model)); its layers, heads, KV heads, hidden size and
      vocabulary must be the file's.
    type: dict
  quant:
    description: The plan's quantization (C(q4_0) loads q40 weights, C(f32) f32).
    type: str
"""

EXAMPLES = r"""
- name: The model and tokenizer are the plan's, for the plan's node count
  llmlab.cluster.dllama_model_info:
    model: /srv/models/dllama_model_llama3_1_405b_instruct_q40.m
    model_sha256: "{{ llmlab_dllama_model_sha256 }}"
    tokenizer: /srv/models/dllama_tokenizer_llama3_1_405b_instruct.t
    tokenizer_sha256: "{{ llmlab_dllama_tokenizer_sha256 }}"
    nodes: "{{ llmlab_plan.plan.tensor_parallel }}"
    plan_model: "{{ llmlab_plan.plan.model }}"
    quant: "{{ llmlab_plan.plan.quant }}"
  delegate_to: localhost
"""

RETURN = r"""
header:
  description: The C(.m) header - C(architecture), C(dim), C(hidden_dim), C(n_layers), C(n_heads), C(n_kv_heads),
    C(head_dim), C(n_experts), C(vocab_size), C(max_seq_len), C(weight_type), C(norm_epsilon), C(file_size),
    C(expected_size).
  returned: success
  type: dict
sha256:
  description: The model file's SHA-256.
  returned: success
  type: str
tokenizer:
  description: The C(.t) header (C(vocab_size), C(bos_id), C(eos_ids), C(chat_template), C(sha256)) when a
    tokenizer was given.
  returned: success
  type: dict
problems:
  description: Every reason the files cannot run as planned (empty on success; the task fails otherwise).
  returned: always
  type: list
  elements: str
"""

import os
from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmlab.cluster.plugins.module_utils.dllama import (
    DllamaFormatError, model_problems, read_model_header, read_tokenizer_header)
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file


def _checked(module: AnsibleModule, path: str, want: Optional[str], what: str, variable: str) -> str:
    if not os.path.isfile(path):
        module.fail_json(msg="%s %s does not exist [%s]" % (what, path, variable), problems=["missing"])
    digest = sha256_file(path)
    if want and digest != want.strip().lower():
        module.fail_json(msg="%s %s has SHA-256 %s, expected %s [%s]: a partial download or another file"
                             % (what, path, digest, want, variable), sha256=digest, problems=["checksum"])
    return digest


def main() -> None:
    module = AnsibleModule(argument_spec=dict(
        model=dict(type="path", required=True), model_sha256=dict(type="str"),
        tokenizer=dict(type="path"), tokenizer_sha256=dict(type="str"),
        nodes=dict(type="int"), plan_model=dict(type="dict"), quant=dict(type="str"),
    ), supports_check_mode=True)
    p = module.params
    digest = _checked(module, p["model"], p["model_sha256"], "model file", "llmlab_dllama_model_sha256")
    try:
        header = read_model_header(p["model"])
    except (DllamaFormatError, OSError) as e:
        module.fail_json(msg="model file %s: %s" % (p["model"], e), problems=[str(e)])
    problems: List[str] = model_problems(header, p["nodes"] or 1, p["plan_model"], p["quant"])
    tok: Optional[Dict[str, Any]] = None
    if p["tokenizer"]:
        tdigest = _checked(module, p["tokenizer"], p["tokenizer_sha256"], "tokenizer file",
                           "llmlab_dllama_tokenizer_sha256")
        try:
            tok = dict(read_tokenizer_header(p["tokenizer"]), sha256=tdigest)
        except (DllamaFormatError, OSError) as e:
            module.fail_json(msg="tokenizer file %s: %s" % (p["tokenizer"], e), problems=[str(e)])
        if tok["vocab_size"] != header["vocab_size"]:
            problems.append("the tokenizer has %d tokens, the model %d (another model's tokenizer)"
                            % (tok["vocab_size"], header["vocab_size"]))
    if problems:
        module.fail_json(msg="%s cannot run as planned on %d node(s): %s [variables llmlab_dllama_model, "
                             "llmlab_model, llmlab_quant, llmlab_tensor_parallel]. Fix: point llmlab_dllama_model at "
                             "the plan's model in q40 (q4_0) or f32, or plan the model and node count the file is for"
                             % (p["model"], p["nodes"] or 1, "; ".join(problems)),
                         header=header, sha256=digest, tokenizer=tok, problems=problems)
    module.exit_json(changed=False, header=header, sha256=digest, tokenizer=tok, problems=[])


if __name__ == "__main__":
    main()
