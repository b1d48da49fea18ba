# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation: deployable_backends.yml beside this file.

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.llmlab.cluster.plugins.module_utils.render import deployable_backends
from ansible_collections.llmlab.cluster.plugins.plugin_utils.filters import as_filter


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"deployable_backends": as_filter(deployable_backends)}
