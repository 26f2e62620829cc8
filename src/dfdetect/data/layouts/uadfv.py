"""UADFV (Yang, Li and Lyu, "Exposing Deep Fakes Using Inconsistent Head Poses", ICASSP 2019).

49 real YouTube videos and 49 DeepFake videos made from them::

    <root>/real/0000.mp4 ... real/0048.mp4
    <root>/fake/0000_fake.mp4 ... fake/0048_fake.mp4

(the release as distributed and as DeepfakeBench and other loaders read it; sub-folders under
``real/`` and ``fake/`` are searched too, and ``Real``/``Fake`` are accepted). ``0000_fake`` is
the fake of ``0000``: both show the same person, so they share ``identity`` ``0000``.

Split: UADFV has none. DefakeHop (defakehop.txt §4): "We randomly select 80% for training and
20% for testing." Identities (a real video and its fake together) are shuffled with ``seed`` and
``test_fraction`` (0.2) of them go to test; ``val_fraction`` of the rest goes to val (0 keeps the
paper's plain 80/20).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ..manifest import grouped_split
from ._base import LayoutError, list_videos, rel, rows_frame

_FAKE_SUFFIX = re.compile(r"_fake$", re.IGNORECASE)


def _folder(root: Path, name: str) -> Path | None:
    for cand in (name, name.capitalize(), name.upper()):
        if (root / cand).is_dir():
            return root / cand
    return None


def scan(root: Path, failures: Failures, *, seed: int = 0, test_fraction: float = 0.2,
         val_fraction: float = 0.1, **_ignored) -> pd.DataFrame:
    root = Path(root)
    real_dir, fake_dir = _folder(root, "real"), _folder(root, "fake")
    if real_dir is None or fake_dir is None:
        missing = "real/" if real_dir is None else "fake/"
        raise LayoutError(f"{root}: no {missing} folder; is this a UADFV root? "
                          "Expected real/NNNN.mp4 and fake/NNNN_fake.mp4")
    rows = []
    for label, folder in (("real", real_dir), ("fake", fake_dir)):
        for path in list_videos(folder, recursive=True):
            ident = _FAKE_SUFFIX.sub("", path.stem)
            rows.append({"video_id": rel(path, root), "label": label,
                         "method": "original" if label == "real" else "deepfake", "quality": "",
                         "split": "", "identity": ident, "source_id": ""})
    if not rows:
        raise LayoutError(f"{root}: real/ and fake/ hold no videos (UADFV layout)")
    df = rows_frame(rows)
    test_fraction, val_fraction = float(test_fraction), float(val_fraction)
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1:
        raise ValueError(f"UADFV needs 0 < test_fraction < 1 and 0 <= val_fraction < 1, got "
                         f"{test_fraction}, {val_fraction}")
    train = 1.0 - test_fraction
    mapping = grouped_split(df["identity"], (train * (1 - val_fraction), train * val_fraction,
                                             test_fraction), seed)
    df["split"] = df["identity"].map(mapping)
    return df
