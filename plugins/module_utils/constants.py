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
BACKENDS: Tuple[str, ...] = ("vllm_ray", "llamacpp_rpc", "distributed_llama")
BACKEND_CHOICES: Tuple[str, ...] = ("auto",) + BACKENDS
DEFAULT_POOL = "10.213.0.0/24"
DEFAULT_CONTEXT = 8192
DEFAULT_PROMPT = 512

# TCP ports each backend's nodes open to their cluster peers (never to the management LAN). Ray's ports are pinned
# by the vllm_ray role so that a firewall can name them (GCS, client, node/object managers, workers).
BACKEND_PEER_PORTS: Dict[str, Tuple[str, ...]] = {
    "llamacpp_rpc": ("50052",),
    "vllm_ray": ("6379", "8265", "10001", "10002-10100", "20380", "20381", "29500"),
    "distributed_llama": ("9999",),
}

# The OpenAI-compatible API port of the head (llama-server, vLLM, distributed-llama's API server).
DEFAULT_API_PORT = 8080
