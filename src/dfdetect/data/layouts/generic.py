"""Generic layout: a labels CSV, or ``real/`` and ``fake/`` folders.

1. ``<root>/<csv>`` (param ``ingest.csv``, default ``labels.csv``; it must exist) with columns
   ``path,label[,split,identity,method,quality,source_id]``. ``path`` is relative to the root
   (``video_id`` is accepted as its name); ``label`` is real/fake, REAL/FAKE or 0/1 (1 = fake);
   ``split`` is train/val/test (``valid``/``validation`` = val) or empty; rows without a split get
   the identity-grouped split of ingest. Rows listing a file absent on disk, a path outside the
   root, an unknown label or split, or a path listed twice are failures.
2. ``csv: ''``: ``<root>/real/`` and ``<root>/fake/`` searched recursively (both must hold
   videos). A video in a sub-folder ``real/<name>/...`` or ``fake/<name>/...`` gets
   ``identity`` ``<name>`` (so one person's clips stay in one split); a video directly under
   ``real/`` or ``fake/`` is its own group.
3. ``label: real`` (or ``fake``): a flat single-label folder, every video under the root
   (recursively) with that label; the CSV is not read (``csv`` must be ``''`` or its default).
   ``identity`` is the file (its ``video_id``: one person per file), or with
   ``identity_from: folder`` the name of the file's folder, or group 1 of ``identity_regex``
   on the relative path (:mod:`dfdetect.data.identity`, the options of make_demo's sources).

A named CSV that does not exist is an error (:class:`LayoutError` naming the path), never a
silent fallback to the folders, which would drop the CSV's identities and splits. Symlinks are
treated the same in both forms: a target outside the root is refused and recorded (see
:func:`~dfdetect.data.layouts._base.refuse_external`) unless ``follow_external_symlinks``.

The embedded demo dataset (layout ``demo``) is written in form 1.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ..identity import check_identity_options, path_identity
from ._base import LayoutError, add_missing, list_videos, rel, relative_id, rows_frame

log = logging.getLogger("dfdetect")

LABELS = {"real": "real", "fake": "fake", "0": "real", "1": "fake", "false": "real", "true": "fake"}
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test", "": ""}
OPTIONAL = ("split", "identity", "method", "quality", "source_id")
DEFAULT_CSV = "labels.csv"
EXPECTED = ("a CSV (path,label[,split,identity,method,quality,source_id]) relative to the root "
            "(param csv), or with csv '' real/ and fake/ folders holding videos")


def _scan_csv(root: Path, csv_name: str, failures: Failures) -> pd.DataFrame:
    csv_path = root / csv_name
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise LayoutError(f"{csv_path}: cannot read labels CSV: {err}") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    if "path" not in table.columns and "video_id" in table.columns:
        table = table.rename(columns={"video_id": "path"})
    if "path" not in table.columns or "label" not in table.columns:
        raise LayoutError(f"{csv_path}: needs columns path,label; got {list(table.columns)}")
    rows, seen = [], set()
    for n, rec in enumerate(table.to_dict("records"), start=2):   # line 1 is the header
        raw = rec["path"]
        vid = relative_id(raw, root)
        where = f"{csv_name} line {n}"
        if vid is None:
            failures.add(raw, f"{where}: path {raw!r} is empty or outside the dataset root {root}",
                         path=raw)
            continue
        path = root / vid
        label = LABELS.get(rec["label"].strip().lower())
        split = SPLITS.get(rec.get("split", "").strip().lower())
        if label is None:
            failures.add(vid, f"{where}: label {rec['label']!r} is not real/fake/0/1", path=str(path))
        elif split is None:
            failures.add(vid, f"{where}: split {rec['split']!r} is not train/val/test",
                         path=str(path))
        elif vid in seen:
            failures.add(vid, f"{where}: listed twice", path=str(path))
        elif not path.is_file():
            add_missing(failures, vid, csv_name, path)
        else:
            seen.add(vid)
            row = {"video_id": vid, "label": label, "split": split}
            for col in ("identity", "method", "quality", "source_id"):
                row[col] = rec.get(col, "").strip()
            if not row["method"] and label == "real":
                row["method"] = "original"
            rows.append(row)
    return rows_frame(rows)


def _scan_folders(root: Path, real: Path, fake: Path, failures: Failures,
                  follow_external_symlinks: bool) -> pd.DataFrame:
    rows = []
    for label, folder in (("real", real), ("fake", fake)):
        videos = list_videos(folder, recursive=True, root=root, failures=failures,
                             follow_external_symlinks=follow_external_symlinks)
        if not videos:
            raise LayoutError(f"{root}: {folder.name}/ holds no videos; is this a generic-layout "
                              f"root? Expected {EXPECTED}")
        for path in videos:
            inner = path.relative_to(folder).parts
            rows.append({"video_id": rel(path, root), "label": label,
                         "method": "original" if label == "real" else "", "quality": "",
                         "split": "", "identity": inner[0] if len(inner) > 1 else "",
                         "source_id": ""})
    return rows_frame(rows)


def _scan_flat(root: Path, label: str, failures: Failures, identity_from: str,
               identity_regex: str, follow_external_symlinks: bool) -> pd.DataFrame:
    videos = list_videos(root, recursive=True, root=root, failures=failures,
                         follow_external_symlinks=follow_external_symlinks)
    if not videos:
        raise LayoutError(f"{root}: no videos under the root (generic layout, label {label!r}: a "
                          f"folder of {label} videos, searched recursively)")
    rows = []
    for path in videos:
        vid = rel(path, root)
        base, grouped = path_identity(vid, identity_from, identity_regex, root_name=root.name)
        rows.append({"video_id": vid, "label": label,
                     "method": "original" if label == "real" else "", "quality": "",
                     "split": "", "identity": base if grouped else vid, "source_id": ""})
    return rows_frame(rows)


def scan(root: Path, failures: Failures, *, seed: int = 0, csv: str = DEFAULT_CSV,
         label: str = "", identity_from: str = "file", identity_regex: str = "",
         follow_external_symlinks: bool = False, **_ignored) -> pd.DataFrame:
    root = Path(root)
    csv = csv or ""
    identity_from = identity_from or "file"
    identity_regex = identity_regex or ""
    check_identity_options(identity_from, identity_regex)
    if label:
        canon = str(label).strip().lower()
        if canon not in ("real", "fake"):
            raise ValueError(f"label must be real, fake or '' (labels from real/ + fake/ or the "
                             f"CSV), got {label!r}")
        if csv not in ("", DEFAULT_CSV):
            raise ValueError(f"label {canon!r} (a flat folder of one label) and csv {csv!r} "
                             f"both given; set csv '' or label ''")
        if csv and (root / csv).is_file():
            log.warning("%s: label %s given: every video under the root is %s and %s is not "
                        "read", root, canon, canon, root / csv)
        return _scan_flat(root, canon, failures, identity_from, identity_regex,
                          follow_external_symlinks)
    if identity_from != "file" or identity_regex:
        raise ValueError(f"identity_from {identity_from!r} / identity_regex {identity_regex!r} "
                         f"apply to a flat folder of one label only (param label real|fake); "
                         f"the CSV and real/ + fake/ folders give identities themselves")
    if csv:
        csv_path = root / csv
        if not csv_path.is_file():
            raise LayoutError(f"{csv_path}: labels CSV not found (generic layout, csv "
                              f"{csv!r}); set csv to '' to label by real/ and fake/ folders. "
                              f"Expected {EXPECTED}")
        df = _scan_csv(root, csv, failures)
        if df.empty:
            log.warning("%s: no usable rows (see the failures table)", csv_path)
        return df
    real, fake = root / "real", root / "fake"
    if real.is_dir() and fake.is_dir():
        return _scan_folders(root, real, fake, failures, follow_external_symlinks)
    missing = " and ".join(f"{d.name}/" for d in (real, fake) if not d.is_dir())
    raise LayoutError(f"{root}: no {missing} folder (csv ''); is this a generic-layout root? "
                      f"Expected {EXPECTED}")
