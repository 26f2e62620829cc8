"""Sharded HDF5 storage for per-frame data, and atomic writes for every output.

Layout of one shard file (``<dir>/shard-007.h5``)::

    /                      attrs: format, stage, params (JSON of the producing params)
    /videos/<key>/         one group per video; attrs: video_id; <key> = percent-encoded video_id
        frame_index        int64 (n,)        frames of this video, in ascending order
        <field>            (n, *item_shape)  one HDF5 chunk per item (frame/face) for images
    /index/video_id        vlen str (N,)     every (video_id, frame_index) of the shard
    /index/frame_index     int64 (N,)

Reading one face therefore costs one chunk read. Files are written to a temporary name in the
same directory and renamed into place when complete, so an interrupted stage never leaves a
half-written shard. Timestamps are not recorded: the same content gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import hashlib
import json
import logging
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import quote, unquote

import h5py
import numpy as np

FORMAT = "dfdetect-shard/1"
log = logging.getLogger("dfdetect")


# ----------------------------------------------------------------------------- atomic files
# Temporaries: an output ``<dir>/<name>`` is written as ``<dir>/.<name>.<pid>-<token>.tmp`` (a
# file for atomic_path, a folder for atomic_dir; atomic_dir's previous output waits for deletion
# as ``.<name>.<pid>-<token>.old.tmp``; other helpers add their own ``.<tag>`` the same way, see
# temp_dir), where <pid> is the writing process and <token> the random part of tempfile's name. The pid is the ownership record: a temporary whose pid no
# longer runs on this machine belongs to a dead writer (kill -9, power loss) and is stale. Each
# atomic_path/atomic_dir removes the stale temporaries of ITS OWN output (same <name>) before
# writing; it never touches those of a live process (including its own) or of other outputs.
# A reused pid only keeps a stale temporary longer (it goes on a later rerun). Temporaries are
# per machine: the outputs' folder must not be written by two hosts at once.
TMP_SUFFIX = ".tmp"


def _tmp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}-"


def _tmp_pattern(name: str) -> "re.Pattern[str]":
    return re.compile(rf"^\.{re.escape(name)}\.(\d+)-[A-Za-z0-9_]+(?:\.[a-z]+)?{re.escape(TMP_SUFFIX)}$")


def temp_dir(path: str | Path, tag: str = "") -> Path:
    """A new empty folder beside output ``path``, named as a temporary of it owned by this
    process (``.<name>.<pid>-<token>[.<tag>].tmp``), for writers with their own replace logic."""
    path = Path(path)
    if tag and not re.fullmatch(r"[a-z]+", tag):
        raise ValueError(f"temporary tag must be lowercase letters, got {tag!r}")
    suffix = (f".{tag}" if tag else "") + TMP_SUFFIX
    return Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=suffix, dir=path.parent))


def pid_alive(pid: int) -> bool:
    """Is process ``pid`` running on this machine (a zombie counts as running)?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


def temporaries(path: str | Path) -> list[tuple[Path, int]]:
    """Every temporary of output ``path`` beside it, as ``(temp path, writer pid)``, sorted."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    pattern = _tmp_pattern(path.name)
    out = []
    for entry in path.parent.iterdir():
        m = pattern.match(entry.name)
        if m:
            out.append((entry, int(m.group(1))))
    return sorted(out)


def stale_temporaries(path: str | Path) -> list[Path]:
    """Temporaries of output ``path`` whose writer process is dead."""
    me = os.getpid()
    return [tmp for tmp, pid in temporaries(path) if pid != me and not pid_alive(pid)]


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporaries of ``path`` left by dead writers; returns what was removed."""
    import shutil  # noqa: PLC0415

    removed = []
    for tmp in stale_temporaries(path):
        try:
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
        except FileNotFoundError:   # another rerun got there first
            continue
        removed.append(tmp)
        log.info("removed stale temporary %s (its writer is gone)", tmp)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success only.

    Stale temporaries of ``path`` (dead writers) are removed first; see the note above.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; on success it replaces ``path`` whole
    (an older directory there is moved aside first, then deleted), on failure it is removed.

    Stale temporaries of ``path`` (dead writers) are removed first; see the note above.
    """
    import shutil  # noqa: PLC0415

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temp_dir(path)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = temp_dir(path, "old")
        os.replace(path, old / path.name)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` with bytes that depend only on ``obj``.

    torch names the records inside its zip archive after the file it writes to, so saving to a
    temporary name would make every checkpoint differ; a buffer gets the fixed name "archive".
    """
    import torch  # noqa: PLC0415

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv_atomic(path: str | Path, df) -> None:
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    write_text_atomic(path, buf.getvalue())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------- sharding
def shard_of(video_id: str, num_shards: int) -> int:
    """Stable shard of a video: CRC-32 of its id, so adding videos moves no other video."""
    return zlib.crc32(video_id.encode("utf-8")) % int(num_shards)


def shard_name(shard: int | str) -> str:
    """The one definition of a shard's file stem: ``shard-<N>``, N as a plain decimal number.

    dvc.yaml writes the same name as ``shard-${item}`` (DVC cannot zero-pad), so the two
    agree for any number of shards; ``tests/test_dag.py`` checks that they do.
    """
    return f"shard-{int(shard)}"


def shard_number(path: str | Path) -> int:
    """N of a ``shard-<N>.<suffix>`` path (inverse of :func:`shard_name`)."""
    stem = Path(path).name.split(".", 1)[0]
    if not stem.startswith("shard-") or not stem[6:].isdigit():
        raise ValueError(f"{path}: not a shard file name (expected shard-<N>.<suffix>)")
    return int(stem[6:])


def shard_files(directory: str | Path, suffix: str = ".h5") -> list[Path]:
    """Every ``shard-<N><suffix>`` file of ``directory``, in shard order."""
    return sorted(Path(directory).glob(f"shard-*{suffix}"), key=shard_number)


def shard_path(directory: str | Path, shard: int, suffix: str = ".h5") -> Path:
    return Path(directory) / f"{shard_name(shard)}{suffix}"


def video_key(video_id: str) -> str:
    return quote(video_id, safe="")


def key_video(key: str) -> str:
    return unquote(key)


# ----------------------------------------------------------------------------- compression
def compression_kwargs(spec: Mapping[str, Any] | str | None) -> dict:
    """h5py dataset keywords for a codec spec.

    ``{"codec": "gzip", "level": 4, "shuffle": true}`` uses HDF5's built-in filters (readable
    everywhere); ``{"codec": "blosc-lz4"|"blosc-zstd"|"lz4"|"zstd", ...}`` uses hdf5plugin's
    filters (fast; readers need ``import hdf5plugin``); ``None``/``"none"`` stores raw.
    """
    if spec is None or spec == "none":
        return {}
    if isinstance(spec, str):
        spec = {"codec": spec}
    codec = str(spec.get("codec", "gzip")).lower()
    level = spec.get("level")
    shuffle = bool(spec.get("shuffle", True))
    if codec == "none":
        return {}
    if codec == "gzip":
        return {"compression": "gzip", "compression_opts": int(4 if level is None else level),
                "shuffle": shuffle}
    if codec == "lzf":
        return {"compression": "lzf", "shuffle": shuffle}
    import hdf5plugin  # noqa: PLC0415  (optional, registers the filters)

    if codec.startswith("blosc"):
        cname = codec.split("-", 1)[1] if "-" in codec else "lz4"
        sh = hdf5plugin.Blosc.SHUFFLE if shuffle else hdf5plugin.Blosc.NOSHUFFLE
        if spec.get("bitshuffle"):
            sh = hdf5plugin.Blosc.BITSHUFFLE
        return dict(hdf5plugin.Blosc(cname=cname, clevel=int(5 if level is None else level), shuffle=sh))
    if codec == "lz4":
        return dict(hdf5plugin.LZ4())
    if codec == "zstd":
        return dict(hdf5plugin.Zstd(clevel=int(3 if level is None else level)))
    if codec == "bitshuffle-lz4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    raise ValueError(f"unknown compression codec {codec!r}")


def _codec_levels(value, where: str) -> None:
    from .config import Int, ParamError  # noqa: PLC0415

    codec = str(value.get("codec", "gzip")).lower()
    lo, hi = COMPRESSION_LEVELS.get(codec.split("-")[0] if codec.startswith("blosc") else codec, (None, None))
    if value.get("level") is None:
        return
    if lo is None:
        raise ParamError(f"{where}.level", value["level"], f"codec {codec} takes no level (remove it)")
    try:
        Int(ge=lo, le=hi).validate(value["level"], f"{where}.level")
    except ParamError as err:
        raise ParamError(err.key, err.value, f"{err.allowed} for codec {codec}") from None


def _compression_schema():
    from .config import AnyOf, Bool, Choice, Int, Section  # noqa: PLC0415

    codec = Choice(*COMPRESSION_CODECS)
    table = Section({"codec": codec, "level": Int(nullable=True), "shuffle": Bool(), "bitshuffle": Bool()},
                    check=_codec_levels)
    return AnyOf(codec, table, nullable=True)


# params schema of a codec spec (compression_kwargs); levels per codec
COMPRESSION_CODECS = ("none", "gzip", "lzf", "lz4", "zstd", "bitshuffle-lz4", "blosc", "blosc-lz4",
                      "blosc-lz4hc", "blosc-zstd", "blosc-zlib", "blosc-blosclz", "blosc-snappy")
COMPRESSION_LEVELS = {"gzip": (0, 9), "zstd": (1, 22), "blosc": (0, 9)}
COMPRESSION = _compression_schema()


class Encoded:
    """An image-like field already split into compressed HDF5 chunks (one per item).

    Made by :func:`encode_items`, typically in a worker process, so that the process writing the
    shard only copies bytes: compression stops being a serial bottleneck. The bytes are exactly
    what HDF5's own filters would produce, so the file is byte-identical either way.
    """

    __slots__ = ("shape", "dtype", "chunks", "spec")

    def __init__(self, shape: tuple, dtype, chunks: list[bytes], spec: Any):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.chunks = chunks
        self.spec = spec

    def __len__(self) -> int:
        return self.shape[0]


class Spilled:
    """An image-like field whose items lie, one after another, in a spill file (plain data).

    Made by a worker that streams a long video (:class:`SpillFile`): items are appended as they
    are decoded, so neither the worker nor the writing process ever holds the whole field.
    ``encoded``: the items are HDF5 chunks made by :func:`encode_items` (copied as they are);
    otherwise raw item bytes that the writer compresses. The same items give the same file
    bytes as an :class:`Encoded` field or an array would.
    """

    __slots__ = ("shape", "dtype", "path", "offsets", "sizes", "spec", "encoded")

    def __init__(self, shape: tuple, dtype, path: str, offsets: list[int], sizes: list[int],
                 spec: Any, encoded: bool):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.path = str(path)
        self.offsets = list(offsets)
        self.sizes = list(sizes)
        self.spec = spec
        self.encoded = bool(encoded)

    def __len__(self) -> int:
        return self.shape[0]

    def iter_bytes(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            for off, size in zip(self.offsets, self.sizes):
                f.seek(off)
                data = f.read(size)
                if len(data) != size:
                    raise OSError(f"{self.path}: spill file is short ({len(data)} of {size} bytes "
                                  f"at offset {off})")
                yield data


class SpillFile:
    """Append-only file of item bytes; ``take(keys)`` makes the :class:`Spilled` of those items."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._f = open(self.path, "wb")
        self._where: dict[Any, tuple[int, int]] = {}
        self._pos = 0

    def append(self, key, data: bytes) -> None:
        self._f.write(data)
        self._where[key] = (self._pos, len(data))
        self._pos += len(data)

    def __contains__(self, key) -> bool:
        return key in self._where

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def take(self, keys, item_shape: tuple, dtype, spec: Any, encoded: bool) -> Spilled:
        self.close()
        keys = list(keys)
        return Spilled((len(keys),) + tuple(item_shape), dtype, self.path,
                       [self._where[k][0] for k in keys], [self._where[k][1] for k in keys],
                       spec, encoded)


def _plain_spec(spec: Mapping[str, Any] | str | None) -> tuple[str, int, bool] | None:
    """(codec, level, shuffle) when the spec uses only HDF5's built-in gzip/shuffle, else None."""
    if spec is None or spec == "none":
        return ("none", 0, False)
    if isinstance(spec, str):
        spec = {"codec": spec}
    codec = str(spec.get("codec", "gzip")).lower()
    if codec == "none":
        return ("none", 0, False)
    if codec == "gzip":
        level = spec.get("level")
        return ("gzip", int(4 if level is None else level), bool(spec.get("shuffle", True)))
    return None


def encode_items(arr: np.ndarray, spec: Mapping[str, Any] | str | None) -> "Encoded | np.ndarray":
    """Compress each item (``arr[i]``) as HDF5's shuffle + deflate filters would.

    Returns ``arr`` unchanged when the codec needs a filter plugin (blosc, zstd, ...): the
    writer then compresses it itself.
    """
    plain = _plain_spec(spec)
    arr = np.ascontiguousarray(arr)
    if plain is None or arr.ndim < 3 or len(arr) == 0:
        return arr
    codec, level, shuffle = plain
    size = arr.dtype.itemsize
    chunks = []
    for item in arr:
        raw = item.tobytes()
        if codec == "gzip":
            if shuffle and size > 1:
                raw = np.frombuffer(raw, np.uint8).reshape(-1, size).T.tobytes()
            raw = zlib.compress(raw, level)
        chunks.append(raw)
    return Encoded(arr.shape, arr.dtype, chunks, spec)


def _ensure_plugins() -> None:
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401,PLC0415


# ----------------------------------------------------------------------------- writer
class ShardWriter:
    """Write one shard atomically.

    >>> with ShardWriter("data/faces/shard-0.h5", stage="align_faces", params=cfg) as w:
    ...     w.add_video("ffpp/c23/000.mp4", frame_indices, face=faces, box=boxes)

    ``compression`` maps field names to codec specs (see :func:`compression_kwargs`); fields not
    listed use ``default_compression`` when they have two or more item dimensions (images) and
    are stored raw otherwise. Every field of ndim >= 2 per item is chunked one item per chunk.
    """

    def __init__(self, path: str | Path, stage: str = "", params: Mapping | None = None,
                 compression: Mapping[str, Any] | None = None,
                 default_compression: Any = None, attrs: Mapping[str, Any] | None = None):
        self.path = Path(path)
        self.stage = stage
        self.params = dict(params or {})
        self.compression = dict(compression or {})
        self.default_compression = ({"codec": "gzip", "level": 4, "shuffle": True}
                                    if default_compression is None else default_compression)
        self.attrs = dict(attrs or {})
        self._ctx = None
        self._file: h5py.File | None = None
        self._index_vid: list[str] = []
        self._index_frame: list[int] = []
        self._videos: set[str] = set()

    def __enter__(self) -> "ShardWriter":
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        _ensure_plugins()
        self._file = h5py.File(tmp, "w", track_order=False)
        root = self._file
        root.attrs["format"] = FORMAT
        root.attrs["stage"] = self.stage
        root.attrs["params"] = json.dumps(self.params, sort_keys=True, default=_json_default)
        for k, v in self.attrs.items():
            root.attrs[k] = v if not isinstance(v, (dict, list)) else json.dumps(v, sort_keys=True)
        self._file.create_group("videos", track_order=False)
        return self

    def add_video(self, video_id: str, frame_indices, attrs: Mapping[str, Any] | None = None,
                  **fields: np.ndarray) -> None:
        assert self._file is not None, "use ShardWriter as a context manager"
        if video_id in self._videos:
            raise ValueError(f"{self.path}: video {video_id!r} written twice")
        frame_indices = np.asarray(frame_indices, dtype=np.int64)
        n = len(frame_indices)
        if n and np.any(np.diff(frame_indices) <= 0):
            raise ValueError(f"{video_id}: frame indices must be strictly increasing")
        grp = self._file["videos"].create_group(video_key(video_id), track_order=False)
        grp.attrs["video_id"] = video_id
        for k, v in (attrs or {}).items():
            grp.attrs[k] = v if not isinstance(v, (dict, list)) else json.dumps(v, sort_keys=True)
        grp.create_dataset("frame_index", data=frame_indices, track_times=False)
        for name, arr in fields.items():
            if isinstance(arr, Encoded):
                self._write_encoded(grp, video_id, name, arr, n)
                continue
            if isinstance(arr, Spilled):
                self._write_spilled(grp, video_id, name, arr, n)
                continue
            arr = np.asarray(arr)
            if arr.shape[:1] != (n,):
                raise ValueError(f"{video_id}: field {name} has {arr.shape[:1]} rows, expected {n}")
            kwargs: dict = {"track_times": False}
            if arr.ndim >= 3 and n > 0:  # image-like items: one chunk per item
                kwargs["chunks"] = (1,) + arr.shape[1:]
                kwargs.update(compression_kwargs(self.compression.get(name, self.default_compression)))
            elif name in self.compression and n > 0:
                kwargs["chunks"] = True
                kwargs.update(compression_kwargs(self.compression[name]))
            if arr.dtype.kind == "U":
                arr = arr.astype(object)
                kwargs["dtype"] = h5py.string_dtype()
            grp.create_dataset(name, data=arr, **kwargs)
        self._videos.add(video_id)
        self._index_vid.extend([video_id] * n)
        self._index_frame.extend(frame_indices.tolist())

    def _write_encoded(self, grp, video_id: str, name: str, enc: Encoded, n: int) -> None:
        if enc.shape[:1] != (n,):
            raise ValueError(f"{video_id}: field {name} has {enc.shape[:1]} rows, expected {n}")
        kwargs: dict = {"track_times": False, "chunks": (1,) + enc.shape[1:]}
        kwargs.update(compression_kwargs(enc.spec))
        ds = grp.create_dataset(name, shape=enc.shape, dtype=enc.dtype, **kwargs)
        zeros = (0,) * (len(enc.shape) - 1)
        for i, chunk in enumerate(enc.chunks):
            ds.id.write_direct_chunk((i,) + zeros, chunk)

    def _write_spilled(self, grp, video_id: str, name: str, sp: Spilled, n: int) -> None:
        """One item at a time from the spill file: memory is one chunk, whatever ``n``."""
        if sp.shape[:1] != (n,):
            raise ValueError(f"{video_id}: field {name} has {sp.shape[:1]} rows, expected {n}")
        kwargs: dict = {"track_times": False, "chunks": (1,) + sp.shape[1:]}
        spec = sp.spec if sp.encoded else self.compression.get(name, self.default_compression)
        kwargs.update(compression_kwargs(spec))
        ds = grp.create_dataset(name, shape=sp.shape, dtype=sp.dtype, **kwargs)
        zeros = (0,) * (len(sp.shape) - 1)
        for i, data in enumerate(sp.iter_bytes()):
            if sp.encoded:
                ds.id.write_direct_chunk((i,) + zeros, data)
            else:
                ds[i] = np.frombuffer(data, dtype=sp.dtype).reshape(sp.shape[1:])

    def __exit__(self, exc_type, exc, tb):
        assert self._file is not None and self._ctx is not None
        try:
            if exc_type is None:
                idx = self._file.create_group("index", track_order=False)
                idx.create_dataset("video_id", data=np.array(self._index_vid, dtype=object),
                                   dtype=h5py.string_dtype(), track_times=False)
                idx.create_dataset("frame_index", data=np.array(self._index_frame, dtype=np.int64),
                                   track_times=False)
        finally:
            self._file.close()
        return self._ctx.__exit__(exc_type, exc, tb)


# ----------------------------------------------------------------------------- readers
class ShardReader:
    """Read one shard; the file is opened lazily and kept open (reopened after fork)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._pid = None

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            _ensure_plugins()
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    @property
    def attrs(self) -> dict:
        out = dict(self.file.attrs)
        if "params" in out:
            out["params"] = json.loads(out["params"])
        return out

    def videos(self) -> list[str]:
        return [self.file["videos"][k].attrs["video_id"] for k in self.file["videos"]]

    def has_video(self, video_id: str) -> bool:
        return video_key(video_id) in self.file["videos"]

    def group(self, video_id: str) -> h5py.Group:
        try:
            return self.file["videos"][video_key(video_id)]
        except KeyError:
            raise KeyError(f"{self.path}: no video {video_id!r}") from None

    def frame_indices(self, video_id: str) -> np.ndarray:
        return self.group(video_id)["frame_index"][()]

    def fields(self, video_id: str) -> list[str]:
        return [k for k in self.group(video_id) if k != "frame_index"]

    def video_attrs(self, video_id: str) -> dict:
        return dict(self.group(video_id).attrs)

    def read(self, video_id: str, field: str, rows=None) -> np.ndarray:
        ds = self.group(video_id)[field]
        if rows is None:
            out = ds[()]
        else:
            rows = np.asarray(rows)
            out = np.stack([ds[int(r)] for r in rows]) if len(rows) else np.empty((0,) + ds.shape[1:], ds.dtype)
        if out.dtype == object:
            out = np.array([x.decode() if isinstance(x, bytes) else x for x in np.ravel(out)],
                           dtype=object).reshape(out.shape)
        return out

    def read_item(self, video_id: str, frame_index: int, field: str) -> np.ndarray:
        frames = self.frame_indices(video_id)
        pos = int(np.searchsorted(frames, frame_index))
        if pos >= len(frames) or frames[pos] != frame_index:
            raise KeyError(f"{self.path}: {video_id!r} has no frame {frame_index}")
        return self.group(video_id)[field][pos]

    def index(self):
        import pandas as pd  # noqa: PLC0415

        idx = self.file["index"]
        vids = [v.decode() if isinstance(v, bytes) else v for v in idx["video_id"][()]]
        frames = idx["frame_index"][()]
        df = pd.DataFrame({"video_id": vids, "frame_index": frames})
        df["row"] = df.groupby("video_id", sort=False).cumcount()
        return df


@dataclass
class ItemRef:
    video_id: str
    frame_index: int
    shard: int
    row: int


class Store:
    """All shards of one stage output directory, addressed by (video_id, frame_index)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        paths = shard_files(self.directory)
        if not paths:
            raise FileNotFoundError(f"{self.directory}: no shard-*.h5 files")
        self.shards = [ShardReader(p) for p in paths]
        self._where: dict[str, int] | None = None

    def _locate(self) -> dict[str, int]:
        if self._where is None:
            self._where = {}
            for i, sh in enumerate(self.shards):
                for vid in sh.videos():
                    self._where[vid] = i
        return self._where

    def videos(self) -> list[str]:
        return sorted(self._locate())

    def shard_for(self, video_id: str) -> ShardReader:
        try:
            return self.shards[self._locate()[video_id]]
        except KeyError:
            raise KeyError(f"{self.directory}: no video {video_id!r}") from None

    def index(self):
        import pandas as pd  # noqa: PLC0415

        frames = []
        for i, sh in enumerate(self.shards):
            df = sh.index()
            df["shard"] = i
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    def frame_indices(self, video_id: str) -> np.ndarray:
        return self.shard_for(video_id).frame_indices(video_id)

    def read(self, video_id: str, field: str, rows=None) -> np.ndarray:
        return self.shard_for(video_id).read(video_id, field, rows)

    def read_item(self, video_id: str, frame_index: int, field: str) -> np.ndarray:
        return self.shard_for(video_id).read_item(video_id, frame_index, field)

    def attrs(self) -> dict:
        return self.shards[0].attrs

    def close(self) -> None:
        for sh in self.shards:
            sh.close()
