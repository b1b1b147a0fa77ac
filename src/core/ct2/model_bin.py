"""Reading a CTranslate2 ``model.bin`` (the file faster-whisper loads) with numpy alone.

The layout is ctranslate2's ``ModelSpec._serialize`` (ctranslate2/specs/model_spec.py): a
uint32 binary version, the spec name, a uint32 revision, the variables (name, rank, dims,
dtype id, byte count, little-endian data) and then the aliases (name -> variable name).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ctranslate2/specs/model_spec.py `_dtype_to_type_id`
DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
SUPPORTED_BINARY_VERSIONS = (5, 6)


class Ct2FormatError(ValueError):
    pass


@dataclass
class Ct2Model:
    path: Path
    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    dtypes: dict[str, str]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        return self.variables[self.aliases.get(name, name)]

    def weight_dtypes(self) -> set[str]:
        return {self.dtypes[n] for n, v in self.variables.items() if n.endswith("/weight") and v.ndim >= 2}


class _Reader:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise Ct2FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more of {len(self.data)}); "
                                 "the file is incomplete or corrupt")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.take(length))
        if not raw.endswith(b"\0"):
            raise Ct2FormatError(f"{self.path}: malformed string at byte {self.pos}; not a CTranslate2 model.bin")
        return raw[:-1].decode("utf-8")


def is_ct2_folder(path: Path) -> bool:
    """A CTranslate2 (faster-whisper) folder: a model.bin and no Transformers weights beside it."""
    return (path / "model.bin").is_file() and not any(
        (path / f).exists() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json"))


def read_model_bin(path: str | Path) -> Ct2Model:
    """Every variable of ``path`` as numpy arrays (bfloat16 kept as raw uint16)."""
    path = Path(path)
    if not path.is_file():
        raise Ct2FormatError(f"{path}: no such file")
    data = memoryview(path.read_bytes())
    r = _Reader(data, path)
    version = r.unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise Ct2FormatError(f"{path}: binary version {version}, expected one of {SUPPORTED_BINARY_VERSIONS}; "
                             "not a CTranslate2 4.x model.bin")
    spec = r.string()
    revision = r.unpack("I")
    count = r.unpack("I")
    variables: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for _ in range(count):
        name = r.string()
        rank = r.unpack("B")
        shape = tuple(r.unpack("I") for _ in range(rank))
        type_id = r.unpack("B")
        if type_id not in DTYPES:
            raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype id {type_id}")
        nbytes = r.unpack("I")
        dtype = DTYPES[type_id]
        np_dtype = np.uint16 if dtype == "bfloat16" else np.dtype(dtype)
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dtype).itemsize
        if nbytes != expected:
            raise Ct2FormatError(f"{path}: variable {name!r} holds {nbytes} bytes, its shape {shape} needs {expected}")
        variables[name] = np.frombuffer(r.take(nbytes), dtype=np_dtype).reshape(shape)
        dtypes[name] = dtype
    aliases = {}
    for _ in range(r.unpack("I")):
        alias = r.string()
        aliases[alias] = r.string()
    if r.pos != len(data):
        raise Ct2FormatError(f"{path}: {len(data) - r.pos} trailing bytes after the aliases; the file is corrupt")
    return Ct2Model(path, version, spec, revision, variables, dtypes, aliases)
