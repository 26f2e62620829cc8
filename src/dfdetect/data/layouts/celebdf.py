"""Celeb-DF v1 and v2.

Source: https://github.com/yuezunli/celeb-deepfakeforensics (README of v1 and ``Celeb-DF-v2/``)::

    <root>/Celeb-real/id0_0000.mp4          real, celebrity id0, clip 0000
    <root>/YouTube-real/00000.mp4           real, additional YouTube videos (one subject each)
    <root>/Celeb-synthesis/id0_id16_0000.mp4  fake: clip id0_0000 with the face of id16
    <root>/List_of_testing_videos.txt       the official test set, lines "<flag> <relative path>"

In ``List_of_testing_videos.txt`` the flag is **1 for real and 0 for fake** (e.g. ``1
YouTube-real/00170.mp4``, ``0 Celeb-synthesis/id0_id1_0000.mp4``), the opposite of this
project's y = 1 = fake. The label is taken from the folder; a flag that contradicts its folder is
logged. Split: listed videos are test, all others train (DefakeHop: "Celeb-DF provide the test
set, and all other videos are used for training"), and ``val_fraction`` of the train identities
(grouped: target and source person together) is moved to val. Listed files absent on disk are
failures. Without the list file every video gets the identity-grouped split of ingest.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ._base import LayoutError, add_missing, carve_val, list_videos, rel, rows_frame

log = logging.getLogger("dfdetect")

FOLDERS = {"Celeb-real": "real", "YouTube-real": "real", "Celeb-synthesis": "fake"}
TEST_LIST = "List_of_testing_videos.txt"
LIST_FLAG_LABEL = {"1": "real", "0": "fake"}   # the list's own convention

_REAL = re.compile(r"^(id\d+)_(\d+)$")
_FAKE = re.compile(r"^(id\d+)_(id\d+)_(\d+)$")


def read_test_list(path: Path) -> dict[str, str]:
    """relative path -> label implied by the list's flag ("" when the flag is unknown)."""
    out: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        if len(parts) != 2:
            raise LayoutError(f"{path}:{n}: expected '<flag> <relative path>', got {line!r}")
        flag, relpath = parts
        out[relpath.strip().replace("\\", "/").removeprefix("./")] = LIST_FLAG_LABEL.get(flag, "")
    return out


def scan(root: Path, failures: Failures, *, seed: int = 0, val_fraction: float = 0.1,
         test_list: str = TEST_LIST, **_ignored) -> pd.DataFrame:
    root = Path(root)
    present = [f for f in FOLDERS if (root / f).is_dir()]
    if "Celeb-synthesis" not in present or not {"Celeb-real", "YouTube-real"} & set(present):
        raise LayoutError(f"{root}: no Celeb-real/ and Celeb-synthesis/ folders; is this a Celeb-DF "
                          f"root? Expected Celeb-real/, YouTube-real/, Celeb-synthesis/ and {TEST_LIST}")
    rows = []
    for folder in present:
        label = FOLDERS[folder]
        for path in list_videos(root / folder):
            stem = path.stem
            ident, src = stem, ""
            if folder == "Celeb-real":
                m = _REAL.match(stem)
                ident = m.group(1) if m else stem
            elif folder == "Celeb-synthesis":
                m = _FAKE.match(stem)
                if m:
                    ident, src = m.group(1), m.group(2)
            else:   # YouTube-real: one subject per video
                ident = f"youtube{stem}"
            if folder != "YouTube-real" and not m:
                log.warning("%s: unexpected Celeb-DF file name; identity taken from the name", path)
            rows.append({"video_id": rel(path, root), "label": label,
                         "method": "original" if label == "real" else "celebdf-synthesis",
                         "quality": "", "split": "", "identity": ident, "source_id": src})
    if not rows:
        raise LayoutError(f"{root}: Celeb-DF folders hold no videos")
    df = rows_frame(rows)

    if not test_list:
        log.warning("%s: test_list ''; Celeb-DF gets the identity-grouped split", root)
        return df
    list_path = root / test_list
    if not list_path.is_file() and test_list != TEST_LIST:   # a name given must exist
        raise LayoutError(f"{list_path}: Celeb-DF test list not found (test_list {test_list!r}, "
                          f"relative to the root; '' = none)")
    if not list_path.is_file():
        log.warning("%s: not found; Celeb-DF gets the identity-grouped split", list_path)
        return df
    listed = read_test_list(list_path)
    on_disk = set(df["video_id"])
    for relpath, flag_label in sorted(listed.items()):
        if relpath not in on_disk:
            add_missing(failures, relpath, test_list, root / relpath)
            continue
        folder_label = FOLDERS.get(relpath.split("/", 1)[0], "")
        if flag_label and folder_label and flag_label != folder_label:
            log.warning("%s: %s flags %s as %s but its folder says %s; the folder wins",
                        list_path, relpath, relpath, flag_label, folder_label)
    df["split"] = ["test" if v in listed else "train" for v in df["video_id"]]
    return carve_val(df, float(val_fraction), seed)
