"""Ingest: a dataset root in a known layout -> the manifest (one row per video) + failures.

``ingest(layout, root, **options)`` scans the root with the layout (see
:mod:`dfdetect.data.layouts`), fills missing splits with the identity-grouped split
(``split_fractions``, ``seed``), and probes every video (fps, frames, duration, size, audio) in
parallel. A video that is missing, unreadable, corrupt or has no frames is left out of the
manifest and recorded in the failures table with the reason; so is a file whose real path
(symlinks resolved) lies outside the root, whatever the layout and whether a CSV lists it or a
folder holds it (``follow_external_symlinks=True`` keeps those). Nothing is fatal except a
root that is not of the requested layout (:class:`~dfdetect.data.layouts.LayoutError`) and a
bad option value (``ValueError``), including an option of another layout set for this one.

``use`` (param ``ingest.use``): ``split`` keeps the dataset's official split (or the
identity-grouped one where it has none); ``all`` makes the dataset a test-only set: every
video is in ``test``, nothing is held out for training, the official split is ignored, and
the manifest's ``use`` column says ``all`` on every row (the column exists only then).
The same root and options give the same manifest, row for row.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import Sequence

import pandas as pd

from .. import config as _cfg
from ..failures import Failures
from ..parallel import imap
from ..store import file_sha256
from .layouts import LAYOUTS, LayoutError, check_options, get_layout
from .layouts._base import grouped_fill, refuse_external
from .manifest import normalise
from .probe import probe_video

log = logging.getLogger("dfdetect")

# params schema of the ``ingest`` section (checked by the stage before any work)
USES_ = ("split", "all")   # ingest.use: keep the dataset's split | every video in test
PARAMS = _cfg.Section({
    "layout": _cfg.Choice(*LAYOUTS),
    "root": _cfg.Str(),
    "csv": _cfg.Str(),
    "split_fractions": _cfg.fractions(3),
    "probe": _cfg.Bool(),
    "checksum": _cfg.Bool(),
    "qualities": _cfg.List(_cfg.Choice("raw", "c0", "c23", "c40"), nullable=True),
    "methods": _cfg.List(_cfg.Str(), nullable=True),
    "val_fraction": _cfg.Float(ge=0, lt=1),
    "test_fraction": _cfg.Float(ge=0, lt=1),
    "splits_dir": _cfg.Str(nullable=True),
    "test_list": _cfg.Str(nullable=True),
    "test_labels": _cfg.Str(nullable=True),
    "follow_external_symlinks": _cfg.Bool(),
    "use": _cfg.Choice(*USES_),
    "label": _cfg.Choice("", "real", "fake", nullable=True),
    "identity_from": _cfg.Choice("file", "folder"),
    "identity_regex": _cfg.Str(nullable=True),
    "labels_csv": _cfg.Str(nullable=True),
})
# ``test_sets``: name -> a dataset to test on, with ingest keys (layout, root, ...) overriding
# the ingest section's (stages/ingest.py --set NAME)
TEST_SETS = _cfg.Map(PARAMS, what="test set")

PROBE_FIELDS = ("fps", "frames", "duration", "width", "height", "rotation", "has_audio")
USES = USES_


def _probe_item(item: tuple[str, str, bool, bool]) -> dict:
    """Worker of the probe map (top level, so process executors can pickle it): the probe's
    fields (``probe``) and the sha256 of the file's bytes (``checksum``)."""
    _vid, path, probe, checksum = item
    out = probe_video(path) if probe else {}
    if checksum:
        out["sha256"] = file_sha256(path)
    return out


def ingest(layout: str, root: str | Path, *, probe: bool = True, seed: int = 0,
           split_fractions: Sequence[float] = (0.6, 0.2, 0.2), executor: str = "process",
           workers: int | None = None, progress: bool = True,
           follow_external_symlinks: bool = False, use: str = "split", checksum: bool = True,
           **options) -> tuple[pd.DataFrame, Failures]:
    """Build the manifest of the dataset at ``root``; returns ``(manifest, failures)``.

    ``options`` go to the layout (:func:`~dfdetect.data.layouts.layout_options`: ffpp
    ``qualities``, ``methods``, ``splits_dir``; celebdf ``val_fraction``, ``test_list``; uadfv
    ``test_fraction``, ``val_fraction``; dfdc ``val_fraction``, ``test_labels``,
    ``labels_csv``; generic ``csv``, ``label``, ``identity_from``, ``identity_regex``). One of
    another layout that is set (not empty, not its default) is a ``ValueError``; one no layout
    knows too. ``use`` is ``split`` or ``all`` (module docstring).
    ``follow_external_symlinks`` (param ``ingest.follow_external_symlinks``, default false)
    accepts files and folders that symlinks inside the root point to outside it.
    ``path`` is ``root`` joined with ``video_id`` as given (keep ``root`` relative for a
    manifest that does not depend on where the project lives).
    """
    scan = get_layout(layout)
    if use not in USES:
        raise ValueError(f"use must be one of {list(USES)} (split: the dataset's own split; all: "
                         f"every video in test), got {use!r}")
    options = check_options(layout, options)
    root_text = str(root)
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root not found or not a folder (layout {layout!r})")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers (train, val, test), "
                         f"got {list(split_fractions)}")
    if not isinstance(follow_external_symlinks, bool):
        raise ValueError(f"follow_external_symlinks must be true or false, got "
                         f"{follow_external_symlinks!r}")
    failures = Failures("ingest")
    df = scan(root, failures, seed=seed, follow_external_symlinks=follow_external_symlinks,
              **options)
    df = refuse_external(df, root, failures, follow_external_symlinks)
    if df.empty:
        log.warning("%s: layout %s found no usable video", root, layout)
    df = df.copy()
    df["dataset"] = layout
    df["path"] = [posixpath.join(Path(root_text).as_posix(), v) for v in df["video_id"]]
    df = normalise(df)
    if use == "all":   # a test-only set: the dataset's own (or derived) split is not used
        log.info("%s: use all: every one of %d videos in the test split (official split ignored)",
                 root, len(df))
        df["split"] = "test"
        df["use"] = "all"
    else:
        df = grouped_fill(df, tuple(float(f) for f in split_fractions), seed)

    fields = (PROBE_FIELDS if probe else ()) + (("sha256",) if checksum else ())
    if fields and len(df):
        keep = []
        values = {f: [] for f in fields}
        items = [(v, p, bool(probe), bool(checksum)) for v, p in zip(df["video_id"], df["path"])]
        for (vid, path, _p, _c), result, error in imap(_probe_item, items, executor=executor,
                                                       workers=workers, desc="probe",
                                                       progress=progress):
            if error is not None:
                failures.add_error(vid, error, path=path)
                keep.append(False)
                continue
            keep.append(True)
            for f in fields:
                values[f].append(result[f])
        df = df.loc[keep].copy()
        for f in fields:
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
