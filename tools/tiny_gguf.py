"""Write the lab's model: a llama-architecture GGUF with random weights, from the catalog's dimensions.

    python -m tools.tiny_gguf OUT.gguf [--model llmlab/tiny-llama-test] [--seed 0]

The weights are drawn from a seeded generator, so the same gguf package writes the same bytes and the file's SHA-256
can be pinned in the lab inventory (tests/unit/test_tiny_gguf.py checks that it still is). It prints the SHA-256.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator, List, Tuple

import gguf
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".collections"))
from ansible_collections.llmlab.cluster.plugins.module_utils.catalog import resolve_model  # noqa: E402
from ansible_collections.llmlab.cluster.plugins.module_utils.gguf import sha256_file  # noqa: E402

CONTEXT = 4096
RMS_EPS = 1e-5
FIRST_PIECE = 3 + 256   # the vocabulary's order: <unk> <s> </s>, the 256 byte tokens, then the word pieces
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def vocab(size: int) -> Tuple[List[bytes], List[float], List[int]]:
    """SentencePiece-style: <unk> <s> </s>, the 256 byte tokens, then pieces up to ``size``.

    Every piece longer than one character is two shorter tokens joined (``▁the`` = ``▁t`` + ``he``, ``▁t`` = space +
    ``t``), as in any trained BPE or SentencePiece vocabulary: tokenizers that build pieces by merging pairs (llama.cpp's
    SPM, distributed-llama's) reach them. A piece no pair reaches is never produced, and distributed-llama v0.16.4
    then crashes: after the prompt it reads the token slot one past the prompt, which only holds a valid id when the
    encoder merged at least once (see tests/unit/test_tiny_gguf.py and DEVELOPERS.md)."""
    T = gguf.TokenType
    tokens = [b"<unk>", b"<s>", b"</s>"] + [("<0x%02X>" % i).encode() for i in range(256)]
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL] + [T.BYTE] * 256
    pieces = [c for c in "etaoinshrdlucmfwypvbgkjqxz"] + [w.replace("_", "\u2581") for w in (
        "_t he _the _a in _in an _an nd _and _o _of _to er re on _on at _at is _is it _it or _or en es ha _ha _w _wa "
        "_was _f _for _th").split()]
    for p in pieces:
        if len(tokens) >= size:
            break
        tokens.append(p.encode())
        types.append(T.NORMAL)
    if len(tokens) != size:
        raise SystemExit("the vocabulary needs %d tokens, the writer has %d" % (size, len(tokens)))
    scores = [0.0] * 3 + [-1000.0] * 256 + [-float(i) for i in range(size - FIRST_PIECE)]
    return tokens, scores, [int(t) for t in types]


def weights(model_id: str = "llmlab/tiny-llama-test", seed: int = 0) -> Iterator[Tuple[str, np.ndarray]]:
    """The lab model's tensors in GGUF names and llama.cpp's layout, drawn in one fixed order from a seeded generator
    (tools/tiny_hf.py writes the same tensors as a Hugging Face directory). numpy shapes are the reverse of ggml's:
    token_embd is ggml {hidden, vocab}; attn_q/attn_k rows are in llama.cpp's rotary order (the converter's
    permutation of Hugging Face's)."""
    m = resolve_model(model_id)
    rng = np.random.default_rng(seed)
    hd, ff, v = m.head_dim, m.ffn, m.vocab

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    ones = np.ones(m.hidden, dtype=np.float32)
    yield "token_embd.weight", w(v, m.hidden)
    for i in range(m.layers):
        b = "blk.%d." % i
        yield b + "attn_norm.weight", ones
        yield b + "attn_q.weight", w(m.heads * hd, m.hidden)
        yield b + "attn_k.weight", w(m.kv_heads * hd, m.hidden)
        yield b + "attn_v.weight", w(m.kv_heads * hd, m.hidden)
        yield b + "attn_output.weight", w(m.hidden, m.heads * hd)
        yield b + "ffn_norm.weight", ones
        yield b + "ffn_gate.weight", w(ff, m.hidden)
        yield b + "ffn_up.weight", w(ff, m.hidden)
        yield b + "ffn_down.weight", w(m.hidden, ff)
    yield "output_norm.weight", ones
    yield "output.weight", output_rows(w(v, m.hidden))


# How much the word pieces' output rows are scaled (their logits' spread: 0.02 * 10 * sqrt(hidden) = 5.5 for 768 wide).
PIECE_LOGIT_SCALE = 10.0


def output_rows(out: np.ndarray) -> np.ndarray:
    """The output (lm_head) rows shaped like a trained model's in the one way the lab needs: it answers in word pieces.

    Random rows give every token about the same logit, so a random model emits raw byte tokens (<0x80>..<0xFF>, most
    of them no UTF-8 on their own) and </s> all the time. Trained models finish their characters and rarely stop
    mid-sequence; distributed-llama v0.16.4 aborts on both (an end-of-sequence right after an unfinished UTF-8
    sequence reaches its JSON writer as invalid UTF-8; a long run of them overflows its decoder's buffer: DEVELOPERS.md).
    So the control and byte tokens' rows are zero (logit 0) and the word pieces' are scaled up: greedy or sampled at
    0.8, the model answers in pieces and runs to max_tokens, like ignore_eos, which distributed-llama ignores. Only
    the values change, not the draw: every other tensor is the same."""
    rows = out.astype(np.float32)
    rows[:FIRST_PIECE] = 0.0                           # <unk> <s> </s> and the 256 byte tokens
    rows[FIRST_PIECE:] *= PIECE_LOGIT_SCALE
    return rows.astype(out.dtype)


def write(path: str, model_id: str = "llmlab/tiny-llama-test", seed: int = 0) -> str:
    m = resolve_model(model_id)
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name(m.id.split("/")[-1])
    wr.add_context_length(CONTEXT)
    wr.add_embedding_length(m.hidden)
    wr.add_block_count(m.layers)
    wr.add_feed_forward_length(m.ffn)
    wr.add_head_count(m.heads)
    wr.add_head_count_kv(m.kv_heads)
    wr.add_rope_dimension_count(m.head_dim)
    wr.add_layer_norm_rms_eps(RMS_EPS)
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    tokens, scores, types = vocab(m.vocab)
    wr.add_tokenizer_model("llama")
    wr.add_token_list(tokens)
    wr.add_token_scores(scores)
    wr.add_token_types(types)
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_chat_template(CHATML)
    for name, tensor in weights(model_id, seed):
        wr.add_tensor(name, tensor)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    return sha256_file(path)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--model", default="llmlab/tiny-llama-test")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".part"
    digest = write(tmp, a.model, a.seed)
    os.replace(tmp, a.out)
    print("%s  %s" % (digest, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
