"""Torch datasets over the sharded face store.

:class:`FaceDataset` serves one stored item (``video_id, frame_index``) per index, reading one
HDF5 chunk through :class:`dfdetect.store.Store`. It works with ``DataLoader`` worker processes:
the store's readers are reopened in each worker after the fork (``ShardReader`` checks the pid)
and pickle by path under the spawn start method.

Augmentations are reproducible regardless of the number of workers: the transform receives a
``numpy.random.Generator`` seeded from ``(seed, epoch, index)``; call :meth:`FaceDataset.set_epoch`
before each epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FaceTransform:
    """uint8 HxWx3 RGB -> float32 3xSxS tensor: resize, optional flip, normalise.

    ``hflip`` is the probability of a horizontal flip (training augmentation; the flip is drawn
    from the per-item generator, so it is reproducible).
    """

    def __init__(self, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, hflip: float = 0.0):
        self.image_size = int(image_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
        self.hflip = float(hflip)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None):
        import torch  # noqa: PLC0415

        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        s = self.image_size
        if image.shape[0] != s or image.shape[1] != s:
            import cv2  # noqa: PLC0415

            shrink = image.shape[0] > s and image.shape[1] > s
            image = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if self.hflip > 0 and rng is not None and rng.random() < self.hflip:
            image = image[:, ::-1]
        x = (image.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


class FaceDataset:
    """``(x, y, i)`` for row ``i`` of ``items_df`` (a :meth:`DetectorData.items` table).

    ``items_df`` needs ``video_id`` and ``frame_index``; ``shard`` and ``row`` (as given by
    ``Store.index()``) make each read a direct chunk access. ``y`` is taken from ``label_col``
    (float32; ``nan`` where the column is absent). ``transform(image, rng)`` maps the stored
    array to a tensor; without one the raw array is returned.
    """

    def __init__(self, store_dir: str | Path, items_df: pd.DataFrame, field: str = "face",
                 transform: Callable | None = None, label_col: str = "y", seed: int = 0):
        from ..store import Store  # noqa: PLC0415

        self.store_dir = Path(store_dir)
        self.store = Store(self.store_dir)
        self.field = field
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        df = items_df.reset_index(drop=True)
        self.video_ids = df["video_id"].astype(str).tolist()
        self.frame_indices = df["frame_index"].astype(np.int64).to_numpy()
        have_rows = "shard" in df.columns and "row" in df.columns
        self.shards = df["shard"].astype(np.int64).to_numpy() if have_rows else None
        self.rows = df["row"].astype(np.int64).to_numpy() if have_rows else None
        self.labels = (df[label_col].astype(np.float32).to_numpy() if label_col in df.columns
                       else np.full(len(df), np.nan, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.video_ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def read(self, i: int) -> np.ndarray:
        vid = self.video_ids[i]
        if self.rows is not None:
            shard = self.store.shards[int(self.shards[i])]
            return shard.group(vid)[self.field][int(self.rows[i])]
        return self.store.read_item(vid, int(self.frame_indices[i]), self.field)

    def __getitem__(self, i: int):
        i = int(i)
        if i < 0 or i >= len(self):
            raise IndexError(i)
        try:
            image = self.read(i)
        except Exception as exc:
            raise RuntimeError(f"{self.store_dir}: cannot read {self.field!r} of "
                               f"{self.video_ids[i]!r} frame {self.frame_indices[i]}: {exc}") from exc
        if self.transform is not None:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            image = self.transform(image, rng)
        return image, self.labels[i], i


def subsample(items: pd.DataFrame, max_items: int | None, seed: int, by: str = "y") -> pd.DataFrame:
    """At most ``max_items`` rows, drawn without replacement and stratified by ``by``.

    Deterministic for a seed; keeps the original row order. ``max_items`` of 0/None keeps all.
    """
    if not max_items or len(items) <= int(max_items):
        return items.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    n = int(max_items)
    if by in items.columns:
        groups = items.groupby(by, sort=True).indices
        total = len(items)
        take: list[int] = []
        quotas = {g: max(1, int(round(n * len(idx) / total))) for g, idx in groups.items()}
        while sum(quotas.values()) > n:  # rounding: trim the largest group
            g = max(quotas, key=lambda k: quotas[k])
            quotas[g] -= 1
        for g, idx in groups.items():
            take.extend(rng.choice(idx, size=min(quotas[g], len(idx)), replace=False).tolist())
        keep = np.sort(np.asarray(take))
    else:
        keep = np.sort(rng.choice(len(items), size=n, replace=False))
    return items.iloc[keep].reset_index(drop=True)
