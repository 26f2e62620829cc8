"""Torch datasets over the sharded face store.

:class:`FaceDataset` serves one stored item (``video_id, frame_index``) per index, reading one
HDF5 chunk through :class:`dfdetect.store.Store`. It works with ``DataLoader`` worker processes:
the store's readers are reopened in each worker after the fork (``ShardReader`` checks the pid)
and pickle by path under the spawn start method.

Augmentations are reproducible regardless of the number of workers: the transform receives a
``numpy.random.Generator`` seeded from ``(seed, epoch, index)``; call :meth:`FaceDataset.set_epoch`
before each epoch. :class:`FaceTransform` applies the real-world-video augmentations of
:mod:`dfdetect.nn.augment` (``augment``); rows flagged ``synthetic`` (see :func:`with_synthetic`)
are self-blended fakes (:mod:`dfdetect.nn.sbi`) made on the fly from a real face and its stored
landmarks; :class:`BalancedSampler` draws every class equally often (``sampling: balanced``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def landmarks_in_face(landmarks68: np.ndarray, field: str, size: int, shard_params: dict) -> np.ndarray:
    """The full-frame 68 landmarks of a stored face mapped into that face's pixel coordinates.

    ``face`` (the CNN input) was warped by :func:`dfdetect.faces.align.align_matrix` with the
    shard's ``face_size`` and ``margin``; ``face128`` (DefakeHop's input) by
    :func:`dfdetect.faces.align.eyes_level_matrix` at its size. ``size`` is the stored face's
    side; the shard's recorded params give the margin (the align_faces defaults otherwise).
    """
    from ..faces.align import align_matrix, eyes_level_matrix, transform_points  # noqa: PLC0415

    lm = np.asarray(landmarks68, np.float64).reshape(-1, 2)
    if field == "face128":
        m = eyes_level_matrix(lm, int(size))
    else:
        m = align_matrix(lm, int(size), float(shard_params.get("margin", 0.3)))
    return np.asarray(transform_points(m, lm), np.float64)



class FaceTransform:
    """uint8 HxWx3 RGB -> float32 3xSxS tensor: resize, optional flip, normalise.

    ``hflip`` is the probability of a horizontal flip (training augmentation; the flip is drawn
    from the per-item generator, so it is reproducible).
    """

    def __init__(self, image_size: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, hflip: float = 0.0,
                 augment: Mapping[str, Any] | None = None):
        from .augment import Augment  # noqa: PLC0415

        self.augment = Augment(augment)
        self.image_size = int(image_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, -1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, -1)
        self.hflip = float(hflip)

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None = None):
        import torch  # noqa: PLC0415

        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if self.augment.active and rng is not None:
            image = self.augment(image, rng)        # on the stored face, before the resize
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

    A true ``synthetic`` column marks rows whose image is a self-blended fake of the stored real
    face (:func:`dfdetect.nn.sbi.self_blend_pair`), made from its stored ``landmarks`` mapped into
    the face (their label column should say fake). An ``sbi_pair`` column (>= 0) ties such a fake
    to the real row it was made from: both draw the pair's generator of ``(seed, epoch, pair)``,
    the fake row serves the pair's fake and the real row the pair's real (the face itself, or its
    altered copy when SBI altered the target), as SBI trains on each real beside its self-blend.
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
        self.synthetic = (df["synthetic"].astype(bool).to_numpy() if "synthetic" in df.columns
                          else np.zeros(len(df), dtype=bool))
        self.pairs = (df["sbi_pair"].fillna(-1).astype(np.int64).to_numpy() if "sbi_pair" in df.columns
                      else np.full(len(df), -1, dtype=np.int64))
        if (self.synthetic & (self.pairs < 0)).any():
            raise ValueError("synthetic rows need an sbi_pair (see with_synthetic)")
        self._shard_params: dict[int, dict] = {}

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

    def landmarks(self, i: int, size: int) -> np.ndarray:
        """Row ``i``'s stored 68 landmarks in the coordinates of its ``size`` x ``size`` face."""
        import json  # noqa: PLC0415

        vid = self.video_ids[i]
        if self.rows is not None:
            shard_no = int(self.shards[i])
            lm = self.store.shards[shard_no].group(vid)["landmarks"][int(self.rows[i])]
        else:
            lm = self.store.read_item(vid, int(self.frame_indices[i]), "landmarks")
            shard_no = -1
        if shard_no not in self._shard_params:
            shard = self.store.shards[shard_no] if shard_no >= 0 else None
            raw = shard.file.attrs.get("params", "{}") if shard is not None else "{}"
            self._shard_params[shard_no] = json.loads(raw) if isinstance(raw, str) else {}
        return landmarks_in_face(lm, self.field, size, self._shard_params[shard_no])

    def __getitem__(self, i: int):
        i = int(i)
        if i < 0 or i >= len(self):
            raise IndexError(i)
        pair = int(self.pairs[i])
        try:
            image = self.read(i)
            lm = self.landmarks(i, image.shape[0]) if pair >= 0 else None
        except Exception as exc:
            raise RuntimeError(f"{self.store_dir}: cannot read {self.field!r} of "
                               f"{self.video_ids[i]!r} frame {self.frame_indices[i]}: {exc}") from exc
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if lm is not None:
            from .sbi import self_blend_pair  # noqa: PLC0415

            try:
                real, fake, _ = self_blend_pair(np.asarray(image), lm,
                                                np.random.default_rng([self.seed, self.epoch, 1, pair]))
            except ValueError as exc:
                raise RuntimeError(f"{self.store_dir}: cannot self-blend {self.video_ids[i]!r} frame "
                                   f"{self.frame_indices[i]}: {exc}") from exc
            image = fake if self.synthetic[i] else real
        if self.transform is not None:
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


SYNTHETIC_FAKES = ("none", "sbi", "mixed")


def with_synthetic(items: pd.DataFrame, mode: str) -> pd.DataFrame:
    """The training table of ``synthetic_fakes: mode``.

    - ``none``: ``items`` unchanged;
    - ``sbi``: the real rows only (the dataset's fakes are dropped), each twice: as the real of
      its pair (``y = 0``) and as its self-blended fake (``synthetic = True``, ``y = 1``), as SBI
      trains;
    - ``mixed``: every row, plus a self-blended fake of each real row.

    The added rows keep their real row's ``video_id``/``frame_index`` (the face they are made
    from) and follow the original rows in the same order; ``sbi_pair`` numbers each real row and
    its fake alike (``-1`` on the dataset's fakes).
    """
    mode = str(mode or "none").lower()
    if mode not in SYNTHETIC_FAKES:
        raise ValueError(f"synthetic_fakes must be one of {', '.join(SYNTHETIC_FAKES)}, got {mode!r}")
    items = items.reset_index(drop=True)
    if mode == "none":
        return items
    reals = items[items["y"].astype(float) < 0.5]
    if reals.empty:
        raise ValueError(f"synthetic_fakes: {mode} needs real training faces; the train split has none")
    pair = pd.Series(-1, index=items.index, dtype=np.int64)
    pair[reals.index] = np.arange(len(reals))
    items = items.assign(sbi_pair=pair)
    reals = items.loc[reals.index]
    base = reals if mode == "sbi" else items
    fakes = reals.assign(y=np.float32(1.0), synthetic=True)
    if "label" in fakes.columns:
        fakes["label"] = "fake"
    if "method" in fakes.columns:
        fakes["method"] = "sbi"
    return pd.concat([base.assign(synthetic=False), fakes], ignore_index=True)


class BalancedSampler:
    """Indices of one epoch with every class drawn equally often (``sampling: balanced``).

    ``len(dataset)`` draws per epoch (as a shuffled epoch), split evenly over the classes of
    ``dataset.labels``; a class with fewer items than its share is drawn with replacement, the
    others without. Seeded by ``(seed, dataset.epoch)``, so it follows
    :meth:`FaceDataset.set_epoch` and the same seed gives the same order. Items without a finite
    label are never drawn.
    """

    def __init__(self, dataset, seed: int = 0):
        self.dataset = dataset
        self.seed = int(seed)
        labels = np.asarray(dataset.labels, dtype=np.float64)
        ok = np.isfinite(labels)
        self.classes = [np.flatnonzero(ok & (labels <= 0.5)), np.flatnonzero(ok & (labels > 0.5))]
        self.classes = [c for c in self.classes if len(c)]
        self.n = int(ok.sum())

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        epoch = int(getattr(self.dataset, "epoch", 0))
        rng = np.random.default_rng([self.seed, epoch, 0xBA1])
        k = len(self.classes)
        if k == 0:
            return iter([])
        shares = [self.n // k + (1 if j < self.n % k else 0) for j in range(k)]
        parts = [rng.choice(idx, size=m, replace=m > len(idx)) for idx, m in zip(self.classes, shares)]
        order = np.concatenate(parts)
        rng.shuffle(order)
        return iter(order.tolist())
# ----------------------------------------------------------------------------- sequences
def video_windows(frame_indices: Sequence[int], seq_len: int, frame_stride: int = 1) -> list[list[int]]:
    """Every window of ``seq_len`` stored faces of one video, as positions into its faces
    (sorted by ``frame_index``), with the faces ``frame_stride`` source frames apart.

    The faces are taken every ``k = max(1, round(frame_stride / median_gap))``-th stored face
    (``median_gap``: the median difference of the stored ``frame_index``), in each of the ``k``
    phases; a window is ``seq_len`` consecutive faces of a phase. A phase shorter than
    ``seq_len`` gives one window padded by repeating its last face.
    """
    n = len(frame_indices)
    if n == 0:
        return []
    f = max(1, int(seq_len))
    gaps = np.diff(np.asarray(frame_indices, dtype=np.int64))
    gap = float(np.median(gaps)) if gaps.size else 1.0
    k = max(1, int(round(float(frame_stride) / max(gap, 1.0))))
    out: list[list[int]] = []
    for phase in range(min(k, n)):
        pos = list(range(phase, n, k))
        if len(pos) < f:
            out.append(pos + [pos[-1]] * (f - len(pos)))
            continue
        out.extend(pos[s:s + f] for s in range(len(pos) - f + 1))
    return out


class SequenceDataset:
    """Windows of ``seq_len`` faces of one video: ``(x, y, i)`` with ``x`` of shape
    ``(seq_len, 3, S, S)`` (two_branch.txt §3.1, §4).

    ``mode``:

    - ``"epoch"`` (training): a stratified epoch, one random window per video (two_branch.txt
      §3.1: "sampling a random sequence once from all the videos"), each real video
      ``real_oversample`` times, and per ``method`` a seeded random ``1 / fake_undersample`` of
      the fake videos; redrawn by :meth:`set_epoch` from ``(seed, epoch)`` only, so the same for
      any number of loader workers;
    - ``"middle"``: one fixed window per video (its middle one; validation loss);
    - ``"disjoint"``: the non-overlapping windows of the first phase (the hypersphere centre);
    - ``"all"``: every window; with ``max_windows``, that many per video, evenly spaced, plus
      any needed to cover every stored face (scoring).

    ``windows`` lists ``(video position, [row positions into items])`` of the current epoch;
    ``items`` is a :meth:`DetectorData.items` table sorted by ``video_id, frame_index``.
    """

    MODES = ("epoch", "middle", "disjoint", "all")

    def __init__(self, store_dir: str | Path, items_df: pd.DataFrame, seq_len: int,
                 frame_stride: int = 1, mode: str = "all", field: str = "face",
                 transform: Callable | None = None, seed: int = 0, real_oversample: int = 1,
                 fake_undersample: int = 1, max_windows: int = 0):
        if mode not in self.MODES:
            raise ValueError(f"SequenceDataset mode must be one of {self.MODES}, got {mode!r}")
        if int(real_oversample) < 1 or int(fake_undersample) < 1:
            raise ValueError("real_oversample and fake_undersample must be >= 1")
        df = items_df.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
        self.items = df
        self.faces = FaceDataset(store_dir, df, field=field, transform=None, seed=seed)
        self.transform = transform
        self.seq_len, self.mode, self.seed = int(seq_len), mode, int(seed)
        self.real_oversample, self.fake_undersample = int(real_oversample), int(fake_undersample)
        self.max_windows = int(max_windows)
        self.epoch = 0
        self.video_ids: list[str] = []
        self.video_labels: list[float] = []
        self.video_methods: list[str] = []
        self.video_windows: list[list[list[int]]] = []
        self.padded_videos = 0
        for vid, grp in df.groupby("video_id", sort=False):
            rows = grp.index.to_numpy()
            wins = video_windows(grp["frame_index"].to_numpy(), self.seq_len, frame_stride)
            self.padded_videos += int(len(rows) < self.seq_len)
            self.video_ids.append(str(vid))
            self.video_labels.append(float(grp["y"].iloc[0]) if "y" in grp else float("nan"))
            self.video_methods.append(str(grp["method"].iloc[0]) if "method" in grp else "")
            self.video_windows.append([[int(rows[p]) for p in w] for w in wins])
        self.windows: list[tuple[int, list[int]]] = []
        self.set_epoch(0)

    # ------------------------------------------------------------------ window selection
    def _epoch_videos(self, epoch: int) -> list[int]:
        """Video positions of a stratified epoch (reals repeated, fakes undersampled per method)."""
        out: list[int] = []
        by_method: dict[str, list[int]] = {}
        for v, y in enumerate(self.video_labels):
            if y > 0.5:
                by_method.setdefault(self.video_methods[v], []).append(v)
            else:
                out.extend([v] * self.real_oversample)
        for m_i, method in enumerate(sorted(by_method)):
            vids = by_method[method]
            keep = max(1, int(round(len(vids) / self.fake_undersample)))
            rng = np.random.default_rng([self.seed, int(epoch), 1 + m_i])
            out.extend(sorted(rng.choice(vids, size=min(keep, len(vids)), replace=False).tolist()))
        return sorted(out)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        wins: list[tuple[int, list[int]]] = []
        if self.mode == "epoch":
            rep: dict[int, int] = {}
            for v in self._epoch_videos(self.epoch):
                r = rep.get(v, 0)
                rep[v] = r + 1
                rng = np.random.default_rng([self.seed, self.epoch, 0, v, r])
                cand = self.video_windows[v]
                wins.append((v, cand[int(rng.integers(len(cand)))]))
        elif self.mode == "middle":
            wins = [(v, w[(len(w) - 1) // 2]) for v, w in enumerate(self.video_windows)]
        elif self.mode == "disjoint":
            for v, w in enumerate(self.video_windows):
                chosen = w[::self.seq_len] if len(w) >= self.seq_len else w[:1]
                wins.extend((v, c) for c in chosen)
        else:
            for v, w in enumerate(self.video_windows):
                if self.max_windows and len(w) > self.max_windows:
                    pick = set(np.round(np.linspace(0, len(w) - 1, self.max_windows)).astype(int).tolist())
                    covered = {r for i in pick for r in w[i]}
                    for j, win in enumerate(w):       # a face no kept window covers: add one
                        if not covered.issuperset(win):
                            pick.add(j)
                            covered.update(win)
                    w = [w[i] for i in sorted(pick)]
                wins.extend((v, c) for c in w)
        self.windows = wins

    @property
    def labels(self) -> np.ndarray:
        return np.asarray([self.video_labels[v] for v, _ in self.windows], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        import torch  # noqa: PLC0415

        i = int(i)
        if i < 0 or i >= len(self):
            raise IndexError(i)
        v, rows = self.windows[i]
        frames = []
        for r in rows:
            try:
                image = self.faces.read(r)
            except Exception as exc:
                raise RuntimeError(f"{self.faces.store_dir}: cannot read {self.faces.field!r} of "
                                   f"{self.video_ids[v]!r} frame {self.faces.frame_indices[r]}: {exc}") from exc
            if self.transform is not None:
                # one generator seed per window: every frame of a sequence gets the same flip
                image = self.transform(image, np.random.default_rng([self.seed, self.epoch, i]))
            frames.append(image)
        x = torch.stack(frames) if self.transform is not None else np.stack(frames)
        return x, np.float32(self.video_labels[v]), i
