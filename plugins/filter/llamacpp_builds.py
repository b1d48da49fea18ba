# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Documentation: llamacpp_builds.yml beside this file.

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.llmlab.cluster.plugins.module_utils.llamacpp import cluster_builds
from ansible_collections.llmlab.cluster.plugins.plugin_utils.filters import as_filter


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"llamacpp_builds": as_filter(cluster_builds)}
