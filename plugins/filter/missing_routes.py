# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation: missing_routes.yml beside this file.

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.llmlab.cluster.plugins.module_utils.topology import missing_routes
from ansible_collections.llmlab.cluster.plugins.plugin_utils.filters import as_filter


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"missing_routes": as_filter(missing_routes)}
