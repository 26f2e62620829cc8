"""The manifest: one row per video, the vocabulary every stage speaks.

``video_id`` is the path of the video relative to the dataset root (POSIX separators), never a
basename: FaceForensics++ has ``000.mp4`` under every method and quality. Frames and faces are
keyed by ``(video_id, frame_index)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..store import shard_of, shard_path, write_csv_atomic

COLUMNS = {
    "video_id": str,     # path relative to the dataset root
    "path": str,         # path to open (dataset root joined with video_id)
    "dataset": str,      # layout name: ffpp, celebdf, dfdc, uadfv, generic, demo
    "label": str,        # "real" | "fake"
    "method": str,       # manipulation method ("" or "original" for real videos)
    "quality": str,      # compression level (raw, c23, c40, ...) or ""
    "split": str,        # train | val | test
    "identity": str,     # person shown (target identity for fakes)
    "source_id": str,    # for fakes: the source identity / video the face came from
    "fps": float,
    "frames": int,
    "duration": float,
    "width": int,
    "height": int,
    "has_audio": bool,
}
LABELS = ("real", "fake")
SPLITS = ("train", "val", "test")


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if t in (str, bool) else t)
                         for c, t in COLUMNS.items()})


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Fill missing columns, coerce types, sort by video_id, and validate."""
    df = df.copy()
    defaults = {"path": "", "dataset": "", "method": "", "quality": "", "split": "",
                "identity": "", "source_id": "", "fps": np.nan, "frames": -1,
                "duration": np.nan, "width": -1, "height": -1, "has_audio": False}
    for col, default in defaults.items():
        if col not in df.columns:
            df[col] = default
    for col in ("video_id", "label"):
        if col not in df.columns:
            raise ValueError(f"manifest needs a {col!r} column")
    for col, typ in COLUMNS.items():
        if typ is str:
            df[col] = df[col].fillna("").astype(str)
        elif typ is bool:
            df[col] = df[col].map(lambda v: str(v).strip().lower() in ("1", "true", "yes")).astype(bool)
        elif typ is int:
            df[col] = pd.to_numeric(df[col], errors="coerce").fillna(-1).astype(np.int64)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["video_id"] = df["video_id"].str.replace("\\", "/", regex=False)
    df["label"] = df["label"].str.strip().str.lower()
    bad = ~df["label"].isin(LABELS)
    if bad.any():
        raise ValueError(f"labels must be real/fake; got {sorted(df.loc[bad, 'label'].unique())[:5]}")
    dup = df["video_id"].duplicated()
    if dup.any():
        raise ValueError(f"duplicate video_id: {df.loc[dup, 'video_id'].iloc[:5].tolist()}")
    badsplit = (df["split"] != "") & ~df["split"].isin(SPLITS)
    if badsplit.any():
        raise ValueError(f"unknown split values: {sorted(df.loc[badsplit, 'split'].unique())}")
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].sort_values("video_id", kind="stable").reset_index(drop=True)


def is_fake(df: pd.DataFrame) -> np.ndarray:
    return (df["label"].to_numpy() == "fake").astype(np.int64)


def grouped_split(groups: Iterable[str], fractions=(0.7, 0.15, 0.15), seed: int = 0) -> dict[str, str]:
    """Deterministic split of groups (identities) into train/val/test.

    Groups are shuffled with ``seed`` and assigned greedily so every split gets at least one
    group when there are enough; no group is in two splits.
    """
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(uniq)))
    fr = np.asarray(fractions, dtype=float)
    fr = fr / fr.sum()
    n = len(uniq)
    counts = np.zeros(len(fr), dtype=int)
    nonzero = np.flatnonzero(fr > 0)
    if n >= len(nonzero):          # every requested split gets at least one group
        counts[nonzero] = 1
    while counts.sum() < n:        # then the largest shortfall gets the next group
        counts[int(np.argmax(fr * n - counts))] += 1
    out: dict[str, str] = {}
    pos = 0
    for name, c in zip(SPLITS, counts):
        for j in order[pos:pos + c]:
            out[uniq[j]] = name
        pos += c
    return out


def assign_missing_splits(df: pd.DataFrame, fractions=(0.7, 0.15, 0.15), seed: int = 0,
                          group_col: str = "identity") -> pd.DataFrame:
    """Fill empty ``split`` values by an identity-grouped split.

    Fakes involve two people (``identity`` and ``source_id``); both are tied together with a
    union-find so that no person appears in two splits.
    """
    df = df.copy()
    todo = df["split"] == ""
    if not todo.any():
        return df
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    sub = df.loc[todo]
    keys = []
    for vid, ident, src in zip(sub["video_id"], sub[group_col], sub["source_id"]):
        a = ident or f"video:{vid}"
        find(a)
        if src:
            union(a, src)
        keys.append(a)
    roots = [find(k) for k in keys]
    mapping = grouped_split(roots, fractions, seed)
    df.loc[todo, "split"] = [mapping[r] for r in roots]
    return df


def read_manifest(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False, dtype={"video_id": str, "identity": str,
                                                         "source_id": str, "quality": str})
    return normalise(df)


def write_manifest(df: pd.DataFrame, path: str | Path) -> None:
    write_csv_atomic(path, normalise(df))


def write_shard_manifests(df: pd.DataFrame, directory: str | Path, num_shards: int) -> list[Path]:
    """One manifest per shard: a shard's stages then depend only on their own videos."""
    df = normalise(df)
    shards = df["video_id"].map(lambda v: shard_of(v, num_shards))
    paths = []
    for s in range(num_shards):
        p = shard_path(directory, s, ".csv")
        write_csv_atomic(p, df[shards == s])
        paths.append(p)
    return paths
