# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Names and defaults shared by the planner, the modules and the roles (no third-party imports here)."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

# topology -> (fewest nodes, most nodes or None)
TOPOLOGIES: Dict[str, Tuple[int, Optional[int]]] = {
    "single": (1, 1),
    "direct": (2, 2),
    "ring": (3, None),
    "switch": (2, None),
}
DEFAULT_POOL = "10.213.0.0/24"
DEFAULT_CONTEXT = 8192
DEFAULT_PROMPT = 512
# The concurrencies a chosen plan is also predicted at (plan.predicted_curve: what a benchmark sweep is drawn against).
DEFAULT_CURVE = (1, 2, 4, 8, 16, 32)

# The OpenAI-compatible API port of the head (llama-server, vLLM, distributed-llama's API server).
DEFAULT_API_PORT = 8080
