"""UADFV (Yang, Li and Lyu, "Exposing Deep Fakes Using Inconsistent Head Poses", ICASSP 2019).

49 real YouTube videos and 49 DeepFake videos made from them::

    <root>/real/0000.mp4 ... real/0048.mp4
    <root>/fake/0000_fake.mp4 ... fake/0048_fake.mp4

(the release as distributed and as DeepfakeBench and other loaders read it; sub-folders under
``real/`` and ``fake/`` are searched too, and ``Real``/``Fake`` are accepted). ``0000_fake`` is
the fake of ``0000``: both show the same person, so they share ``identity`` ``0000``.

Signature: a root is UADFV when ``real/`` and ``fake/`` exist and at least one real ``NNNN``
has its fake ``NNNN_fake`` (any number of digits); otherwise :class:`LayoutError` naming the
root and what was expected. A video whose name does not follow the pattern (``real/NNNN.mp4``,
``fake/NNNN_fake.mp4``) is recorded as a failure and left out; a well-named video without its
pair is kept (its person is still one group) and logged.

Split: UADFV has none. DefakeHop (defakehop.txt §4): "We randomly select 80% for training and
20% for testing." Identities (a real video and its fake together) are shuffled with ``seed`` and
``test_fraction`` (0.2) of them go to test; ``val_fraction`` of the rest goes to val (0 keeps the
paper's plain 80/20).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ..manifest import grouped_split
from ._base import LayoutError, list_videos, rel, rows_frame

log = logging.getLogger("dfdetect")

_NAME = {"real": re.compile(r"^(\d+)$"), "fake": re.compile(r"^(\d+)_fake$", re.IGNORECASE)}
EXPECTED = "real/NNNN.mp4 and fake/NNNN_fake.mp4 (each fake paired with its real video)"


def _folder(root: Path, name: str) -> Path | None:
    for cand in (name, name.capitalize(), name.upper()):
        if (root / cand).is_dir():
            return root / cand
    return None


def scan(root: Path, failures: Failures, *, seed: int = 0, test_fraction: float = 0.2,
         val_fraction: float = 0.1, follow_external_symlinks: bool = False,
         **_ignored) -> pd.DataFrame:
    root = Path(root)
    real_dir, fake_dir = _folder(root, "real"), _folder(root, "fake")
    if real_dir is None or fake_dir is None:
        missing = "real/" if real_dir is None else "fake/"
        raise LayoutError(f"{root}: no {missing} folder; is this a UADFV root? Expected {EXPECTED}")
    rows = []
    ids: dict[str, set] = {"real": set(), "fake": set()}
    for label, folder in (("real", real_dir), ("fake", fake_dir)):
        for path in list_videos(folder, recursive=True, root=root, failures=failures,
                                follow_external_symlinks=follow_external_symlinks):
            m = _NAME[label].match(path.stem)
            if m is None:
                want = "NNNN.mp4" if label == "real" else "NNNN_fake.mp4"
                failures.add(rel(path, root), f"not a UADFV {label} video name (expected "
                             f"{folder.name}/{want})", path=str(path))
                continue
            ident = m.group(1)
            ids[label].add(ident)
            rows.append({"video_id": rel(path, root), "label": label,
                         "method": "original" if label == "real" else "deepfake", "quality": "",
                         "split": "", "identity": ident, "source_id": ""})
    if not rows:
        raise LayoutError(f"{root}: real/ and fake/ hold no videos (UADFV layout); expected {EXPECTED}")
    paired = ids["real"] & ids["fake"]
    if not paired:
        raise LayoutError(f"{root}: no real/NNNN.mp4 has its fake/NNNN_fake.mp4 ({len(ids['real'])} "
                          f"real and {len(ids['fake'])} fake videos named so); is this a UADFV "
                          f"root? Expected {EXPECTED}")
    unpaired = sorted((ids["real"] | ids["fake"]) - paired)
    if unpaired:
        log.warning("%s: %d UADFV identities have no real/fake pair: %s", root, len(unpaired),
                    unpaired[:10])
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
