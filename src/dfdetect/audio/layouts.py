"""Audio dataset layouts: a dataset root on disk -> audio-manifest rows.

Same contract as the video layouts (:mod:`dfdetect.data.layouts`): ``scan(root, failures, *,
seed, **options) -> DataFrame[video_id, label, method, quality, split, identity, source_id,
text]``; ``video_id`` is the audio file's path relative to ``root`` (POSIX); label real (bona
fide) / fake (spoof); ``identity`` is the speaker (the CLAIMED speaker for a spoof);
``split`` is "" where the dataset has none (ingest then assigns a speaker-grouped split);
files listed but absent are failures; :class:`LayoutError` when the root is not of the layout.

- ``asvspoof2019``: ASVspoof 2019 LA. ``ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.
  {train.trn,dev.trl,eval.trl}.txt``, lines ``SPEAKER FILE - SYSTEM KEY`` (``LA_0079
  LA_T_1138215 - - bonafide``, ``LA_0079 LA_T_1004644 - A01 spoof``); audio
  ``ASVspoof2019_LA_<part>/flac/<FILE>.flac``. Official splits: train/dev/eval -> train/val/test.
  The root may also be the folder holding ``LA/``. The ASV scores the dataset ships
  (``ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt``, lines
  ``SPEAKER ATTACK KEY SCORE``) are found by :func:`dfdetect.metrics_asv.asvspoof2019_asv_scores` for the t-DCF.
- ``asvspoof2021``: ASVspoof 2021 LA evaluation. Audio ``ASVspoof2021_LA_eval/flac/*.flac``;
  labels from the keys package ``keys/LA/CM/trial_metadata.txt`` (lines ``SPEAKER FILE CODEC
  TRANSMISSION ATTACK KEY TRIM PHASE``, PHASE = progress | eval | hidden_track). All rows are
  split test (the 2021 challenge has no training data of its own: train on 2019 LA). Option
  ``phases`` keeps only those phases ([] = all). Without keys: :class:`LayoutError`.
- ``itw``: In-the-Wild (``release_in_the_wild/meta.csv``: ``file,speaker,label`` with label
  ``bona-fide``/``spoof``); no official split. Split WITHIN speakers (:func:`within_group_splits`:
  each speaker's bona fide and spoofed files are divided by ``split_fractions`` separately), so
  every test speaker is enrolled with bona fide train speech, as DADA's late fusion needs
  (dada.txt §3.3.2); a speaker-disjoint split would leave every test speaker unknown.
- ``mlaad``: MLAAD ``fake/<language>/<model>/*.wav`` with a pipe-separated ``meta.csv`` per
  model folder (``path|original_file|language|is_original_language|duration|training_data|
  model_name|architecture|transcript[|reference_speaker]``), bona fide audio from M-AILABS
  (``<lang>/by_book/<gender>/<speaker>/<book>/wavs/*.wav`` + ``metadata.csv`` ``id|text|
  normalized``) under ``<root>/<mailabs>`` (option, default: the first of ``mailabs``,
  ``M-AILABS``, ``real`` that exists). A spoof claims the M-AILABS reader whose sentence it says
  (from ``original_file``); method = TTS model name. Option ``languages`` (e.g. ``[en]``; [] = all).
  No official split (speaker-grouped).
- ``generic`` / ``demo_audio``: CSV ``path,label[,speaker|identity,split,method,source_id,text]``
  (option ``csv``, default ``labels.csv``, which must exist; labels real/fake,
  bonafide/bona-fide/spoof, 0/1) or, with ``csv: ''``, ``real/`` and ``fake/`` folders (a
  sub-folder name is the speaker).

Files whose real path lies outside the root (symlinks) are refused by ingest for every layout,
as for video (:func:`dfdetect.data.layouts._base.refuse_external`).
"""

from __future__ import annotations

import csv
import logging
import posixpath
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..data.layouts._base import LayoutError, add_missing, relative_id, walk_files
from ..failures import Failures

log = logging.getLogger("dfdetect")

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac", ".wma", ".aiff",
                    ".aif", ".au", ".webm", ".mp4", ".mkv", ".mov", ".avi")
COLUMNS = ["video_id", "label", "method", "quality", "split", "identity", "source_id", "text"]
LABELS = {"real": "real", "fake": "fake", "bonafide": "real", "bona-fide": "real",
          "bona_fide": "real", "genuine": "real", "spoof": "fake", "spoofed": "fake",
          "0": "real", "1": "fake", "false": "real", "true": "fake"}
SPLITS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "dev": "val",
          "test": "test", "eval": "test", "": ""}


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=COLUMNS)
    for col in COLUMNS:
        df[col] = df[col].fillna("").astype(str)
    return df


def is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _read_lines(path: Path) -> list[tuple[int, list[str]]]:
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                out.append((n, parts))
    return out


# ----------------------------------------------------------------------------- ASVspoof 2019
ASV19_PARTS = (("train", "train.trn", "train"), ("dev", "dev.trl", "val"), ("eval", "eval.trl", "test"))


def scan_asvspoof2019(root: Path, failures: Failures, *, partitions=("train", "dev", "eval"),
                      **_ignored) -> pd.DataFrame:
    root = Path(root)
    base = root if (root / "ASVspoof2019_LA_cm_protocols").is_dir() else root / "LA"
    proto_dir = base / "ASVspoof2019_LA_cm_protocols"
    if not proto_dir.is_dir():
        raise LayoutError(f"{root}: no ASVspoof2019_LA_cm_protocols/ (nor LA/...); is this an "
                          "ASVspoof 2019 LA root? Expected ASVspoof2019_LA_cm_protocols/ and "
                          "ASVspoof2019_LA_{train,dev,eval}/flac/")
    prefix = base.relative_to(root).as_posix()
    rows, found = [], False
    for part, suffix, split in ASV19_PARTS:
        if partitions and part not in partitions:
            continue
        proto = proto_dir / f"ASVspoof2019.LA.cm.{suffix}.txt"
        if not proto.is_file():
            log.warning("%s: missing; partition %s skipped", proto, part)
            continue
        found = True
        listed = f"{proto.name}"
        for n, parts in _read_lines(proto):
            if len(parts) < 5:
                failures.add(f"{proto.name}:{n}", f"{listed} line {n}: expected 5 fields "
                             "(SPEAKER FILE - SYSTEM KEY)", path=str(proto))
                continue
            speaker, name, _unused, system, key = parts[:5]
            label = LABELS.get(key.lower())
            vid = posixpath.normpath(posixpath.join(prefix, f"ASVspoof2019_LA_{part}/flac/{name}.flac"))
            if label is None:
                failures.add(vid, f"{listed} line {n}: key {key!r} is not bonafide/spoof",
                             path=str(root / vid))
                continue
            if not (root / vid).is_file():
                add_missing(failures, vid, listed, root / vid)
                continue
            rows.append({"video_id": vid, "label": label,
                         "method": "bonafide" if label == "real" else system,
                         "quality": "", "split": split, "identity": speaker, "source_id": "",
                         "text": ""})
    if not found:
        raise LayoutError(f"{proto_dir}: none of the CM protocol files "
                          "ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt")
    return frame(rows)


# ----------------------------------------------------------------------------- ASVspoof 2021
def scan_asvspoof2021(root: Path, failures: Failures, *, phases=(), keys: str = "",
                      **_ignored) -> pd.DataFrame:
    root = Path(root)
    audio_dir = root / "ASVspoof2021_LA_eval" / "flac"
    if not audio_dir.is_dir():
        raise LayoutError(f"{root}: no ASVspoof2021_LA_eval/flac/; is this an ASVspoof 2021 LA "
                          "root? Expected ASVspoof2021_LA_eval/flac/ and keys/LA/CM/trial_metadata.txt")
    meta = Path(keys) if keys else root / "keys" / "LA" / "CM" / "trial_metadata.txt"
    if not meta.is_absolute() and keys:
        meta = root / meta
    if not meta.is_file():
        raise LayoutError(f"{meta}: not found. ASVspoof 2021 LA labels come from the keys package "
                          "(LA-keys-full.tar.gz, https://www.asvspoof.org/index2021.html): unpack "
                          "it into the root so that keys/LA/CM/trial_metadata.txt exists")
    rows = []
    for n, parts in _read_lines(meta):
        if len(parts) < 6:
            failures.add(f"trial_metadata.txt:{n}", f"trial_metadata.txt line {n}: expected "
                         ">= 6 fields (SPEAKER FILE CODEC TRANSMISSION ATTACK KEY ...)", path=str(meta))
            continue
        speaker, name, codec, channel, attack, key = parts[:6]
        phase = parts[7] if len(parts) > 7 else ""
        if phases and phase not in phases:
            continue
        vid = f"ASVspoof2021_LA_eval/flac/{name}.flac"
        label = LABELS.get(key.lower())
        if label is None:
            failures.add(vid, f"trial_metadata.txt line {n}: key {key!r} is not bonafide/spoof",
                         path=str(root / vid))
            continue
        if not (root / vid).is_file():
            add_missing(failures, vid, "trial_metadata.txt", root / vid)
            continue
        rows.append({"video_id": vid, "label": label,
                     "method": "bonafide" if label == "real" else attack,
                     "quality": f"{codec}/{channel}", "split": "test", "identity": speaker,
                     "source_id": "", "text": ""})
    return frame(rows)


# ----------------------------------------------------------------------------- In-the-Wild
def within_group_splits(groups: Sequence[str], labels: Sequence[str], fractions: Sequence[float],
                        seed: int) -> list[str]:
    """Split names that divide every (group, label) cell by ``fractions`` (train, val, test):
    counts floor(f n), at least one per split with a positive fraction when the cell has that
    many items, the rest to the largest remainders; order shuffled by a generator seeded with
    ``seed`` and the CRC-32 of the cell, so a cell's split does not depend on the others."""
    fr = np.asarray(fractions, dtype=float)
    fr = fr / fr.sum()
    names = np.array(["train", "val", "test"])
    out = np.empty(len(groups), dtype=object)
    cells: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(map(str, groups), map(str, labels))):
        cells.setdefault(key, []).append(i)
    for key in sorted(cells):
        idx = cells[key]
        n = len(idx)
        counts = np.floor(fr * n).astype(int)
        need = (fr > 0) & (counts == 0)
        if n >= int((fr > 0).sum()):
            counts[need] = 1
        while counts.sum() > n:
            counts[int(np.argmax(counts))] -= 1
        while counts.sum() < n:
            counts[int(np.argmax(fr * n - counts))] += 1
        rng = np.random.default_rng([int(seed), zlib.crc32("\0".join(key).encode("utf-8"))])
        assigned = np.repeat(names, counts)[rng.permutation(n)]
        out[idx] = assigned
    return out.tolist()


def scan_itw(root: Path, failures: Failures, *, seed: int = 0,
             split_fractions: Sequence[float] = (0.6, 0.2, 0.2), **_ignored) -> pd.DataFrame:
    root = Path(root)
    base = root if (root / "meta.csv").is_file() else root / "release_in_the_wild"
    meta = base / "meta.csv"
    if not meta.is_file():
        raise LayoutError(f"{root}: no release_in_the_wild/meta.csv (nor meta.csv); is this an "
                          "In-the-Wild root? Expected meta.csv with columns file,speaker,label")
    table = pd.read_csv(meta, dtype=str, keep_default_na=False)
    table.columns = [c.strip().lower() for c in table.columns]
    if not {"file", "speaker", "label"} <= set(table.columns):
        raise LayoutError(f"{meta}: needs columns file,speaker,label; got {list(table.columns)}")
    prefix = base.relative_to(root).as_posix()
    rows = []
    for n, rec in enumerate(table.to_dict("records"), start=2):
        vid = posixpath.normpath(posixpath.join(prefix, rec["file"].strip()))
        label = LABELS.get(rec["label"].strip().lower())
        if label is None:
            failures.add(vid, f"meta.csv line {n}: label {rec['label']!r} is not bona-fide/spoof",
                         path=str(root / vid))
        elif not (root / vid).is_file():
            add_missing(failures, vid, "meta.csv", root / vid)
        else:
            rows.append({"video_id": vid, "label": label,
                         "method": "bonafide" if label == "real" else "unknown",
                         "quality": "", "split": "", "identity": rec["speaker"].strip(),
                         "source_id": "", "text": ""})
    df = frame(rows)
    if len(df):
        df["split"] = within_group_splits(df["identity"], df["label"], split_fractions, seed)
    return df


# ----------------------------------------------------------------------------- MLAAD
def _mailabs_reader(original: str) -> str:
    """Reader name of an M-AILABS path ``<lang>/by_book/<gender>/<reader>/<book>/wavs/x.wav``."""
    parts = PurePosixPath(original.replace("\\", "/")).parts
    if "by_book" in parts:
        i = parts.index("by_book")
        if len(parts) > i + 2 and parts[i + 1] in ("male", "female"):
            return parts[i + 2]
        if len(parts) > i + 2 and parts[i + 1] == "mix":
            return f"mix/{parts[i + 2]}"
    return ""


def _mailabs_rows(root: Path, sub: Path, languages, failures: Failures) -> list[dict]:
    rows = []
    for lang_dir in sorted(p for p in sub.iterdir() if p.is_dir()):
        lang = lang_dir.name.split("_")[0].lower()
        if languages and lang not in languages and lang_dir.name not in languages:
            continue
        for meta in sorted(lang_dir.glob("by_book/**/metadata.csv"), key=lambda p: p.as_posix()):
            book = meta.parent
            reader = _mailabs_reader(book.relative_to(sub).as_posix() + "/wavs/x.wav")
            with open(meta, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    parts = line.rstrip("\n").split("|")
                    if not parts[0].strip():
                        continue
                    path = book / "wavs" / f"{parts[0].strip()}.wav"
                    vid = path.relative_to(root).as_posix()
                    if not path.is_file():
                        add_missing(failures, vid, meta.relative_to(root).as_posix(), path)
                        continue
                    text = parts[2] if len(parts) > 2 and parts[2] else (parts[1] if len(parts) > 1 else "")
                    rows.append({"video_id": vid, "label": "real", "method": "bonafide",
                                 "quality": "", "split": "", "identity": reader or book.name,
                                 "source_id": "", "text": text.strip()})
    return rows


def scan_mlaad(root: Path, failures: Failures, *, languages=(), mailabs: str = "",
               **_ignored) -> pd.DataFrame:
    root = Path(root)
    fake = root / "fake"
    if not fake.is_dir():
        raise LayoutError(f"{root}: no fake/ folder; is this an MLAAD root? Expected "
                          "fake/<language>/<model>/meta.csv and an M-AILABS copy for bona fide")
    languages = [str(x).lower() for x in (languages or [])]
    rows: list[dict] = []
    for lang_dir in sorted(p for p in fake.iterdir() if p.is_dir()):
        if languages and lang_dir.name.lower() not in languages:
            continue
        for model_dir in sorted(p for p in lang_dir.iterdir() if p.is_dir()):
            meta = model_dir / "meta.csv"
            if not meta.is_file():
                failures.add(model_dir.relative_to(root).as_posix(), "no meta.csv in MLAAD model "
                             "folder; its files are left out", path=str(model_dir))
                continue
            with open(meta, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f, delimiter="|")
                for n, rec in enumerate(reader, start=2):
                    rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items()}
                    name = rec.get("path", "")
                    cands = [root / name, model_dir / PurePosixPath(name.replace("\\", "/")).name]
                    path = next((c for c in cands if name and c.is_file()), None)
                    vid = (path or cands[1]).relative_to(root).as_posix() if name else ""
                    if not name:
                        failures.add(f"{meta.relative_to(root).as_posix()}:{n}",
                                     f"meta.csv line {n}: empty path", path=str(meta))
                    elif path is None:
                        add_missing(failures, vid, meta.relative_to(root).as_posix(), cands[1])
                    else:
                        speaker = (rec.get("reference_speaker") or
                                   _mailabs_reader(rec.get("original_file", "")))
                        rows.append({"video_id": vid, "label": "fake",
                                     "method": rec.get("model_name") or model_dir.name,
                                     "quality": "", "split": "", "identity": speaker,
                                     "source_id": "", "text": rec.get("transcript", "")})
    names = [mailabs] if mailabs else ["mailabs", "M-AILABS", "m-ailabs", "real"]
    sub = next((root / n for n in names if (root / n).is_dir()), None)
    if sub is None:
        log.warning("%s: no M-AILABS folder (%s): MLAAD has spoofs only; bona fide audio is "
                    "missing", root, ", ".join(names))
    else:
        rows += _mailabs_rows(root, sub, languages, failures)
    return frame(rows)


# ----------------------------------------------------------------------------- generic
def scan_generic(root: Path, failures: Failures, *, csv: str = "labels.csv",
                 follow_external_symlinks: bool = False, **_ignored) -> pd.DataFrame:
    root = Path(root)
    if csv:
        table_path = root / csv
        if not table_path.is_file():
            raise LayoutError(f"{table_path}: labels CSV not found (generic audio layout, csv "
                              f"{csv!r}); set csv to '' to label by real/ and fake/ folders")
        table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
        table.columns = [str(c).strip().lower() for c in table.columns]
        if "path" not in table.columns and "file" in table.columns:
            table = table.rename(columns={"file": "path"})
        if "identity" not in table.columns and "speaker" in table.columns:
            table = table.rename(columns={"speaker": "identity"})
        if not {"path", "label"} <= set(table.columns):
            raise LayoutError(f"{table_path}: needs columns path,label; got {list(table.columns)}")
        rows, seen = [], set()
        for n, rec in enumerate(table.to_dict("records"), start=2):
            where = f"{csv} line {n}"
            vid = relative_id(rec["path"], root)
            if vid is None:
                failures.add(rec["path"], f"{where}: path {rec['path']!r} is empty or outside the "
                             f"dataset root {root}", path=rec["path"])
                continue
            label = LABELS.get(rec["label"].strip().lower())
            split = SPLITS.get(rec.get("split", "").strip().lower())
            if label is None:
                failures.add(vid, f"{where}: label {rec['label']!r} is not real/fake/bonafide/spoof",
                             path=str(root / vid))
            elif split is None:
                failures.add(vid, f"{where}: split {rec['split']!r} is not train/val/test",
                             path=str(root / vid))
            elif vid in seen:
                failures.add(vid, f"{where}: listed twice", path=str(root / vid))
            elif not (root / vid).is_file():
                add_missing(failures, vid, csv, root / vid)
            else:
                seen.add(vid)
                row = {"video_id": vid, "label": label, "split": split}
                for col in ("identity", "method", "quality", "source_id", "text"):
                    row[col] = str(rec.get(col, "")).strip()
                if not row["method"]:
                    row["method"] = "bonafide" if label == "real" else ""
                rows.append(row)
        return frame(rows)
    real, fake = root / "real", root / "fake"
    if not (real.is_dir() and fake.is_dir()):
        raise LayoutError(f"{root}: no real/ + fake/ folders (csv ''); expected a CSV "
                          "path,label[,speaker,split,text] (param csv) or real/ and fake/")
    rows = []
    for label, folder in (("real", real), ("fake", fake)):
        for path in walk_files(folder, is_audio, root=root, failures=failures,
                               follow_external_symlinks=follow_external_symlinks):
            inner = path.relative_to(folder).parts
            rows.append({"video_id": path.relative_to(root).as_posix(), "label": label,
                         "method": "bonafide" if label == "real" else "", "quality": "",
                         "split": "", "identity": inner[0] if len(inner) > 1 else "",
                         "source_id": "", "text": ""})
    if not rows:
        raise LayoutError(f"{root}: real/ and fake/ hold no audio files")
    return frame(rows)


LAYOUTS: dict[str, Callable[..., pd.DataFrame]] = {
    "asvspoof2019": scan_asvspoof2019,
    "asvspoof2021": scan_asvspoof2021,
    "itw": scan_itw,
    "mlaad": scan_mlaad,
    "generic": scan_generic,
    "demo_audio": scan_generic,
}


def get_layout(name: str):
    if name not in LAYOUTS:
        raise LayoutError(f"unknown audio dataset layout {name!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]
