#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hf_model_info
short_description: Check a Hugging Face model directory is what vLLM will load, and compare it with the plan
version_added: "0.2.0"
description:
  - Reads, and never changes, a model directory. Fails when C(config.json) is missing or not JSON, when a safetensors
    file (or a shard the index lists) is missing, damaged or shorter than its header says, or when a file listed in
    O(sha256) has another checksum, naming the file and what was found.
  - Returns the config's architecture and dimensions, the weight files with their tensor count and bytes, and
    whether a tokenizer is there, so that a playbook can compare the model with the plan before any service is
    touched; with O(model) it fails itself when they differ.
  - Needs no Python packages beyond the standard library (it runs on the nodes).
author:
  - llmlab.cluster contributors
extends_documentation_fragment:
  - llmlab.cluster.read_only
options:
  path:
    description: The model directory (C(config.json), C(*.safetensors), the tokenizer).
    type: path
    required: true
  sha256:
    description: File name (relative to O(path)) -> expected SHA-256. Every file listed is checked.
    type: dict
    default: {}
  model:
    description:
      - The plan's model (C(llmlab_plan.plan.model)); when given, a directory whose architecture, layers, attention
        heads, KV heads or hidden size differ, or that has no tokenizer, fails the task.
    type: dict
"""

EXAMPLES = r"""
- name: The model directory is the plan's model, file for file
  llmlab.cluster.hf_model_info:
    path: /var/lib/llmlab/models/hf/tiny-llama-test
    sha256: {config.json: "c7b93542ab669df76dc6bc800926d278da8adc9a5bbfdd2e94a80b83f5bfd826"}
    model: "{{ llmlab_plan.plan.model }}"
  register: model
"""

RETURN = r"""
architecture:
  description: The first of C(config.json)'s C(architectures), for example C(LlamaForCausalLM).
  returned: success
  type: str
layers:
  description: C(num_hidden_layers).
  returned: success
  type: int
heads:
  description: C(num_attention_heads).
  returned: success
  type: int
kv_heads:
  description: C(num_key_value_heads) (the attention heads when the config has none).
  returned: success
  type: int
hidden:
  description: C(hidden_size).
  returned: success
  type: int
files:
  description: The safetensors files vLLM loads.
  returned: success
  type: list
  elements: str
tensor_count:
  description: Tensors in those files.
  returned: success
  type: int
size:
  description: Bytes of tensor data in those files.
  returned: success
  type: int
tokenizer:
  description: Whether C(tokenizer.json) or C(tokenizer.model) is there.
  returned: success
  type: bool
sha256:
  description: The checksums that were checked, by file name.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmlab.cluster.plugins.module_utils.hfmodel import HFModelError, mismatches, read_model_dir


def main() -> None:
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              sha256=dict(type="dict", default={}),
                                              model=dict(type="dict")),
                           supports_check_mode=True)
    path = module.params["path"]
    try:
        info = read_model_dir(path, module.params["sha256"])
    except (HFModelError, OSError) as e:
        module.fail_json(msg="model directory %s: %s" % (path, e))
    model = module.params["model"]
    if model:
        wrong = mismatches(info, model)
        if wrong:
            module.fail_json(msg="model directory %s is not the plan's model %s: %s" % (
                path, model.get("id"), "; ".join(wrong)), **info)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
