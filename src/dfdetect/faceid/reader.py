"""Read the face-embedding cache (``data/face_emb``) written by :mod:`dfdetect.faceid.embed`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FIELD = "embedding"


def read_embeddings(directory: str | Path, items) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings of ``items`` (``DetectorData.items`` rows: shard, row, video_id) as float32
    ``(n, d)`` in ``items``' order, and the store's root attributes (``embedder``, ``params``)."""
    from ..store import Store  # noqa: PLC0415

    store = Store(directory)
    try:
        out = None
        for (shard, vid), grp in items.groupby(["shard", "video_id"], sort=False):
            values = store.shards[int(shard)].read(vid, FIELD)[grp["row"].to_numpy()]
            if out is None:
                out = np.zeros((len(items), values.shape[1]), np.float32)
            out[np.asarray(grp.index)] = values
        return (out if out is not None else np.zeros((0, 0), np.float32)), store.attrs()
    finally:
        store.close()
