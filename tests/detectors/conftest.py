"""Shared fixtures of the detector tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from dfdetect.data.manifest import normalise
from dfdetect.store import ShardWriter


def _write_square_faces(root: Path, videos: Sequence[tuple[str, str]], frames: Sequence[int],
                        with_method: bool = False) -> pd.DataFrame:
    """One faces shard under ``root/faces`` (32 px noise faces, seeded; fakes carry a bright
    square): one video per ``(label, split)`` of ``videos`` with a face at each of ``frames``, one
    identity per video; the normalised manifest (``method`` "square" for fakes if asked)."""
    rng = np.random.default_rng(0)
    rows = []
    with ShardWriter(Path(root) / "faces" / "shard-0.h5") as w:
        for i, (label, split) in enumerate(videos):
            vid = f"{label}/{split}-{i}.mp4"
            faces = rng.integers(0, 200, (len(frames), 32, 32, 3), dtype=np.uint8)
            if label == "fake":
                faces[:, 10:22, 10:22] = 255
            w.add_video(vid, list(frames), face=faces)
            row = {"video_id": vid, "label": label, "split": split, "identity": f"id{i}"}
            if with_method:
                row["method"] = "" if label == "real" else "square"
            rows.append(row)
    return normalise(pd.DataFrame(rows))


@pytest.fixture(scope="session")
def write_square_faces() -> Callable[..., pd.DataFrame]:
    return _write_square_faces
