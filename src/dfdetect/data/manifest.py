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
    "height": int,       # displayed size (display matrix applied)
    "rotation": int,     # display rotation, counter-clockwise degrees (0, 90, -90, 180)
    "has_audio": bool,
    "sha256": str,       # of the file's bytes ("" with ingest.checksum false): a video changed in
                         # place changes its manifest shard, so DVC reruns the stages that read it
}
#: columns a manifest may carry beyond COLUMNS (kept, after them, by :func:`normalise`)
OPTIONAL_COLUMNS = {
    "use": str,          # "all" on every row of a test-only set (ingest.use: all); absent otherwise
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
                "duration": np.nan, "width": -1, "height": -1, "rotation": 0, "has_audio": False,
                "sha256": ""}
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

    ``groups`` has one entry per video (repeats give a group's size), so the fractions are
    fractions of videos, not of groups: one person with 500 videos is not "one group" like a
    person with 2. Groups are shuffled with ``seed``, taken largest first (ties in shuffled
    order), and each goes to the split furthest below its target; every requested split gets
    at least one group when there are enough. No group is in two splits.
    """
    groups = list(groups)
    uniq = sorted(set(groups))
    if not uniq:
        return {}
    size = pd.Series(groups, dtype=object).value_counts()
    rng = np.random.default_rng(seed)
    rank = {g: int(r) for g, r in zip(uniq, rng.permutation(len(uniq)))}
    order = sorted(uniq, key=lambda g: (-int(size[g]), rank[g]))
    fr = np.asarray(fractions, dtype=float)
    fr = fr / fr.sum()
    target = fr * len(groups)
    have = np.zeros(len(fr))
    ngroups = np.zeros(len(fr), dtype=int)
    nonzero = np.flatnonzero(fr > 0)
    out: dict[str, str] = {}
    for left, g in zip(range(len(order), 0, -1), order):
        empty = [int(s) for s in nonzero if ngroups[s] == 0]
        choices = empty if 0 < left <= len(empty) else [int(s) for s in nonzero]
        s = max(choices, key=lambda k: (target[k] - have[k], -k))   # largest shortfall; train first
        out[g] = SPLITS[s]
        have[s] += size[g]
        ngroups[s] += 1
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
    """One manifest per shard: a shard's stages then depend only on their own videos.

    Shard manifests left by an earlier run with more shards are removed, so the folder always
    holds exactly ``num_shards`` files.
    """
    df = normalise(df)
    shards = df["video_id"].map(lambda v: shard_of(v, num_shards))
    paths = []
    for s in range(num_shards):
        p = shard_path(directory, s, ".csv")
        write_csv_atomic(p, df[shards == s])
        paths.append(p)
    keep = {p.name for p in paths}
    for stale in Path(directory).glob("shard-*.csv"):
        if stale.name not in keep:
            stale.unlink()
    return paths
