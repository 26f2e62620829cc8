"""The failures table every stage writes: one row per item that could not be processed.

A failure never stops a stage: the item is recorded with a reason a person can act on
(``"corrupt video: cannot decode frame 0"``), the stage goes on with the rest, and the table is
written atomically next to the stage's outputs (``data/failures/<stage>[-shard-N].csv``).

A shard where most items fail is not a result: :func:`ratio_error` compares the failed share
of a stage's items with ``max_failure_ratio`` (params.yaml) and gives the summary the stage
prints before exiting non-zero (after writing the table), so DVC never caches a hollow output.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import config as _cfg
from .store import write_csv_atomic

COLUMNS = ["video_id", "stage", "frame_index", "path", "reason"]
log = logging.getLogger("dfdetect")

# params schema of the top-level ``max_failure_ratio`` (per-item stages): the largest share of
# a shard's items that may fail before the stage fails; 1 = never fail on failures
MAX_FAILURE_RATIO = _cfg.Float(ge=0, le=1)
DEFAULT_MAX_FAILURE_RATIO = 0.5
PARTIAL = "partial:"   # reason prefix of an item kept with a note (not a failed item)


class ItemError(Exception):
    """An expected, per-item failure (bad input): recorded, never fatal to the stage."""

    def __init__(self, reason: str, path: str | None = None, frame_index: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.path = path
        self.frame_index = frame_index

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{where}{self.reason}"


@dataclass
class Failures:
    """The rows of a stage's table; ``items``: how many items the stage tried (set by the stage
    body; :func:`ratio_error` needs it)."""

    stage: str
    rows: list[dict] = field(default_factory=list)
    items: int | None = None

    def add(self, video_id: str, reason: str, path: str | None = None,
            frame_index: int | None = None, warn: bool = True) -> None:
        row = {"video_id": video_id, "stage": self.stage,
               "frame_index": -1 if frame_index is None else int(frame_index),
               "path": "" if path is None else str(path), "reason": str(reason)}
        self.rows.append(row)
        if warn:
            where = f" ({path})" if path else ""
            frame = f" frame {frame_index}" if frame_index is not None else ""
            log.warning("%s: %s%s%s: %s", self.stage, video_id, frame, where, reason)

    def add_error(self, video_id: str, err: BaseException, path: str | None = None) -> None:
        if isinstance(err, ItemError):
            self.add(video_id, err.reason, err.path or path, err.frame_index)
        else:
            self.add(video_id, f"{type(err).__name__}: {err}", path)

    def extend(self, other: "Failures") -> None:
        self.rows.extend(other.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        return df.sort_values(["video_id", "frame_index", "reason"], kind="stable").reset_index(drop=True)

    def write(self, path: str | Path) -> None:
        write_csv_atomic(path, self.frame())


def read_failures(paths) -> pd.DataFrame:
    frames = [pd.read_csv(p, keep_default_na=False) for p in paths if Path(p).exists()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def failed_items(rows) -> list[str]:
    """Items that failed: ids with an item-level row (``frame_index`` -1) whose reason is not a
    ``partial:`` note (a frame without a face or a truncated video is not a failed item)."""
    seen: dict[str, None] = {}
    for r in rows:
        if int(r.get("frame_index", -1)) == -1 and not str(r["reason"]).startswith(PARTIAL):
            seen.setdefault(str(r["video_id"]), None)
    return list(seen)


def ratio_error(failures: Failures, max_ratio: float | None, items: int | None = None,
                where: str = "") -> str | None:
    """The summary line when more than ``max_ratio`` of the items failed, else None.

    ``items`` (default ``failures.items``) is how many items the stage tried; ids failed are
    :func:`failed_items`. The summary says how many failed of how many, against what limit,
    the three commonest reasons and where the table is."""
    max_ratio = DEFAULT_MAX_FAILURE_RATIO if max_ratio is None else float(max_ratio)
    total = failures.items if items is None else items
    failed = failed_items(failures.rows)
    total = max(int(total or 0), len(failed))
    if total == 0 or len(failed) / total <= max_ratio:
        return None
    ids = set(failed)
    reasons = Counter(_reason_kind(r["reason"]) for r in failures.rows
                      if str(r["video_id"]) in ids and int(r.get("frame_index", -1)) == -1
                      and not str(r["reason"]).startswith(PARTIAL))
    common = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common(3))
    table = f"; table: {where}" if where else ""
    return (f"{failures.stage}: {len(failed)} of {total} items failed ({len(failed) / total:.0%} > "
            f"max_failure_ratio {max_ratio:g}); commonest reasons: {common}{table}")


def _reason_kind(reason: str, width: int = 120) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= width else text[: width - 3] + "..."
