"""What the dataset layouts share: file listing, row frames, errors, val carving.

The layout contract is in the package docstring (:mod:`dfdetect.data.layouts`).
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

import pandas as pd

from ...failures import Failures
from ..manifest import assign_missing_splits

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".ts")
log = logging.getLogger("dfdetect")

ROW_COLUMNS = ["video_id", "label", "method", "quality", "split", "identity", "source_id"]

ScanFn = Callable[..., pd.DataFrame]


class LayoutError(ValueError):
    """The dataset root does not look like the requested layout (fatal: nothing to ingest)."""


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def list_videos(directory: Path, recursive: bool = False) -> list[Path]:
    """Video files of ``directory`` in a deterministic order (sorted by POSIX path)."""
    if not directory.is_dir():
        return []
    it: Iterable[Path] = directory.rglob("*") if recursive else directory.iterdir()
    return sorted((p for p in it if p.is_file() and is_video(p)), key=lambda p: p.as_posix())


def rel(path: Path, root: Path) -> str:
    """The video_id of ``path``: its path relative to the dataset root, POSIX separators."""
    return path.relative_to(root).as_posix()


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=ROW_COLUMNS)
    for col in ROW_COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    return df


def require_dir(root: Path, name: str, what: str, expected: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise LayoutError(f"{root}: no {name}/ folder; is this a {what} root? Expected {expected}")
    return path


def add_missing(failures: Failures, video_id: str, listed_in: str, path: Path) -> None:
    failures.add(video_id, f"listed in {listed_in} but missing on disk", path=str(path))


def _labels_covered(df: pd.DataFrame, todo: pd.Series, fractions) -> bool:
    """Does every split with a positive fraction get each label the rows to split have?"""
    labels = set(df.loc[todo, "label"])
    for name, frac in zip(("train", "val", "test"), fractions):
        got = set(df.loc[todo & (df["split"] == name), "label"])
        if frac > 0 and got != labels:
            return False
    return True


def grouped_fill(df: pd.DataFrame, fractions, seed: int) -> pd.DataFrame:
    """Fill empty splits with the identity-grouped split, person-disjoint where possible.

    First the strict grouping (:func:`~dfdetect.data.manifest.assign_missing_splits`: a fake's
    target and source person are tied together). When fakes chain most people into one group
    (Celeb-DF v2: every celebrity is some other's donor; FF++ actors) a split can end up with no
    fake at all; then the grouping falls back to the target identity only (a source face may
    then appear in another split) and says so.
    """
    todo = df["split"] == ""
    if not todo.any():
        return df.copy()
    strict = assign_missing_splits(df, fractions, seed)
    if _labels_covered(strict, todo, fractions) or not (df.loc[todo, "source_id"] != "").any():
        return strict
    loose = assign_missing_splits(df.assign(source_id=""), fractions, seed)
    if not _labels_covered(loose, todo, fractions):
        return strict
    log.warning("identity-grouped split: fakes tie %d videos' people into groups too large for "
                "fractions %s; grouped by target identity only (a source face may be in "
                "another split)", int(todo.sum()), [round(float(f), 3) for f in fractions])
    loose["source_id"] = df["source_id"]
    return loose


def carve_val(df: pd.DataFrame, val_fraction: float, seed: int) -> pd.DataFrame:
    """Move whole identity groups from train to val (:func:`grouped_fill` on the train rows)."""
    df = df.copy()
    if val_fraction <= 0:
        return df
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    train = df["split"] == "train"
    if not train.any():
        return df
    sub = df.loc[train].copy()
    sub["split"] = ""
    sub = grouped_fill(sub, (1.0 - val_fraction, val_fraction, 0.0), seed)
    df.loc[train, "split"] = sub["split"].to_numpy()
    return df


def relative_id(raw: str, root: Path) -> str | None:
    """Normalised relative POSIX path, or None when it leaves the root."""
    text = raw.strip().replace("\\", "/")
    p = Path(text)
    if p.is_absolute():
        try:
            text = p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return None
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm.startswith("../") or norm == ".." or PurePosixPath(norm).is_absolute():
        return None
    return norm
