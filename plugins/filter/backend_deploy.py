# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation: backend_deploy.yml beside this file.

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.llmlab.cluster.plugins.module_utils.render import backend_deploy
from ansible_collections.llmlab.cluster.plugins.plugin_utils.filters import as_filter


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"backend_deploy": as_filter(backend_deploy)}
