"""Ingest: a dataset root in a known layout -> the manifest (one row per video) + failures.

``ingest(layout, root, **options)`` scans the root with the layout (see
:mod:`dfdetect.data.layouts`), fills missing splits with the identity-grouped split
(``split_fractions``, ``seed``), and probes every video (fps, frames, duration, size, audio) in
parallel. A video that is missing, unreadable, corrupt or has no frames is left out of the
manifest and recorded in the failures table with the reason; nothing is fatal except a root
that is not of the requested layout (:class:`~dfdetect.data.layouts.LayoutError`).
The same root and options give the same manifest, row for row.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..failures import Failures
from ..parallel import imap
from .layouts import LayoutError, get_layout
from .layouts._base import grouped_fill
from .manifest import normalise
from .probe import probe_video

log = logging.getLogger("dfdetect")

PROBE_FIELDS = ("fps", "frames", "duration", "width", "height", "rotation", "has_audio")


def _probe_item(item: tuple[str, str]) -> dict:
    """Worker of the probe map (top level, so process executors can pickle it)."""
    _vid, path = item
    return probe_video(path)


def ingest(layout: str, root: str | Path, *, probe: bool = True, seed: int = 0,
           split_fractions: Sequence[float] = (0.6, 0.2, 0.2), executor: str = "process",
           workers: int | None = None, progress: bool = True, **options) -> tuple[pd.DataFrame, Failures]:
    """Build the manifest of the dataset at ``root``; returns ``(manifest, failures)``.

    ``options`` go to the layout (``csv``, ``qualities``, ``methods``, ``splits_dir``,
    ``val_fraction``, ``test_fraction``, ``test_list``, ``test_labels``); unknown ones are ignored.
    ``path`` is ``root`` joined with ``video_id`` as given (keep ``root`` relative for a
    manifest that does not depend on where the project lives).
    """
    scan = get_layout(layout)
    root_text = str(root)
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root not found or not a folder (layout {layout!r})")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers (train, val, test), "
                         f"got {list(split_fractions)}")
    failures = Failures("ingest")
    df = scan(root, failures, seed=seed, **options)
    if df.empty:
        log.warning("%s: layout %s found no usable video", root, layout)
    df = df.copy()
    df["dataset"] = layout
    df["path"] = [posixpath.join(Path(root_text).as_posix(), v) for v in df["video_id"]]
    df = normalise(df)
    df = grouped_fill(df, tuple(float(f) for f in split_fractions), seed)

    if probe and len(df):
        keep = []
        values = {f: [] for f in PROBE_FIELDS}
        for (vid, path), result, error in imap(_probe_item, list(zip(df["video_id"], df["path"])),
                                               executor=executor, workers=workers,
                                               desc="probe", progress=progress):
            if error is not None:
                failures.add_error(vid, error, path=path)
                keep.append(False)
                continue
            keep.append(True)
            for f in PROBE_FIELDS:
                values[f].append(result[f])
        df = df.loc[keep].copy()
        for f in PROBE_FIELDS:
            df[f] = values[f]
        df = normalise(df)
    return df, failures


def summary(df: pd.DataFrame, failures: Failures | None = None) -> str:
    """Counts per split x label and per method, for a person to read."""
    lines = [f"{len(df)} videos"
             + (f", {len(failures)} failures" if failures is not None else "")]
    if len(df):
        table = pd.crosstab(df["split"], df["label"]).reindex(
            [s for s in ("train", "val", "test") if s in set(df["split"])])
        lines.append(table.to_string())
        lines.append(df.groupby(["method", "quality"], dropna=False).size()
                     .rename("videos").reset_index().to_string(index=False))
    if failures is not None and len(failures):
        reasons = failures.frame()["reason"].str.replace(r"line \d+", "line N", regex=True)
        lines.append("failures by reason:")
        lines.append(reasons.value_counts().sort_index().to_string())
    return "\n".join(lines)
