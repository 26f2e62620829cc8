"""The failures table every stage writes: one row per item that could not be processed.

A failure never stops a stage: the item is recorded with a reason a person can act on
(``"corrupt video: cannot decode frame 0"``), the stage goes on with the rest, and the table is
written atomically next to the stage's outputs (``data/failures/<stage>[-shard-N].csv``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .store import write_csv_atomic

COLUMNS = ["video_id", "stage", "frame_index", "path", "reason"]
log = logging.getLogger("dfdetect")


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
    stage: str
    rows: list[dict] = field(default_factory=list)

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
