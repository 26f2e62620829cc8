"""Ingest an audio dataset into the audio manifest (same schema as the video manifest).

``ingest_audio(layout, root, ...)`` scans ``root`` with an audio layout
(:mod:`dfdetect.audio.layouts`; In-the-Wild is split within speakers there, with
``split_fractions``), fills missing splits with the speaker-grouped split (a voice
conversion spoof ties its claimed and source speakers together), and probes every file's
duration with ffprobe in parallel. ``has_audio`` is True for every row; ``fps``/``frames``/
``width``/``height`` are left unset. The ``text`` column (reference transcript where the dataset
has one) is kept as an extra column. Unreadable files are failures, never fatal.
"""

from __future__ import annotations

import logging
import posixpath
import subprocess
from pathlib import Path
from typing import Sequence

import pandas as pd

from .. import config as _cfg
from ..data.layouts import LayoutError
from ..data.layouts._base import grouped_fill, refuse_external
from ..data.manifest import normalise
from ..failures import Failures, ItemError
from ..parallel import EXECUTOR, imap
from .layouts import LAYOUTS, get_layout

log = logging.getLogger("dfdetect")

# params schema of the ``ingest_audio`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "layout": _cfg.Choice(*LAYOUTS),
    "root": _cfg.Str(),
    "csv": _cfg.Str(),
    "split_fractions": _cfg.fractions(3),
    "probe": _cfg.Bool(),
    "partitions": _cfg.List(_cfg.Choice("train", "dev", "eval")),
    "phases": _cfg.List(_cfg.Choice("progress", "eval", "hidden_track")),
    "keys": _cfg.Str(),
    "languages": _cfg.List(_cfg.Str()),
    "mailabs": _cfg.Str(),
    "follow_external_symlinks": _cfg.Bool(),
    "executor": EXECUTOR,
})


def probe_duration(path: str) -> float:
    """Duration in seconds from ffprobe; :class:`ItemError` for a missing or unreadable file."""
    if not Path(path).is_file():
        raise ItemError("missing: file not found", path=path)
    cmd = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
           "stream=duration:format=duration", "-of", "default=nw=1:nk=1", path]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          timeout=120)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ItemError(f"corrupt audio: ffprobe cannot read it ({err[-1] if err else proc.returncode})",
                        path=path)
    values = []
    for line in proc.stdout.decode().split():
        try:
            values.append(float(line))
        except ValueError:
            continue
    if not values:
        raise ItemError("no audio track (ffprobe finds no audio stream or duration)", path=path)
    return values[0]


def _probe(item: tuple[str, str]) -> float:
    return probe_duration(item[1])


def ingest_audio(layout: str, root: str | Path, *, probe: bool = True, seed: int = 0,
                 split_fractions: Sequence[float] = (0.6, 0.2, 0.2), executor: str = "process",
                 workers: int | None = None, progress: bool = True,
                 follow_external_symlinks: bool = False,
                 **options) -> tuple[pd.DataFrame, Failures]:
    """``(audio manifest, failures)`` of the dataset at ``root`` in ``layout``.

    Files whose real path lies outside ``root`` (symlinks) are failures unless
    ``follow_external_symlinks`` (param ``ingest_audio.follow_external_symlinks``).
    """
    scan = get_layout(layout)
    root_text = str(root)
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: dataset root not found or not a folder (layout {layout!r})")
    if not isinstance(follow_external_symlinks, bool):
        raise ValueError(f"follow_external_symlinks must be true or false, got "
                         f"{follow_external_symlinks!r}")
    failures = Failures("ingest_audio")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(f"split_fractions must be 3 non-negative numbers, got {list(split_fractions)}")
    df = scan(root, failures, seed=seed, follow_external_symlinks=follow_external_symlinks,
              split_fractions=tuple(float(f) for f in split_fractions), **options)
    df = refuse_external(df, root, failures, follow_external_symlinks).copy()
    if df.empty:
        log.warning("%s: layout %s found no usable audio", root, layout)
    df["dataset"] = layout
    df["path"] = [posixpath.join(Path(root_text).as_posix(), v) for v in df["video_id"]]
    df["has_audio"] = True
    df = normalise(df)
    df = grouped_fill(df, tuple(float(f) for f in split_fractions), seed)
    if probe and len(df):
        keep, durations = [], []
        for (vid, path), result, error in imap(_probe, list(zip(df["video_id"], df["path"])),
                                               executor=executor, workers=workers,
                                               desc="probe audio", progress=progress):
            if error is not None:
                failures.add_error(vid, error, path=path)
                keep.append(False)
            else:
                keep.append(True)
                durations.append(result)
        df = df.loc[keep].copy()
        df["duration"] = durations
        df = normalise(df)
    return df, failures


def summary(df: pd.DataFrame, failures: Failures | None = None) -> str:
    lines = [f"{len(df)} audio items" + (f", {len(failures)} failures" if failures is not None else "")]
    if len(df):
        lines.append(pd.crosstab(df["split"], df["label"]).to_string())
        lines.append(df.groupby(["label", "method"]).size().rename("items").reset_index()
                     .to_string(index=False))
        lines.append(f"speakers: {df['identity'].nunique()}")
    return "\n".join(lines)
