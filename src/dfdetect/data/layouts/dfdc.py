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
(``val_fraction``). Listed files missing on disk are failures, and so is every video under the
root that nothing labels: one in a part its ``metadata.json`` does not list (``on disk but not
listed in <part>/metadata.json (no label)``), one anywhere else (the root itself, other
folders; ``not listed in any metadata.json``). ``labels_csv`` (path relative to the root, or
``""`` = none) labels such files: columns ``path,label[,original]`` (path relative to the root,
label REAL/FAKE/real/fake/0/1, ``original`` = the file name of the real video a fake was made
from); they join the train parts' rows (grouped by source video like them). A labels_csv row
for a file a metadata.json already labels, or one missing on disk, is a failure.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ._base import LayoutError, add_missing, carve_val, list_videos, rel, relative_id, rows_frame

log = logging.getLogger("dfdetect")

PART_GLOB = "dfdc_train_part_*"
LABELS = {"REAL": "real", "FAKE": "fake", "0": "real", "1": "fake"}
UNLISTED = "not listed in any metadata.json"


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


def _scan_part(part: Path, root: Path, failures: Failures, rows: list[dict],
               unlabelled: dict[str, str]) -> None:
    """Rows of one part; its videos without a label go to ``unlabelled`` (video_id -> reason),
    reported after ``labels_csv`` had its chance to label them."""
    meta_path = part / "metadata.json"
    meta_id = rel(meta_path, root)
    if not meta_path.is_file():
        for path in list_videos(part):
            unlabelled[rel(path, root)] = f"{meta_id} not found: no label for this video"
        return
    try:
        meta = _read_metadata(meta_path)
    except (OSError, ValueError) as err:
        failures.add(meta_id, f"cannot read metadata: {err}; every video of {rel(part, root) or '.'}"
                     " skipped", path=str(meta_path))
        for path in list_videos(part):   # reported once, by the metadata's row
            unlabelled[rel(path, root)] = ""
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
            unlabelled[rel(path, root)] = f"on disk but not listed in {meta_id} (no label)"


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


def _scan_labels_csv(csv_path: Path, root: Path, failures: Failures, rows: list[dict],
                     unlabelled: dict[str, str]) -> None:
    """Rows for the files a user labels in ``labels_csv`` (path,label[,original])."""
    listed_in = rel(csv_path, root)
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise LayoutError(f"{csv_path}: cannot read DFDC labels_csv: {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    if "path" not in table.columns or "label" not in table.columns:
        raise LayoutError(f"{csv_path}: labels_csv needs columns path,label[,original]; got "
                          f"{list(table.columns)}")
    labelled = {r["video_id"] for r in rows}
    for n, rec in enumerate(table.to_dict("records"), start=2):   # line 1 is the header
        raw, where = rec["path"], f"{listed_in} line {n}"
        vid = relative_id(raw, root)
        if vid is None:
            failures.add(raw, f"{where}: path {raw!r} is empty or outside the dataset root {root}",
                         path=raw)
            continue
        path = root / vid
        label = LABELS.get(rec["label"].strip().upper())
        if label is None:
            failures.add(vid, f"{where}: label {rec['label']!r} is not REAL/FAKE/0/1",
                         path=str(path))
        elif vid in labelled:
            failures.add(vid, f"{where}: already labelled (by a metadata.json, the test labels or "
                         "an earlier line)", path=str(path))
        elif not path.is_file():
            add_missing(failures, vid, listed_in, path)
        else:
            labelled.add(vid)
            unlabelled.pop(vid, None)
            original = Path(rec.get("original", "").strip()).name
            rows.append({"video_id": vid, "label": label,
                         "method": "original" if label == "real" else "dfdc", "quality": "",
                         "split": "",
                         "identity": original if label == "fake" and original else path.name,
                         "source_id": ""})


def scan(root: Path, failures: Failures, *, seed: int = 0, val_fraction: float = 0.1,
         test_labels: str = "test/labels.csv", labels_csv: str = "",
         follow_external_symlinks: bool = False, **_ignored) -> pd.DataFrame:
    root = Path(root)
    test_labels = test_labels or ""
    labels_csv = labels_csv or ""
    parts = _parts(root)
    labels_path = Path(test_labels) if Path(test_labels).is_absolute() else root / test_labels
    has_test = bool(test_labels) and labels_path.is_file()
    if test_labels and not has_test and test_labels != "test/labels.csv":
        raise LayoutError(f"{labels_path}: DFDC test labels not found (test_labels "
                          f"{test_labels!r}; '' = none)")
    csv_path = root / labels_csv if labels_csv else None
    if csv_path is not None and not csv_path.is_file():
        raise LayoutError(f"{csv_path}: DFDC labels_csv not found (path relative to the root; "
                          f"'' = none)")
    if not parts and not has_test and csv_path is None:
        raise LayoutError(f"{root}: no dfdc_train_part_*/metadata.json (nor metadata.json, nor "
                          f"{test_labels}); is this a DFDC root?")
    rows: list[dict] = []
    unlabelled: dict[str, str] = {}
    for part in parts:
        _scan_part(part, root, failures, rows, unlabelled)
    if has_test:
        _scan_test(labels_path, root, failures, rows)
    known = {r["video_id"] for r in rows} | set(unlabelled)
    others = ([rel(labels_path, root) if labels_path.is_relative_to(root) else str(labels_path)]
              if has_test else []) + ([labels_csv] if labels_csv else [])
    unlisted = UNLISTED + "".join(f" nor in {o}" for o in others)
    for path in list_videos(root, recursive=True, root=root, failures=failures,
                            follow_external_symlinks=follow_external_symlinks):
        vid = rel(path, root)
        if vid not in known:
            unlabelled[vid] = unlisted
    if csv_path is not None:
        _scan_labels_csv(csv_path, root, failures, rows, unlabelled)
    for vid in sorted(unlabelled):
        if unlabelled[vid]:
            failures.add(vid, unlabelled[vid], path=str(root / vid))
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

