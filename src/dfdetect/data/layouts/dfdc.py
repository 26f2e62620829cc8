"""DFDC, the Deepfake Detection Challenge dataset (Kaggle / Meta AI release).

Source: the competition's data description (https://www.kaggle.com/c/deepfake-detection-challenge/data):
the training set comes as ``dfdc_train_part_<N>`` folders, each with the videos and a
``metadata.json``::

    {"aaqaifqrwn.mp4": {"label": "FAKE", "split": "train", "original": "kqlvggiqee.mp4"},
     "kqlvggiqee.mp4": {"label": "REAL", "split": "train", "original": null}, ...}

``original`` names the real video a fake was made from; ``split`` is always "train". A root
that is itself one part (``metadata.json`` at the top) is read as that part.

Identity: the metadata names no person, so videos are grouped by source video: a real video is
its own group and each fake joins the group of its ``original`` (``identity`` = the original's
file name, which is unique across parts). Split: the groups get the identity-grouped split of
ingest (``split_fractions``). If the labelled test set is present (``test_labels``, default
``test/labels.csv`` with columns ``filename,label``, label 1/FAKE = fake; videos next to it or in
``videos/``), those videos are the test split and the train parts are divided into train/val only
(``val_fraction``). Listed files missing on disk, and videos on disk no ``metadata.json`` lists,
are failures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ._base import LayoutError, add_missing, carve_val, list_videos, rel, rows_frame

log = logging.getLogger("dfdetect")

PART_GLOB = "dfdc_train_part_*"
LABELS = {"REAL": "real", "FAKE": "fake", "0": "real", "1": "fake"}


def _parts(root: Path) -> list[Path]:
    if (root / "metadata.json").is_file():
        return [root]
    parts = [p for p in root.glob(PART_GLOB) if p.is_dir()]

    def key(p: Path):
        tail = p.name[len("dfdc_train_part_"):]
        return (0, int(tail), p.name) if tail.isdigit() else (1, 0, p.name)

    return sorted(parts, key=key)


def _read_metadata(path: Path) -> dict:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object {file name: {label, split, original}}")
    return data


def _scan_part(part: Path, root: Path, failures: Failures, rows: list[dict]) -> None:
    meta_path = part / "metadata.json"
    meta_id = rel(meta_path, root)
    if not meta_path.is_file():
        for path in list_videos(part):
            failures.add(rel(path, root), f"{meta_id} not found: no label for this video",
                         path=str(path))
        return
    try:
        meta = _read_metadata(meta_path)
    except (OSError, ValueError) as err:
        failures.add(meta_id, f"cannot read metadata: {err}; every video of {rel(part, root) or '.'}"
                     " skipped", path=str(meta_path))
        return
    listed = set()
    for name in sorted(meta):
        info = meta[name]
        path = part / name
        vid = rel(path, root)
        listed.add(name)
        label = LABELS.get(str(info.get("label", "")).upper()) if isinstance(info, dict) else None
        if label is None:
            failures.add(vid, f"{meta_id}: label {info.get('label') if isinstance(info, dict) else info!r}"
                         " is not REAL/FAKE", path=str(path))
            continue
        if not path.is_file():
            add_missing(failures, vid, meta_id, path)
            continue
        original = info.get("original") or ""
        if label == "fake" and not original:
            log.warning("%s: fake %s has no 'original'; grouped on its own", meta_path, name)
        rows.append({"video_id": vid, "label": label,
                     "method": "original" if label == "real" else "dfdc",
                     "quality": "", "split": "",
                     "identity": Path(original).name if label == "fake" and original else name,
                     "source_id": ""})
    for path in list_videos(part):
        if path.name not in listed:
            failures.add(rel(path, root), f"on disk but not listed in {meta_id} (no label)",
                         path=str(path))


def _scan_test(labels_path: Path, root: Path, failures: Failures, rows: list[dict]) -> None:
    listed_in = rel(labels_path, root) if labels_path.is_relative_to(root) else str(labels_path)
    try:
        table = pd.read_csv(labels_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise LayoutError(f"{labels_path}: cannot read DFDC test labels: {err}") from err
    cols = {c.strip().lower(): c for c in table.columns}
    if "filename" not in cols or "label" not in cols:
        raise LayoutError(f"{labels_path}: expected columns filename,label; got {list(table.columns)}")
    base = labels_path.parent
    for name, raw in zip(table[cols["filename"]], table[cols["label"]]):
        name = name.strip()
        label = LABELS.get(raw.strip().upper())
        cands = [base / name, base / "videos" / name]
        path = next((c for c in cands if c.is_file()), None)
        vid = rel(path or cands[0], root)
        if label is None:
            failures.add(vid, f"{listed_in}: label {raw!r} is not 0/1/REAL/FAKE", path=str(cands[0]))
            continue
        if path is None:
            add_missing(failures, vid, listed_in, cands[0])
            continue
        rows.append({"video_id": vid, "label": label, "method": "original" if label == "real" else "dfdc",
                     "quality": "", "split": "test", "identity": f"test:{name}", "source_id": ""})


def scan(root: Path, failures: Failures, *, seed: int = 0, val_fraction: float = 0.1,
         test_labels: str = "test/labels.csv", **_ignored) -> pd.DataFrame:
    root = Path(root)
    parts = _parts(root)
    labels_path = Path(test_labels) if Path(test_labels).is_absolute() else root / test_labels
    has_test = bool(test_labels) and labels_path.is_file()
    if not parts and not has_test:
        raise LayoutError(f"{root}: no dfdc_train_part_*/metadata.json (nor metadata.json, nor "
                          f"{test_labels}); is this a DFDC root?")
    rows: list[dict] = []
    for part in parts:
        _scan_part(part, root, failures, rows)
    if has_test:
        _scan_test(labels_path, root, failures, rows)
    if not rows:
        raise LayoutError(f"{root}: DFDC metadata lists no video present on disk")
    df = rows_frame(rows)
    if df["video_id"].duplicated().any():
        dup = df.loc[df["video_id"].duplicated(), "video_id"].iloc[:5].tolist()
        raise LayoutError(f"{root}: videos listed twice: {dup}")
    if has_test:   # test given: the train parts become train + val, grouped by source video
        train = df["split"] == ""
        df.loc[train, "split"] = "train"
        df = carve_val(df, float(val_fraction), seed)
    return df

