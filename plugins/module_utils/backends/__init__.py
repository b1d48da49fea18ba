# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The backend registry: one module per backend, each owning everything about it (see ``base.Backend``).

This is the catalog of backend names. The planner, the modules and the filters ask the registry; no other file
outside a backend's own module and its own role names a backend.
"""

from __future__ import annotations

from typing import Dict, Tuple

from ansible_collections.llmlab.cluster.plugins.module_utils.backends import distributed_llama, llamacpp_rpc, vllm_ray
from ansible_collections.llmlab.cluster.plugins.module_utils.backends.base import Backend
from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError

# The order is the tie-break between equally fast candidates.
REGISTRY: Dict[str, Backend] = {b.name: b for b in (vllm_ray.BACKEND, llamacpp_rpc.BACKEND, distributed_llama.BACKEND)}
NAMES: Tuple[str, ...] = tuple(REGISTRY)
# What llmlab_backend accepts: a backend, "auto" (the planner chooses a deployable one) or "none" (serve nothing:
# every backend's services are removed, the fabric stays).
AUTO = "auto"
NONE = "none"
CHOICES: Tuple[str, ...] = (AUTO,) + NAMES + (NONE,)


def get(name: str) -> Backend:
    try:
        return REGISTRY[name]
    except KeyError:
        raise PlanError("unknown backend %r" % (name,), variable="llmlab_backend",
                        fix="use one of: %s" % ", ".join(CHOICES))
