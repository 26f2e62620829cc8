"""Build the embedded demo dataset (or the same kind of dataset from a folder of real media).

Layout of the output folder (``data/demo`` in the DAG)::

    real/<identity>/clip<k>_<quality>.mp4
    fake/<method>/<identity>_<source>_clip<k>_<quality>.mp4
    labels.csv       path,label,method,quality,identity,source_id,split,clip
    metadata.json    seed, params, sources and licences, tool versions, counts
                     (params.source: the folder built from, or null for the packaged faces,
                     also when the source folder holds no photo or video)
    README.md        the same in words

Splits are assigned here, by identity: identities are dealt to train/test/val and every fake
mixes two identities of the SAME split (a swap's target and source, a reenactment's target
and driver), so no person appears in two splits. The folder is built in a temporary directory
next to the output and renamed into place when complete; the same seed and params give the
same bytes.
"""

from __future__ import annotations

import json
import logging
import shutil
import re
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ... import config as _cfg
from ...failures import Failures, ItemError
from ...store import (remove_stale_temporaries, temp_dir, write_csv_atomic, write_json_atomic,
                      write_text_atomic)
from . import audio as audio_mod
from .encode import encode_video
from ..identity import check_identity_options, path_identity
from .faces import DEFAULT_LFW, Portrait, apply_affine, builtin_portraits, face_frame_affine, photo_portrait
from .motion import Clip, render_portrait
from .reenact import blink_track, decoder_frames, mouth_track, reenact_frames
from .swap import swap_frames

log = logging.getLogger("dfdetect")

IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
METHODS = ("faceswap", "reenact", "decoder", "sbi")
SPLIT_ORDER = ("train", "test", "val")
LABEL_COLUMNS = ["path", "label", "method", "quality", "identity", "source_id", "split", "clip"]

DEFAULTS = {
    "source": "", "identities": 12, "clips": 1, "fps": 25, "seconds": 2.0, "size": 256,
    "qualities": ["c23", "c40"], "methods": ["faceswap", "reenact"], "lfw": list(DEFAULT_LFW), "photos": True,
    "split_fractions": [0.5, 0.25, 0.25], "max_sources": 8, "identity_from": "file",
    "preset": "medium", "identity_regex": "",
}


def _even(value, where: str) -> None:
    if value % 2:
        raise _cfg.ParamError(where, value, "must be even (yuv420p)")


def _regex(value, where: str) -> None:
    try:
        re.compile(value)
    except re.error as err:
        raise _cfg.ParamError(where, value, f"must be a regular expression ({err})") from None


# params schema of the ``make_demo`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "source": _cfg.PathStr("dir"),
    "identities": _cfg.Int(ge=1),
    "clips": _cfg.Int(ge=1),
    "fps": _cfg.Float(gt=0, le=240),
    "seconds": _cfg.Float(gt=0),
    "size": _cfg.Int(ge=64, check=_even),
    "qualities": _cfg.List(_cfg.Str(pattern=r"raw|c0|c[1-4]?[0-9]|c5[01]"), min_len=1, unique=True),
    "methods": _cfg.List(_cfg.Choice(*METHODS), min_len=1, unique=True),
    "lfw": _cfg.List(_cfg.Int(ge=0), unique=True),
    "split_fractions": _cfg.fractions(3),
    "max_sources": _cfg.Int(ge=0),
    "identity_from": _cfg.Choice("file", "folder"),
    "identity_regex": _cfg.Str(check=_regex),
    "preset": _cfg.Choice("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                          "slower", "veryslow", "placebo"),
    "photos": _cfg.Bool(),
})
# ``make_demo_unseen``: overrides of make_demo (a second demo, e.g. a test set of other people)
OVERRIDES = _cfg.Section({**PARAMS.fields, "seed": _cfg.SEED})


@dataclass
class Subject:
    """One identity's material: a portrait (photo) or a video file."""

    identity: str
    kind: str                         # portrait | photo | video
    path: str = ""
    portrait: Portrait | None = None
    voice: str = ""
    index: int = 0


@dataclass
class ClipJob:
    subject: Subject
    clip: int
    cfg: dict
    seed: int
    work: str
    out: str
    sentence: str = ""
    number: int = -1                  # clip number within the identity (names); -1 = clip


@dataclass
class FakeJob:
    method: str
    target: dict                      # real-clip record of the target
    source: dict | None               # real-clip record of the source / driver
    cfg: dict
    seed: int
    work: str
    out: str
    extra: dict = field(default_factory=dict)


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _config(cfg: dict) -> dict:
    out = dict(DEFAULTS)
    out.update({k: v for k, v in cfg.items() if k in DEFAULTS})
    out["methods"] = [str(m) for m in out["methods"]]
    bad = [m for m in out["methods"] if m not in METHODS]
    if bad:
        raise ValueError(f"make_demo.methods: unknown {bad}; known: {list(METHODS)}")
    if int(out["size"]) % 2:
        raise ValueError("make_demo.size must be even (yuv420p)")
    return out


def n_frames(cfg: dict) -> int:
    return max(1, int(round(float(cfg["seconds"]) * float(cfg["fps"]))))


# ----------------------------------------------------------------------------- subjects
def builtin_subjects(cfg: dict, failures: Failures) -> list[Subject]:
    portraits = builtin_portraits(cfg["lfw"], 256, failures, photos=bool(cfg["photos"]),  # LFW upscaled for dlib
                                  limit=int(cfg["identities"]))
    return [Subject(p.identity, "portrait", portrait=p, index=i,
                    voice=audio_mod.VOICES[i % len(audio_mod.VOICES)])
            for i, p in enumerate(portraits)]


def source_media(source: str | Path) -> list[Path]:
    """The photos and videos under the source folder (recursively, sorted); FileNotFoundError
    when the folder does not exist."""
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"make_demo.source {root} is not a directory")
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXT | VIDEO_EXT)


def effective_source(source: str | Path | None) -> str | None:
    """What the build is made from: None (the faces shipped by installed packages) when
    ``source`` is empty or a folder holding no photo or video (the default
    ``data/demo_source/`` holds only a README), else ``source`` itself. The metadata's
    ``params.source`` records this value (null = the packaged faces), so a README-only folder
    builds the same bytes as ``source: ""`` did."""
    if not source:
        return None
    return str(source) if source_media(source) else None


def describe_source(source: str | Path | None) -> str:
    """One line for the stage's log: where the real faces of the build come from."""
    if not source:
        return "the faces shipped by installed packages (source '')"
    media = source_media(source)
    if not media:
        return f"the faces shipped by installed packages ({source} holds no photo or video)"
    return f"{len(media)} photo/video file(s) of {source}"


def source_subjects(cfg: dict, seed: int) -> list[Subject]:
    root = Path(cfg["source"])
    check_identity_options(cfg.get("identity_from") or "file", cfg.get("identity_regex") or "")
    files = source_media(root)
    max_n = int(cfg.get("max_sources") or 0)
    if max_n and len(files) > max_n:
        pick = np.sort(_rng(seed, "sources").choice(len(files), max_n, replace=False))
        files = [files[i] for i in pick]
    subjects, seen = [], {}
    for i, p in enumerate(files):
        base, grouped = path_identity(p.relative_to(root).as_posix(), cfg.get("identity_from"),
                                      cfg.get("identity_regex") or "", root_name=root.name)
        ident = _safe(base)
        seen[ident] = seen.get(ident, 0) + 1
        if not grouped and seen[ident] > 1:
            ident = f"{ident}-{seen[ident]}"
        kind = "video" if p.suffix.lower() in VIDEO_EXT else "photo"
        subjects.append(Subject(ident, kind, path=str(p), index=i,
                                voice=audio_mod.VOICES[i % len(audio_mod.VOICES)]))
    return subjects


def _safe(name: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_" else "-" for c in name.strip())
    return out.strip("-") or "x"


# ----------------------------------------------------------------------------- real clips
def _video_clip(job: ClipJob) -> tuple[Clip, bool]:
    """Clip ``job.clip`` of a real video: frames resampled to fps, landmarks per frame, a
    fixed crop around the face (median landmarks) scaled to size. Returns (clip, has_audio)."""
    from ...faces.landmarks import detect_landmarks, predict_landmarks  # noqa: PLC0415

    cfg, path = job.cfg, job.subject.path
    n, fps, size = n_frames(cfg), float(cfg["fps"]), int(cfg["size"])
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise ItemError("cannot open video", path=path)
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    start = job.clip * float(cfg["seconds"])
    wanted = [int(round((start + j / fps) * src_fps)) for j in range(n)]
    frames, pos, cur = [], -1, None
    for w in wanted:
        while pos < w:
            ok, bgr = cap.read()
            if not ok:
                break
            pos += 1
            cur = bgr
        if pos < w or cur is None:
            break
        frames.append(cur[..., ::-1].copy())
    cap.release()
    if len(frames) < n:
        if job.clip == 0 and not frames:
            raise ItemError("cannot decode any frame", path=path)
        raise ItemError(f"too short for clip {job.clip} ({len(frames)} of {n} frames)", path=path)
    lms: list = []
    for f in frames:
        scale = min(1.0, 640.0 / max(f.shape[:2]))
        small = cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else f
        found = detect_landmarks(small, 1 if max(small.shape[:2]) <= 400 else 0)
        lms.append(predict_landmarks(f, found[0][0] / scale) if found else None)
    ok = [i for i, lm in enumerate(lms) if lm is not None]
    if len(ok) < max(1, n // 2):
        raise ItemError(f"face found in only {len(ok)} of {n} frames of clip {job.clip}", path=path)
    for i in range(n):                       # frames without a face take the nearest landmarks
        if lms[i] is None:
            lms[i] = lms[min(ok, key=lambda j: abs(j - i))]
    lm = np.stack(lms).astype(np.float64)
    m = face_frame_affine(np.median(lm, 0), size, image_shape=frames[0].shape)
    out = np.stack([cv2.warpAffine(f, m, (size, size), flags=cv2.INTER_AREA,
                                   borderMode=cv2.BORDER_REFLECT_101) for f in frames])
    out_lm = np.stack([apply_affine(x, m) for x in lm])
    num = job.clip if job.number < 0 else job.number
    wav = Path(job.work) / f"{job.subject.identity}_clip{num}.wav"
    has = audio_mod.extract_audio(path, start, float(cfg["seconds"]), wav)
    clip = Clip(f"clip{job.clip}", job.subject.identity, out, out_lm, fps, str(wav) if has else "")
    return clip, has


def make_real(job: ClipJob) -> dict:
    """Render (or cut) one real clip, keep its frames for the fakes, encode it per quality."""
    cfg, subj = job.cfg, job.subject
    num = job.clip if job.number < 0 else job.number
    name = f"{subj.identity}/clip{num}"
    rng = _rng(job.seed, "real:" + name)
    n, fps, size = n_frames(cfg), float(cfg["fps"]), int(cfg["size"])
    work = Path(job.work)
    audio_kind = "espeak-ng"
    if subj.kind == "video":
        clip, has = _video_clip(job)
        audio_kind = "original" if has else "espeak-ng"
    else:
        portrait = subj.portrait if subj.kind == "portrait" else photo_portrait(subj.path, subj.identity)
        clip = render_portrait(portrait, rng, n, fps, size, f"clip{num}")
    if not clip.audio:
        wav = work / f"{subj.identity}_clip{num}.wav"
        audio_mod.speak(job.sentence, subj.voice, float(cfg["seconds"]), wav)
        clip.audio = str(wav)
    npz = work / f"{subj.identity}_clip{num}.npz"
    np.savez(npz, frames=clip.frames, landmarks=clip.landmarks)
    rows = []
    for q in cfg["qualities"]:
        rel = f"real/{subj.identity}/clip{num}_{q}.mp4"
        encode_video(clip.frames, fps, q, Path(job.out) / rel, clip.audio, cfg["preset"])
        rows.append({"path": rel, "label": "real", "method": "original", "quality": q,
                     "identity": subj.identity, "source_id": "", "clip": f"clip{num}"})
    return {"identity": subj.identity, "clip": num, "npz": str(npz), "audio": clip.audio,
            "audio_kind": audio_kind, "voice": subj.voice if audio_kind == "espeak-ng" else "",
            "sentence": job.sentence if audio_kind == "espeak-ng" else "", "rows": rows,
            "kind": subj.kind, "path": subj.path}


# ----------------------------------------------------------------------------- fakes
def make_fake(job: FakeJob) -> dict:
    cfg, tgt, src = job.cfg, job.target, job.source
    t = np.load(tgt["npz"])
    frames, lms = t["frames"], t["landmarks"]
    fps = float(cfg["fps"])
    if job.method == "faceswap":
        s = np.load(src["npz"])
        out = swap_frames(s["frames"], s["landmarks"], frames, lms)
    elif job.method == "reenact":
        env = audio_mod.envelope(src["audio"], fps, len(frames))
        blinks = blink_track(_rng(job.seed, f"blink:{tgt['identity']}:{tgt['clip']}"), len(frames), fps)
        out = reenact_frames(frames, lms, mouth_track(env), blinks)
    elif job.method == "decoder":
        out = decoder_frames(frames, lms)
    elif job.method == "sbi":                # self-blended (dfdetect.nn.sbi): no second identity
        from ...nn.sbi import sbi_frames  # noqa: PLC0415

        out = sbi_frames(frames, lms, _rng(job.seed, f"sbi:{tgt['identity']}:{tgt['clip']}"))
    else:  # pragma: no cover - validated in _config
        raise ValueError(job.method)
    source_id = src["identity"] if src is not None else ""
    stem = f"{tgt['identity']}_{source_id}" if source_id else tgt["identity"]
    rows = []
    for q in cfg["qualities"]:
        rel = f"fake/{job.method}/{stem}_clip{tgt['clip']}_{q}.mp4"
        encode_video(out, fps, q, Path(job.out) / rel, tgt["audio"], cfg["preset"])
        rows.append({"path": rel, "label": "fake", "method": job.method, "quality": q,
                     "identity": tgt["identity"], "source_id": source_id,
                     "clip": f"clip{tgt['clip']}"})
    return {"rows": rows}


# ----------------------------------------------------------------------------- splits
def deal_splits(identities: list[str], fractions, seed: int, first: list[str] | None = None) -> dict:
    """Identity -> split. Identities (``first`` ones ahead, each group shuffled by seed) are
    dealt round-robin to train, test, val until each holds its share; a split gets at least two
    identities (a fake needs two people of one split) or none."""
    first = [i for i in (first or []) if i in identities]
    rest = [i for i in identities if i not in first]
    rng = _rng(seed, "splits")
    order = [first[j] for j in rng.permutation(len(first))] + [rest[j] for j in rng.permutation(len(rest))]
    n = len(order)
    fr = dict(zip(("train", "val", "test"), np.asarray(fractions, float) / np.sum(fractions)))
    groups = min(3, n // 2)
    names = [s for s in SPLIT_ORDER][:max(groups, 1)]
    quota = {s: 2 if n >= 2 else n for s in names}
    while sum(quota.values()) < n:
        s = max(names, key=lambda k: fr[k] * n - quota[k])
        quota[s] += 1
    while sum(quota.values()) > n:            # n < 2: a single split
        quota[names[0]] -= 1
    out, filled = {}, {s: 0 for s in names}
    k = 0
    for ident in order:
        while filled[names[k % len(names)]] >= quota[names[k % len(names)]]:
            k += 1
        s = names[k % len(names)]
        out[ident] = s
        filled[s] += 1
        k += 1
    return out


def partners(split_of: dict, seed: int) -> dict[str, tuple[str, str]]:
    """identity -> (faceswap source, reenactment driver), both other identities of its split."""
    out = {}
    for s in SPLIT_ORDER:
        ids = sorted(i for i, v in split_of.items() if v == s)
        ids = [ids[j] for j in _rng(seed, "pairs:" + s).permutation(len(ids))]
        k = len(ids)
        for j, ident in enumerate(ids):
            out[ident] = (ids[(j + 1) % k], ids[(j - 1) % k]) if k > 1 else ("", "")
    return out


# ----------------------------------------------------------------------------- build
def _tool_version(cmd: list[str]) -> str:
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
        return (run.stdout or run.stderr).splitlines()[0].strip()
    except (OSError, IndexError):
        return "unavailable"


def build(out: str | Path, cfg: dict, seed: int, failures: Failures | None = None,
          executor: str = "process", workers: int | None = None, progress: bool = True) -> dict:
    """Build the dataset into ``out`` (replaced atomically). Returns the metadata dict."""
    from ...parallel import imap  # noqa: PLC0415

    cfg = _config(cfg)
    cfg["source"] = effective_source(cfg["source"])
    failures = failures if failures is not None else Failures("make_demo")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)   # left by a killed build (store.py: pid-named temporaries)
    tmp = temp_dir(out)
    work = temp_dir(out, "work")
    try:
        if cfg["source"]:
            subjects = source_subjects(cfg, seed)
        else:
            subjects = builtin_subjects(cfg, failures)
        sentences = list(audio_mod.HARVARD)
        perm = _rng(seed, "sentences").permutation(len(sentences))
        jobs, numbers = [], {}
        for subj in subjects:
            for k in range(int(cfg["clips"])):
                sent = sentences[perm[(subj.index * int(cfg["clips"]) + k) % len(sentences)]]
                num = numbers.get(subj.identity, 0)
                numbers[subj.identity] = num + 1
                jobs.append(ClipJob(subj, k, cfg, seed, str(work), str(tmp), sent, num))
        reals: list[dict] = []
        for job, res, err in imap(make_real, jobs, executor=executor, workers=workers,
                                  desc="make_demo real", progress=progress):
            vid = f"{job.subject.identity}/clip{job.number}"
            if err is not None:
                failures.add_error(vid, err, path=job.subject.path or job.subject.identity)
            else:
                reals.append(res)
        idents = sorted({r["identity"] for r in reals})
        first = [s.identity for s in subjects if s.kind == "portrait" and s.portrait.kind == "photo"]
        split_of = deal_splits(idents, cfg["split_fractions"], seed, first)
        pairs = partners(split_of, seed)
        by_key = {(r["identity"], r["clip"]): r for r in reals}
        clips_of = {i: sorted(r["clip"] for r in reals if r["identity"] == i) for i in idents}
        fjobs = []
        for r in reals:
            swap_src, driver = pairs.get(r["identity"], ("", ""))
            for method in cfg["methods"]:
                partner = {"faceswap": swap_src, "reenact": driver}.get(method)
                src = None
                if partner is not None:
                    if not partner:
                        failures.add(f"{r['identity']}/clip{r['clip']}",
                                     f"{method}: no other identity in split {split_of[r['identity']]}")
                        continue
                    cands = clips_of[partner]
                    src = by_key[(partner, cands[r["clip"] % len(cands)])]
                fjobs.append(FakeJob(method, r, src, cfg, seed, str(work), str(tmp)))
        rows = [row for r in reals for row in r["rows"]]
        for job, res, err in imap(make_fake, fjobs, executor=executor, workers=workers,
                                  desc="make_demo fake", progress=progress):
            if err is not None:
                failures.add_error(f"{job.method}/{job.target['identity']}/clip{job.target['clip']}", err)
            else:
                rows.extend(res["rows"])
        if not rows:
            raise RuntimeError("make_demo produced no video (see the failures table)")
        labels = pd.DataFrame(rows)
        labels["split"] = labels["identity"].map(split_of)
        labels = labels[LABEL_COLUMNS].sort_values("path", kind="stable").reset_index(drop=True)
        write_csv_atomic(tmp / "labels.csv", labels)
        meta = _metadata(cfg, seed, subjects, reals, split_of, pairs, labels, failures)
        write_json_atomic(tmp / "metadata.json", meta)
        write_text_atomic(tmp / "README.md", readme_text(meta))
        _replace_dir(tmp, out)
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, out: Path) -> None:
    old = None
    if out.exists() or out.is_symlink():
        old = temp_dir(out, "old")
        old.rmdir()
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _metadata(cfg, seed, subjects, reals, split_of, pairs, labels, failures) -> dict:
    ids = []
    for s in subjects:
        if s.identity not in split_of:
            continue
        clips = [r for r in reals if r["identity"] == s.identity]
        ids.append({
            "identity": s.identity, "split": split_of[s.identity],
            "source": s.portrait.source if s.portrait is not None else s.path,
            "licence": s.portrait.licence if s.portrait is not None else "see the source folder",
            "kind": (s.portrait.kind if s.portrait is not None else s.kind),
            "faceswap_source": pairs.get(s.identity, ("", ""))[0],
            "reenact_driver": pairs.get(s.identity, ("", ""))[1],
            "audio": [{"clip": r["clip"], "kind": r["audio_kind"], "voice": r["voice"],
                       "sentence": r["sentence"]} for r in sorted(clips, key=lambda r: r["clip"])],
        })
    counts = labels.groupby(["label", "method", "quality"]).size().reset_index(name="n")
    return {
        "format": "dfdetect-demo/1", "seed": int(seed), "params": cfg,
        "frames_per_video": n_frames(cfg), "videos": int(len(labels)),
        "counts": counts.to_dict(orient="records"),
        "splits": {s: sorted(i for i, v in split_of.items() if v == s) for s in SPLIT_ORDER},
        "identities": ids, "failures": failures.frame().to_dict(orient="records"),
        "tools": {"ffmpeg": _tool_version(["ffmpeg", "-version"]),
                  "espeak-ng": _tool_version(["espeak-ng", "--version"]),
                  "opencv": cv2.__version__},
    }


def readme_text(meta: dict) -> str:
    cfg = meta["params"]
    lines = [
        "# dfdetect demo dataset", "",
        f"Built by `stages/make_demo.py` (seed {meta['seed']}); rebuild with the same seed and "
        "params for the same bytes.", "",
        f"- {meta['videos']} videos, {meta['frames_per_video']} frames each "
        f"({cfg['seconds']} s at {cfg['fps']} fps, {cfg['size']}x{cfg['size']}), H.264 "
        f"(libx264, yuv420p) at {', '.join(cfg['qualities'])} (x264 CRF), AAC mono speech track.",
        f"- methods: {', '.join(cfg['methods'])}; `labels.csv` lists path, label, method, "
        "quality, identity, source_id, split, clip.",
        "- splits by identity; every fake mixes two identities of one split: "
        + "; ".join(f"{s}: {', '.join(v) or '-'}" for s, v in meta["splits"].items()), "",
        "| identity | split | source | licence | swap source | reenact driver |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for i in meta["identities"]:
        lines.append(f"| {i['identity']} | {i['split']} | {i['source']} | {i['licence']} | "
                     f"{i['faceswap_source']} | {i['reenact_driver']} |")
    lines += ["", "Real videos are the photos (or source videos) with seeded head motion; fakes: "
              "`faceswap` = Delaunay piecewise-affine warp of the source face onto the target's "
              "68 landmarks, its mean colour shifted to the target's, feathered alpha blending; "
              "`reenact` = the target's mouth driven by the driver's speech loudness and seeded "
              "blinks, by landmark-driven piecewise-affine warping; `decoder` = face through a "
              "80-px bottleneck, blended back. Speech: espeak-ng voices reading Harvard "
              "sentences (public domain), or the source video's own sound.", ""]
    if "sbi" in meta.get("params", {}).get("methods", []):
        lines[-1:-1] = ["`sbi` = self-blended images (Shiohara & Yamasaki, CVPR 2022): each frame "
                        "blended with an altered copy of itself (colour, sharpness, resolution, a "
                        "small shift and scale; one setting per clip) through its landmark hull, "
                        "deformed and blurred, at a random blend ratio (dfdetect.nn.sbi)."]
    if meta["failures"]:
        lines += [f"{len(meta['failures'])} source item(s) failed: see metadata.json.", ""]
    return "\n".join(lines)


def load_labels(root: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(root) / "labels.csv", keep_default_na=False, dtype=str)


def read_metadata(root: str | Path) -> dict:
    return json.loads((Path(root) / "metadata.json").read_text())
