"""What the dataset layouts share: file listing, row frames, errors, val carving.

The layout contract is in the package docstring (:mod:`dfdetect.data.layouts`).
"""

from __future__ import annotations

import logging
import os
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


def outside_root(path: str | Path, root: str | Path) -> str | None:
    """Why ``path`` (a path under ``root``) must be refused, or None: the reason when its real
    path (symlinks resolved, at any depth: the file or a folder above it) lies outside the
    real path of ``root``, naming the target (``symlink points outside the dataset root: /x``).
    """
    real = Path(os.path.realpath(path))
    real_root = Path(os.path.realpath(root))
    if real == real_root or real.is_relative_to(real_root):
        return None
    return f"symlink points outside the dataset root: {real}"


def walk_files(directory: Path, accept: Callable[[Path], bool], *, recursive: bool = True,
               root: Path | None = None, failures: Failures | None = None,
               follow_external_symlinks: bool = False) -> list[Path]:
    """Files of ``directory`` (``accept``-ed, sorted by POSIX path), searched recursively.

    Folder symlinks are followed like folders (so a folder listing finds what a CSV naming the
    same paths finds), except one whose target lies outside ``root`` when
    ``follow_external_symlinks`` is false: it is not entered, and is recorded in ``failures``
    with the link path and the reason. A folder link back to the folder itself or one of its
    parents (on disk or on the walk) is not entered: no loop. Two paths to one file give two
    rows, as they would in a CSV. File symlinks are returned as found; :func:`refuse_external` checks their
    targets for every layout.
    """
    if not directory.is_dir():
        return []
    root = directory if root is None else root
    out: list[Path] = []

    def visit(folder: Path, ancestors: frozenset) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if entry.is_dir():
                if not recursive:
                    continue
                if entry.is_symlink():
                    reason = None if follow_external_symlinks else outside_root(entry, root)
                    if reason is not None:
                        if failures is not None:
                            vid = entry.relative_to(root).as_posix()
                            failures.add(vid, reason, path=str(entry))
                        continue
                real = os.path.realpath(entry)
                if real in ancestors or Path(os.path.realpath(folder)).is_relative_to(real):
                    log.warning("%s: folder symlink loops back to %s; not entered", entry, real)
                    continue
                visit(entry, ancestors | {real})
            elif entry.is_file() and accept(entry):
                out.append(entry)

    visit(directory, frozenset({os.path.realpath(directory)}))
    return sorted(out, key=lambda p: p.as_posix())


def list_videos(directory: Path, recursive: bool = False, *, root: Path | None = None,
                failures: Failures | None = None,
                follow_external_symlinks: bool = False) -> list[Path]:
    """Video files of ``directory`` in a deterministic order (sorted by POSIX path); see
    :func:`walk_files` for folder symlinks."""
    return walk_files(directory, is_video, recursive=recursive, root=root, failures=failures,
                      follow_external_symlinks=follow_external_symlinks)


def refuse_external(df: pd.DataFrame, root: Path, failures: Failures,
                    follow_external_symlinks: bool = False) -> pd.DataFrame:
    """Drop the rows whose file resolves outside ``root`` (a symlink to a video elsewhere, to
    ``/etc/passwd``, or a file under a linked folder), each recorded in ``failures`` with its
    path under the root and the target. Called by ingest for every layout (video and audio),
    CSV or folder mode alike; ``follow_external_symlinks`` keeps them all."""
    if follow_external_symlinks or df.empty:
        return df
    keep = []
    for vid in df["video_id"]:
        path = Path(root) / vid
        reason = outside_root(path, root)
        if reason is not None:
            failures.add(vid, reason, path=str(path))
        keep.append(reason is None)
    return df.loc[keep].reset_index(drop=True)


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
    """Normalised relative POSIX path, or None when its text leaves the root.

    Only the text is checked here (``../x``, an absolute path elsewhere); where a symlink
    inside the root points is :func:`refuse_external`'s check, the same for every layout.
    """
    text = raw.strip().replace("\\", "/")
    p = Path(text)
    if p.is_absolute():
        try:   # lexically under the root as given, else under its real path
            text = Path(os.path.abspath(p)).relative_to(os.path.abspath(root)).as_posix()
        except ValueError:
            try:
                text = Path(os.path.abspath(p)).relative_to(os.path.realpath(root)).as_posix()
            except ValueError:
                return None
    norm = posixpath.normpath(text)
    if norm in (".", "") or norm.startswith("../") or norm == ".." or PurePosixPath(norm).is_absolute():
        return None
    return norm
