"""The hyperspectral cache: MST++ cubes of every aligned face, in sharded HDF5.

One shard per face shard (``data/hsi/shard-N.h5``, the :mod:`dfdetect.store` layout):

- ``/videos/<video>/hsi``: float16 ``(n, 31, H, W)``, chunked one face per chunk, compressed
  losslessly (the float16 values round-trip bit for bit) with the codec in :data:`DEFAULT_CODEC`,
  chosen by measurement (``benchmarks/hsi_cache.py``): Blosc with byte shuffle and a fast codec.
  Reading one face is one chunk read and one decompression;
- ``/videos/<video>/band_mean``: float32 ``(n, 31)``, the mean of each band of each face;
- root attribute ``band_stats`` (JSON): per-band count, mean, std, min, max over the shard, and
  ``params`` / ``model`` attributes saying which MST++ weights produced the cubes.

:class:`HSICache` reads a face back as a float32 torch tensor; a warm read of a 31 x 128 x 128
face costs well under a millisecond (decompression straight into a reused float16 buffer, then
torch's float16 -> float32 conversion, which is ~10x faster than numpy's ``astype``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..store import ShardWriter, Store

FIELD = "hsi"
MEAN_FIELD = "band_mean"
#: Blosc + LZ4HC with byte shuffle: float16's high (sign/exponent) bytes are grouped together,
#: where they compress well, and LZ4 decodes at GB/s. The low mantissa bytes are close to
#: incompressible, so every lossless codec measured lands at 0.37-0.44 of fp32 bytes on MST++
#: face cubes; this one is the smallest of those that decode a 31 x 128 x 128 face in < 1 ms
#: on one core (benchmarks/hsi_cache.py: 0.40 of fp32, ~0.8 ms; gzip-4 0.37 but ~3 ms).
DEFAULT_CODEC: dict[str, Any] = {"codec": "blosc-lz4hc", "level": 5, "shuffle": True}
FP16_MAX = 65504.0


class BandStats:
    """Streaming per-band count / mean / std / min / max (float64 accumulators)."""

    def __init__(self, bands: int = 31):
        self.n = 0
        self.sum = np.zeros(bands)
        self.sumsq = np.zeros(bands)
        self.min = np.full(bands, np.inf)
        self.max = np.full(bands, -np.inf)

    def update(self, cubes: np.ndarray) -> None:
        """``cubes``: (n, bands, H, W)."""
        if len(cubes) == 0:
            return
        x = np.asarray(cubes, dtype=np.float64).transpose(1, 0, 2, 3).reshape(cubes.shape[1], -1)
        self.n += x.shape[1]
        self.sum += x.sum(1)
        self.sumsq += (x * x).sum(1)
        self.min = np.minimum(self.min, x.min(1))
        self.max = np.maximum(self.max, x.max(1))

    def to_dict(self) -> dict:
        if self.n == 0:
            return {"count": 0}
        mean = self.sum / self.n
        std = np.sqrt(np.maximum(self.sumsq / self.n - mean ** 2, 0.0))
        r = lambda a: [round(float(v), 6) for v in a]  # noqa: E731
        return {"count": int(self.n), "mean": r(mean), "std": r(std), "min": r(self.min),
                "max": r(self.max)}


def to_fp16(cubes: np.ndarray) -> np.ndarray:
    """float32 cubes -> float16, clipped to float16's finite range (never inf)."""
    return np.clip(np.asarray(cubes, dtype=np.float32), -FP16_MAX, FP16_MAX).astype(np.float16)


class HSIWriter:
    """Write one HSI shard atomically; ``add`` per video, statistics on close.

    >>> with HSIWriter(path, params=cfg, model_info={...}) as w:
    ...     w.add(video_id, frame_indices, cubes)          # (n, 31, H, W) float32/16
    """

    def __init__(self, path: str | Path, params: Mapping | None = None,
                 codec: Mapping[str, Any] | str | None = None,
                 model_info: Mapping[str, Any] | None = None, bands: int = 31):
        self.codec = dict(DEFAULT_CODEC) if codec is None else codec
        self._w = ShardWriter(path, stage="hyperspectral", params=params,
                              compression={FIELD: self.codec},
                              attrs={"model": dict(model_info or {}), "codec": self.codec,
                                     "field": FIELD})
        self.stats = BandStats(bands)
        self.faces = 0

    def __enter__(self) -> "HSIWriter":
        self._w.__enter__()
        return self

    def add(self, video_id: str, frame_indices, cubes: np.ndarray,
            attrs: Mapping[str, Any] | None = None) -> None:
        half = to_fp16(cubes)
        self.stats.update(half)
        means = half.astype(np.float32).mean(axis=(2, 3)) if len(half) else np.zeros((0, half.shape[1]), np.float32)
        self._w.add_video(video_id, frame_indices, attrs=attrs, **{FIELD: half, MEAN_FIELD: means})
        self.faces += len(half)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self._w._file is not None:
            # root attribute written last, before the atomic rename (ShardWriter's file handle)
            self._w._file.attrs["band_stats"] = json.dumps(self.stats.to_dict(), sort_keys=True)
            self._w._file.attrs["faces"] = int(self.faces)
        return self._w.__exit__(exc_type, exc, tb)


class HSICache:
    """Faces of an HSI cache directory as float32 torch tensors, one chunk read each."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.store = Store(self.directory)
        self._buf: np.ndarray | None = None
        self._datasets: dict = {}   # open dataset handles: a warm read is one chunk read

    def __getstate__(self):
        return {"directory": self.directory}

    def __setstate__(self, state):
        self.__init__(state["directory"])

    def index(self):
        return self.store.index()

    def band_stats(self) -> list[dict]:
        return [json.loads(sh.file.attrs.get("band_stats", "{}")) for sh in self.store.shards]

    def dataset(self, video_id: str, shard: int | None = None):
        key = (video_id, shard, os.getpid())
        ds = self._datasets.get(key)
        if ds is None or not ds.id.valid:
            sh = self.store.shards[shard] if shard is not None else self.store.shard_for(video_id)
            ds = self._datasets[key] = sh.group(video_id)[FIELD]
        return ds

    def read_numpy(self, video_id: str, row: int, shard: int | None = None) -> np.ndarray:
        """float16 (31, H, W) of row ``row`` of a video (a fresh array)."""
        return self.dataset(video_id, shard)[int(row)]

    def read(self, video_id: str, row: int, shard: int | None = None, out=None):
        """float32 torch tensor (31, H, W): one chunk decompressed into a reused buffer."""
        import torch  # noqa: PLC0415

        ds = self.dataset(video_id, shard)
        shape = ds.shape[1:]
        if self._buf is None or self._buf.shape != shape:
            self._buf = np.empty(shape, dtype=np.float16)
        ds.read_direct(self._buf, source_sel=np.s_[int(row)])
        half = torch.from_numpy(self._buf)
        if out is not None:
            out.copy_(half)
            return out
        return half.float()

    def read_frame(self, video_id: str, frame_index: int):
        rows = self.store.frame_indices(video_id)
        pos = int(np.searchsorted(rows, frame_index))
        if pos >= len(rows) or rows[pos] != frame_index:
            raise KeyError(f"{self.directory}: {video_id!r} has no frame {frame_index}")
        return self.read(video_id, pos)

    def close(self) -> None:
        self._datasets.clear()
        self.store.close()


def chunk_layout(path: str | Path, video_id: str) -> dict:
    """Chunk shape, filters and chunk count of one video's ``hsi`` dataset (for tests/reports)."""
    import h5py  # noqa: PLC0415

    from ..store import _ensure_plugins, video_key  # noqa: PLC0415

    _ensure_plugins()
    with h5py.File(path, "r") as f:
        ds = f["videos"][video_key(video_id)][FIELD]
        return {"shape": ds.shape, "chunks": ds.chunks, "dtype": str(ds.dtype),
                "num_chunks": ds.id.get_num_chunks(), "filters": list(ds._filters),
                "stored_bytes": int(ds.id.get_storage_size())}
