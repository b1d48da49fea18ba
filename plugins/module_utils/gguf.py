# -*- coding: utf-8 -*-
# Copyright: (c) 2026, llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a GGUF file's header: magic, version, tensor count and the key/value metadata.

The ``gguf`` package (with numpy) is what writes and fully reads GGUF; this runs on the nodes, which have neither,
and needs only the header to tell a GGUF from anything else and to compare its architecture and layer count with
the plan. Arrays are skipped except short ones (the vocabulary is not returned).
Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian, version 2 and 3).
"""
from __future__ import annotations

import hashlib
import struct
from typing import IO, Any, Dict

MAGIC = b"GGUF"
_SCALARS = {  # GGUF value type -> struct format
    0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d",
}
_STRING, _ARRAY = 8, 9
_MAX_KV = 1 << 20
_SHORT_ARRAY = 64


class GGUFError(ValueError):
    """Not a GGUF file, or a damaged one."""


def _read(f: IO[bytes], n: int) -> bytes:
    b = f.read(n)
    if len(b) != n:
        raise GGUFError("the file ends inside its header")
    return b


def _unpack(f: IO[bytes], fmt: str) -> Any:
    return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]


def _string(f: IO[bytes]) -> str:
    n = _unpack(f, "<Q")
    if n > 1 << 24:
        raise GGUFError("a header string claims %d bytes" % n)
    return _read(f, n).decode("utf-8", errors="replace")


def _value(f: IO[bytes], vtype: int) -> Any:
    if vtype in _SCALARS:
        return _unpack(f, _SCALARS[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        etype, count = _unpack(f, "<I"), _unpack(f, "<Q")
        if etype in _SCALARS and count > _SHORT_ARRAY:
            f.seek(struct.calcsize(_SCALARS[etype]) * count, 1)
            return {"type": etype, "length": count}
        items = [_value(f, etype) for _ in range(count)]
        return items if count <= _SHORT_ARRAY else {"type": etype, "length": count}
    raise GGUFError("unknown metadata value type %d" % vtype)


def read_header(path: str) -> Dict[str, Any]:
    """``{version, tensor_count, metadata, architecture, block_count}``; raises GGUFError for a non-GGUF file."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic != MAGIC:
            raise GGUFError("%s is not a GGUF file: it starts with %r, not %r" % (path, magic, MAGIC))
        version = _unpack(f, "<I")
        if version not in (2, 3):
            raise GGUFError("%s is GGUF version %d; llama.cpp reads versions 2 and 3" % (path, version))
        tensors, kvs = _unpack(f, "<Q"), _unpack(f, "<Q")
        if kvs > _MAX_KV:
            raise GGUFError("%s claims %d metadata entries" % (path, kvs))
        meta: Dict[str, Any] = {}
        for _ in range(kvs):
            key = _string(f)
            meta[key] = _value(f, _unpack(f, "<I"))
    arch = meta.get("general.architecture")
    return {
        "version": version,
        "tensor_count": tensors,
        "metadata": meta,
        "architecture": arch,
        "block_count": meta.get("%s.block_count" % arch) if arch else None,
        "name": meta.get("general.name"),
    }


def sha256_file(path: str) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (model files are large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
