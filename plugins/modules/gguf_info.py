#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gguf_info
short_description: Check a model file is a GGUF with the expected checksum, and read its header
version_added: "0.2.0"
description:
  - Reads, and never changes, a model file. Fails when the file is missing, is not a GGUF, or its SHA-256 is not
    the one given, naming the file and what was found.
  - Returns the header's architecture, layer (block) count, tensor count and a few C(general.*) keys, so that a
    playbook can compare the model with the plan before any service is touched.
  - Needs no Python packages beyond the standard library (it runs on the nodes).
author:
  - llmlab.cluster contributors
extends_documentation_fragment:
  - llmlab.cluster.read_only
options:
  path:
    description: The model file.
    type: path
    required: true
  sha256:
    description: The expected SHA-256 (hex). When given, a different checksum fails the task.
    type: str
"""

EXAMPLES = r"""
- name: The model is the one the inventory names
  llmlab.cluster.gguf_info:
    path: /var/lib/llmlab/models/tiny-llama-test-f16.gguf
    sha256: "{{ llmlab_model_sha256 }}"
  register: model
"""

RETURN = r"""
sha256:
  description: The file's SHA-256.
  returned: success
  type: str
size:
  description: The file's size in bytes.
  returned: success
  type: int
version:
  description: The GGUF format version.
  returned: success
  type: int
architecture:
  description: C(general.architecture), for example C(llama).
  returned: success
  type: str
block_count:
  description: The number of transformer layers (C(<architecture>.block_count)).
  returned: success
  type: int
tensor_count:
  description: Number of tensors in the file.
  returned: success
  type: int
name:
  description: C(general.name) when the file has one.
  returned: success
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import GGUFError, read_header, sha256_file


def main() -> None:
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True), sha256=dict(type="str")),
                           supports_check_mode=True)
    path, want = module.params["path"], module.params["sha256"]
    if not os.path.isfile(path):
        module.fail_json(msg="model file %s does not exist" % path)
    try:
        header = read_header(path)
    except (GGUFError, OSError) as e:
        module.fail_json(msg="model file %s: %s" % (path, e))
    digest = sha256_file(path)
    if want and digest != want.strip().lower():
        module.fail_json(msg="model file %s has SHA-256 %s, expected %s (llmlab_model_sha256): a partial download or "
                             "another file" % (path, digest, want), sha256=digest)
    module.exit_json(changed=False, sha256=digest, size=os.path.getsize(path), version=header["version"],
                     architecture=header["architecture"], block_count=header["block_count"],
                     tensor_count=header["tensor_count"], name=header["name"])


if __name__ == "__main__":
    main()
