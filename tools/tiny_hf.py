"""Write the lab's model as a Hugging Face directory, for vLLM: the same tensors as the lab's GGUF.

    python -m tools.tiny_hf OUT_DIR [--model llmlab/tiny-llama-test] [--seed 0]

The tensors come from tools/tiny_gguf.py's seeded draw, so vLLM (this directory) and llama.cpp (the GGUF) serve the
same weights: names are mapped to Hugging Face's, and the query/key rows are put back from llama.cpp's rotary order
into Hugging Face's (the inverse of the converter's permutation). The tokenizer is the GGUF's vocabulary as a
`tokenizers` Unigram model with byte fallback (SentencePiece's llama tokenizer), with the same chat template.
Files: config.json, generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json. It prints the
SHA-256 of each file (sorted by name); the same packages write the same bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, processors

from tools.tiny_gguf import CHATML, CONTEXT, RMS_EPS, resolve_model, sha256_file, vocab, weights

ROPE_THETA = 10000.0              # llama.cpp's default when the GGUF names no rope frequency base
LAYER = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
TOP = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Hugging Face's query/key rows from llama.cpp's: the inverse of convert_hf_to_gguf's ``permute``, which
    interleaves the two rotary halves of every head."""
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute(w: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's query/key rows from Hugging Face's (what the converter does)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def hf_name(gguf_name: str) -> str:
    part, _, suffix = gguf_name.rpartition(".")
    if part.startswith("blk."):
        _, layer, kind = part.split(".")
        return "model.layers.%s.%s.%s" % (layer, LAYER[kind], suffix)
    return "%s.%s" % (TOP[part], suffix)


def tensors(model_id: str = "llmlab/tiny-llama-test", seed: int = 0) -> Dict[str, np.ndarray]:
    m = resolve_model(model_id)
    out = {}
    for name, t in weights(model_id, seed):
        if ".attn_q." in name:
            t = unpermute(t, m.heads)
        elif ".attn_k." in name:
            t = unpermute(t, m.kv_heads)
        out[hf_name(name)] = np.ascontiguousarray(t.astype(np.float16))
    return out


def tokenizer(size: int) -> Tokenizer:
    """SentencePiece's llama tokenizer in `tokenizers` terms: a Unigram model over the GGUF's pieces and scores with
    byte fallback, spaces as the ▁ piece prefix, <s> before every text."""
    tokens, scores, _ = vocab(size)
    tok = Tokenizer(models.Unigram([(t.decode(), s) for t, s in zip(tokens, scores)], unk_id=0, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tok


def config(model_id: str) -> Dict[str, object]:
    m = resolve_model(model_id)
    return {
        "architectures": [m.architecture], "model_type": "llama", "torch_dtype": "float16",
        "vocab_size": m.vocab, "hidden_size": m.hidden, "intermediate_size": m.ffn,
        "num_hidden_layers": m.layers, "num_attention_heads": m.heads, "num_key_value_heads": m.kv_heads,
        "head_dim": m.head_dim, "hidden_act": "silu", "max_position_embeddings": CONTEXT, "rms_norm_eps": RMS_EPS,
        "rope_theta": ROPE_THETA, "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": 1, "eos_token_id": 2,
    }


def write(out_dir: str, model_id: str = "llmlab/tiny-llama-test", seed: int = 0) -> Dict[str, str]:
    """Write the directory; returns file name -> SHA-256."""
    m = resolve_model(model_id)
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "config.json": config(model_id),
        "generation_config.json": {"bos_token_id": 1, "eos_token_id": 2},
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
            "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "model_max_length": CONTEXT,
            "chat_template": CHATML, "clean_up_tokenization_spaces": False},
    }
    for name, data in files.items():
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
    tokenizer(m.vocab).save(os.path.join(out_dir, "tokenizer.json"))
    save_file(tensors(model_id, seed), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    return {n: sha256_file(os.path.join(out_dir, n)) for n in sorted(os.listdir(out_dir))}


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--model", default="llmlab/tiny-llama-test")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for name, digest in write(a.out_dir, a.model, a.seed).items():
        print("%s  %s" % (digest, os.path.join(a.out_dir, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
