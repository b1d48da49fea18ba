"""Write the lab's model for distributed-llama: the same tiny llama as tools/tiny_gguf.py, as a .m and a .t file.

    python -m tools.tiny_dllama OUT_DIR [--model llmlab/tiny-llama-test] [--seed 0] [--weights q40|f32]

The weights are tools/tiny_gguf.py's (same dimensions, same seed, same values), so llama.cpp, vLLM and
distributed-llama serve the same model; numpy only, no torch. Two things differ, both forced by distributed-llama:

* the token order: its tokenizer takes every id below the BOS id as the regular vocabulary and every id from it on
  as special, so the .t lists the 256 byte tokens (as raw bytes, the way its byte-level tokenizer looks them up),
  then the word pieces (SentencePiece's U+2581 as a space), then <s>, </s>, <unk>. The embedding and output rows
  are reordered with the tokens: the same token has the same vectors in both files;
* the weight type: distributed-llama loads q40 (with q80 buffers) or f32, not f16. q40 is its own block format
  (an f16 scale and 32 4-bit values, converter/writer.py), written here with numpy.

It prints the SHA-256 of both files (the lab inventory pins them; tests/unit/test_dllama.py checks they still are).
"""
from __future__ import annotations

import argparse
import os
import struct
import sys
from typing import BinaryIO, Dict, List, Tuple

import numpy as np

from tools import tiny_gguf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.dllama import (  # noqa: E402
    MODEL_KEYS, MODEL_MAGIC, TOKENIZER_KEYS, TOKENIZER_MAGIC)
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file  # noqa: E402

ARCH_LLAMA = 0xABCD00
WEIGHT_TYPES = {"f32": 0, "q40": 2}
SILU = 1
NORM_EPS_1E5 = 5
ROPE_THETA = 10000
SPECIAL = (b"<s>", b"</s>", b"<unk>")


def token_order(size: int) -> Tuple[List[bytes], List[float], List[int]]:
    """distributed-llama's tokens, their scores, and for each the GGUF token id it is (the row permutation)."""
    tokens, scores, _types = tiny_gguf.vocab(size)
    regular, special = [], []
    for gid, tok in enumerate(tokens):
        if tok in SPECIAL:
            special.append((SPECIAL.index(tok), gid, tok))
        elif tok.startswith(b"<0x") and tok.endswith(b">") and len(tok) == 6:
            regular.append((gid, bytes([int(tok[3:5], 16)])))
        else:
            regular.append((gid, tok.decode("utf-8").replace("\u2581", " ").encode("utf-8")))
    order = [gid for gid, _ in regular] + [gid for _, gid, _ in sorted(special)]
    out_tokens = [t for _, t in regular] + [t for _, _, t in sorted(special)]
    return out_tokens, [scores[g] for g in order], order


def q40(x: np.ndarray) -> bytes:
    """distributed-llama's Q40 blocks (converter/writer.py writeQuantizedQ40Tensor), vectorised."""
    groups = x.astype(np.float32).reshape(-1, 32)
    gmax, gmin = groups.max(axis=1), groups.min(axis=1)
    deltas = np.where(-gmin > gmax, gmin, gmax) / -8.0
    ids = np.divide(1.0, deltas, out=np.zeros_like(deltas), where=deltas != 0)
    q = np.clip(groups * ids[:, None] + 8.5, 0, 15).astype(np.uint8)
    out = np.empty((groups.shape[0], 18), dtype=np.uint8)
    out[:, :2] = deltas.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = (q[:, :16] & 0xF) | ((q[:, 16:] & 0xF) << 4)
    return out.tobytes()


def _tensor(f: BinaryIO, x: np.ndarray, weight_type: str) -> None:
    f.write(q40(x) if weight_type == "q40" else x.astype("<f4").tobytes())


def write_model(path: str, model_id: str = "llmlab/tiny-llama-test", seed: int = 0, weight_type: str = "q40") -> str:
    m = resolve_model(model_id)
    _tokens, _scores, order = token_order(m.vocab)
    params = {"version": 0, "arch_type": ARCH_LLAMA, "dim": m.hidden, "hidden_dim": m.ffn, "n_layers": m.layers,
              "n_heads": m.heads, "n_kv_heads": m.kv_heads, "n_experts": 0, "n_active_experts": 0,
              "vocab_size": m.vocab, "max_seq_len": tiny_gguf.CONTEXT, "hidden_act": SILU, "rope_theta": ROPE_THETA,
              "weights_float_type": WEIGHT_TYPES[weight_type], "head_dim": m.head_dim, "norm_epsilon": NORM_EPS_1E5}
    key_of = {v: k for k, v in MODEL_KEYS.items()}
    data = b"".join(struct.pack("<ii", key_of[k], v) for k, v in params.items())
    w = dict(tiny_gguf.weights(model_id, seed))
    with open(path, "wb") as f:
        f.write(struct.pack("<ii", MODEL_MAGIC, 8 + len(data)) + data)
        _tensor(f, w["token_embd.weight"][order], "f32")
        for i in range(m.layers):
            b = "blk.%d." % i
            for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_down", "ffn_up"):
                _tensor(f, w[b + name + ".weight"], weight_type)
            _tensor(f, w[b + "attn_norm.weight"], "f32")
            _tensor(f, w[b + "ffn_norm.weight"], "f32")
        _tensor(f, w["output_norm.weight"], "f32")
        _tensor(f, w["output.weight"][order], weight_type)
    return sha256_file(path)


def write_tokenizer(path: str, model_id: str = "llmlab/tiny-llama-test") -> str:
    m = resolve_model(model_id)
    tokens, scores, _order = token_order(m.vocab)
    bos, eos = tokens.index(b"<s>"), tokens.index(b"</s>")
    template = tiny_gguf.CHATML.encode("utf-8")
    params = {"version": 1, "vocab_size": len(tokens), "max_token_length": max(len(t) for t in tokens),
              "bos_id": bos, "chat_template": len(template), "n_eos_tokens": 1, "add_bos": 1}
    key_of = {v: k for k, v in TOKENIZER_KEYS.items()}
    data = b"".join(struct.pack("<ii", key_of[k], v) for k, v in params.items())
    with open(path, "wb") as f:
        f.write(struct.pack("<ii", TOKENIZER_MAGIC, 8 + len(data)) + data + template + struct.pack("<i", eos))
        for tok, score in zip(tokens, scores):
            f.write(struct.pack("<fI", score, len(tok)) + tok)
    return sha256_file(path)


def names(model_id: str, weight_type: str) -> Tuple[str, str]:
    base = model_id.split("/")[-1]
    return "%s-%s.m" % (base, weight_type), "%s.t" % base


def write(out_dir: str, model_id: str = "llmlab/tiny-llama-test", seed: int = 0,
          weights: str = "q40") -> Dict[str, str]:
    """Write the .m and .t into ``out_dir``; returns file name -> SHA-256."""
    os.makedirs(out_dir, exist_ok=True)
    model_name, tok_name = names(model_id, weights)
    out = {}
    for name, writer in ((model_name, lambda p: write_model(p, model_id, seed, weights)),
                         (tok_name, lambda p: write_tokenizer(p, model_id))):
        path = os.path.join(out_dir, name)
        out[name] = writer(path + ".part")
        os.replace(path + ".part", path)
    return out


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--model", default="llmlab/tiny-llama-test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", choices=sorted(WEIGHT_TYPES), default="q40")
    a = ap.parse_args(argv)
    for name, digest in write(a.out_dir, a.model, a.seed, a.weights).items():
        print("%s  %s" % (digest, os.path.join(a.out_dir, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
