"""FaceForensics++ (and its DeepFakeDetection part), as its download script lays it out.

Source: https://github.com/ondyari/FaceForensics (``dataset/README.md``, the download script's
``-d/-c/-t`` options, and ``dataset/splits/{train,val,test}.json``)::

    <root>/original_sequences/youtube/{raw,c23,c40}/videos/000.mp4 ... 999.mp4
    <root>/original_sequences/actors/{raw,c23,c40}/videos/01__exit_phone_room.mp4
    <root>/manipulated_sequences/<method>/{raw,c23,c40}/videos/000_003.mp4   (target_source)
    <root>/manipulated_sequences/DeepFakeDetection/<q>/videos/01_02__exit_phone_room__YVGY8LOK.mp4

Methods: Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter (youtube sources) and
DeepFakeDetection (actors). ``masks/`` and ``models/`` folders are ignored; only
``<quality>/videos`` is read. The first FF++ release put originals directly under
``original_sequences/<quality>/videos``; that is read as youtube.

Splits: the official ``splits/{train,val,test}.json`` are lists of ``[target, source]`` pairs of
youtube ids; a pair's two real videos and both fake directions (``t_s`` and ``s_t``) go to that
split. They ship with the GitHub repository, not the download: put them in ``<root>/splits/``
(or ``<root>/``, or pass ``splits_dir``). Without them, and always for actors and
DeepFakeDetection (no official split), the split is left empty for the identity-grouped split
of ingest. A video an official split lists but absent from a method/quality folder that exists
is recorded as a failure.

Identity: youtube ``000`` (each youtube sequence shows one person), actors ``actor01``; for
fakes ``identity`` is the target (whose video was manipulated) and ``source_id`` the source
person, so the grouped split keeps both people in one split.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

from ...failures import Failures
from ._base import LayoutError, add_missing, list_videos, rel, require_dir, rows_frame

log = logging.getLogger("dfdetect")

YOUTUBE_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
ACTOR_METHODS = ("DeepFakeDetection",)
METHODS = YOUTUBE_METHODS + ACTOR_METHODS
QUALITIES = ("raw", "c0", "c23", "c40")
SPLIT_NAMES = ("train", "val", "test")

_YT_REAL = re.compile(r"^(\d{3})$")
_YT_FAKE = re.compile(r"^(\d{3})_(\d{3})$")
_ACTOR_REAL = re.compile(r"^(\d{2})__(.+)$")
_ACTOR_FAKE = re.compile(r"^(\d{2})_(\d{2})__(.+?)(?:__([A-Z0-9]+))?$")

EXPECTED = ("original_sequences/{youtube,actors}/{raw,c23,c40}/videos and "
            "manipulated_sequences/<method>/<quality>/videos (FaceForensics++ download script)")


def _as_list(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def find_splits(root: Path, splits_dir: str | Path | None = None) -> Path | None:
    """Folder holding train.json/val.json/test.json, or None."""
    candidates = []
    if splits_dir:
        p = Path(splits_dir)
        candidates.append(p if p.is_absolute() else root / p)
        if not candidates[0].is_dir():
            raise LayoutError(f"{candidates[0]}: FaceForensics++ splits folder not found "
                              "(expected train.json, val.json, test.json from "
                              "github.com/ondyari/FaceForensics dataset/splits)")
    candidates += [root / "splits", root / "dataset" / "splits", root]
    for c in candidates:
        if all((c / f"{s}.json").is_file() for s in SPLIT_NAMES):
            return c
    return None


def read_splits(directory: Path) -> tuple[dict[str, str], dict[frozenset, str], dict[str, list]]:
    """id -> split, {t, s} -> split, and split -> pairs from the official JSON files."""
    id_split: dict[str, str] = {}
    pair_split: dict[frozenset, str] = {}
    pairs_of: dict[str, list] = {}
    for split in SPLIT_NAMES:
        path = directory / f"{split}.json"
        try:
            pairs = json.loads(path.read_text())
            ok = isinstance(pairs, list) and all(isinstance(p, list) and len(p) == 2 for p in pairs)
        except (OSError, json.JSONDecodeError) as err:
            raise LayoutError(f"{path}: cannot read FaceForensics++ split file: {err}") from err
        if not ok:
            raise LayoutError(f"{path}: expected a JSON list of [target, source] id pairs")
        pairs_of[split] = [[str(a), str(b)] for a, b in pairs]
        for a, b in pairs_of[split]:
            for vid in (a, b):
                prev = id_split.setdefault(vid, split)
                if prev != split:
                    raise LayoutError(f"{path}: id {vid} is in both {prev} and {split}")
            pair_split[frozenset((a, b))] = split
    return id_split, pair_split, pairs_of


def _quality_dirs(parent: Path, qualities: list[str]) -> list[tuple[str, Path]]:
    out = []
    if not parent.is_dir():
        return out
    for q in sorted(p.name for p in parent.iterdir() if p.is_dir()):
        if q not in QUALITIES or (qualities and q not in qualities):
            continue
        videos = parent / q / "videos"
        if videos.is_dir():
            out.append((q, videos))
    return out


def scan(root: Path, failures: Failures, *, seed: int = 0, qualities=None, methods=None,
         splits_dir: str | Path | None = None, **_ignored) -> pd.DataFrame:
    root = Path(root)
    orig = require_dir(root, "original_sequences", "FaceForensics++", EXPECTED)
    qualities = _as_list(qualities)
    methods = _as_list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise LayoutError(f"unknown FaceForensics++ methods {unknown}; expected some of {list(METHODS)}")
    bad_q = [q for q in qualities if q not in QUALITIES]
    if bad_q:
        raise LayoutError(f"unknown FaceForensics++ qualities {bad_q}; expected some of {list(QUALITIES)}")

    split_dir = find_splits(root, splits_dir)
    id_split: dict[str, str] = {}
    pair_split: dict[frozenset, str] = {}
    pairs_of: dict[str, list] = {}
    if split_dir is None:
        log.warning("%s: no official FaceForensics++ splits (splits/{train,val,test}.json); "
                    "youtube videos get the identity-grouped split", root)
    else:
        id_split, pair_split, pairs_of = read_splits(split_dir)
    split_label = (split_dir.relative_to(root).as_posix() + "/" if split_dir is not None
                   and split_dir != root and split_dir.is_relative_to(root) else "")

    rows: list[dict] = []

    def real_row(path: Path, source: str, q: str) -> dict:
        stem = path.stem
        ident, split = stem, ""
        if source == "youtube":
            m = _YT_REAL.match(stem)
            if m:
                split = id_split.get(stem, "")
            else:
                log.warning("%s: unexpected youtube sequence name (expected NNN.mp4)", path)
        else:
            m = _ACTOR_REAL.match(stem)
            ident = f"actor{m.group(1)}" if m else f"actor:{stem}"
            if not m:
                log.warning("%s: unexpected actors sequence name (expected NN__scene.mp4)", path)
        return {"video_id": rel(path, root), "label": "real", "method": "original", "quality": q,
                "split": split, "identity": ident, "source_id": ""}

    def fake_row(path: Path, method: str, q: str) -> dict:
        stem = path.stem
        ident, src, split = stem, "", ""
        if method in ACTOR_METHODS:
            m = _ACTOR_FAKE.match(stem)
            if m:
                ident, src = f"actor{m.group(1)}", f"actor{m.group(2)}"
            else:
                log.warning("%s: unexpected DeepFakeDetection name (expected NN_MM__scene__ID.mp4)", path)
        else:
            m = _YT_FAKE.match(stem)
            if m:
                ident, src = m.group(1), m.group(2)
                split = pair_split.get(frozenset((ident, src)), "")
                if not split and id_split.get(ident) and id_split.get(ident) == id_split.get(src):
                    split = id_split[ident]
            else:
                log.warning("%s: unexpected %s name (expected target_source.mp4)", path, method)
        return {"video_id": rel(path, root), "label": "fake", "method": method, "quality": q,
                "split": split, "identity": ident, "source_id": src}

    # originals: youtube/actors, or the first release's original_sequences/<q>/videos
    sources = [("youtube", orig / "youtube"), ("actors", orig / "actors")]
    if not any(p.is_dir() for _, p in sources) and _quality_dirs(orig, qualities):
        sources = [("youtube", orig)]
    youtube_dirs: list[tuple[str, Path]] = []
    for source, parent in sources:
        if source == "actors" and methods and not set(methods) & set(ACTOR_METHODS):
            continue
        if source == "youtube" and methods and not set(methods) & set(YOUTUBE_METHODS):
            continue
        for q, videos in _quality_dirs(parent, qualities):
            if source == "youtube":
                youtube_dirs.append((q, videos))
            rows.extend(real_row(p, source, q) for p in list_videos(videos))

    manip = root / "manipulated_sequences"
    method_dirs = sorted(p.name for p in manip.iterdir() if p.is_dir()) if manip.is_dir() else []
    fake_dirs: list[tuple[str, str, Path]] = []
    for method in method_dirs:
        if method not in METHODS:
            log.warning("%s: unknown method folder, skipped (known: %s)", manip / method, list(METHODS))
            continue
        if methods and method not in methods:
            continue
        for q, videos in _quality_dirs(manip / method, qualities):
            fake_dirs.append((method, q, videos))
            rows.extend(fake_row(p, method, q) for p in list_videos(videos))

    if not rows:
        raise LayoutError(f"{root}: no videos found; expected {EXPECTED}"
                          + (f" (qualities {qualities})" if qualities else "")
                          + (f" (methods {methods})" if methods else ""))

    # every video an official split lists must exist in each folder that is present
    if pairs_of:
        present = {r["video_id"] for r in rows}
        for split, pairs in pairs_of.items():
            listed_in = f"{split_label}{split}.json"
            for q, videos in youtube_dirs:
                for vid in sorted({v for pair in pairs for v in pair}):
                    path = videos / f"{vid}.mp4"
                    if rel(path, root) not in present:
                        add_missing(failures, rel(path, root), listed_in, path)
            for method, q, videos in fake_dirs:
                if method in ACTOR_METHODS:
                    continue
                for a, b in pairs:
                    for name in (f"{a}_{b}", f"{b}_{a}"):
                        path = videos / f"{name}.mp4"
                        if rel(path, root) not in present:
                            add_missing(failures, rel(path, root), listed_in, path)
    return rows_frame(rows)
