"""``dfdetect predict``: score new videos with every trained detector, outside the DAG.

``predict(paths, models, out)``

1. lists the videos (files, folders searched recursively) and probes them with ingest's own
   probing (a bad file is a failure row and a printed line; the run goes on);
2. in chunks of ``chunk_size`` videos (memory stays bounded for any number of videos), runs
   the DAG's preprocessing library functions into a temporary work directory
   (:mod:`.features`) and scores each trained detector (``models/<name>/config.json``) with
   ``load`` + ``score(DetectorData(manifest, sources=temp paths), "test")``;
3. writes, per video, ``<name>.json`` (video and frame scores with timestamps, faces found,
   frames without a face, failures, the detectors' init and config hashes, the fitted
   transforms' hashes and the package versions) and ``<name>.timeline.png``, then one
   ``index.html`` for the run, ``failures.csv`` and ``run.json`` (detectors, skipped ones with
   the reason, fusion weights, params, versions, counts).

Nothing under the DAG's ``data/``, ``models/`` or ``metrics/`` is written. Every output is
written atomically, and the same videos, models and params give byte-identical files (no
timings in them; the rate in videos/s is printed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..failures import Failures
from ..store import Store, write_csv_atomic, write_json_atomic
from .features import STEP_ORDER, Preprocessor, collect_videos, probe_manifest, steps_for

log = logging.getLogger("dfdetect.predict")
DEFAULT_THRESHOLD = 0.5
MAX_THUMBNAILS = 8


def _r(x: float | None, nd: int = 6):
    if x is None:
        return None
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def safe_name(video_id: str) -> str:
    """A file name for a video's outputs: path separators become ``__``, odd characters ``_``."""
    name = video_id.replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._~-]", "_", name) or "video"


def trained_detectors(models: Path, names: Sequence[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Detector folders of ``models`` (those with a ``config.json``), or ``names``; returns
    ``(names, skipped)`` with a reason for every requested one that cannot be used."""
    from ..detectors.base import registry  # noqa: PLC0415

    reg = registry()
    skipped: dict[str, str] = {}
    if names:
        found = []
        for n in names:
            if n not in reg:
                skipped[n] = f"unknown detector; registered: {', '.join(sorted(reg))}"
            elif not (models / n / "config.json").is_file():
                skipped[n] = f"not trained: {models / n / 'config.json'} not found"
            else:
                found.append(n)
        return found, skipped
    found = []
    for d in sorted(p for p in models.iterdir() if p.is_dir()) if models.is_dir() else []:
        if not (d / "config.json").is_file():
            continue
        try:
            cfg = json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            cfg = {}
        name = str(cfg.get("detector", d.name))
        if d.name not in reg:
            if name in reg:
                skipped[d.name] = f"holds a {name} model under another name"
            continue   # branch models (dada_text, dada_audio), saab, mst: not detectors
        found.append(d.name)
    return found, skipped


def threshold_of(metrics_dir: Path, name: str) -> tuple[float, str]:
    """The decision threshold evaluate used (``metrics/<name>.json`` test video level), else 0.5."""
    path = Path(metrics_dir) / f"{name}.json"
    try:
        value = json.loads(path.read_text())["test"]["video"]["threshold"]
        if value is not None and math.isfinite(float(value)):
            return float(value), f"evaluate ({path})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return DEFAULT_THRESHOLD, f"default {DEFAULT_THRESHOLD} ({path} has no test video threshold)"


def _versions() -> dict:
    from importlib import metadata  # noqa: PLC0415

    out = {}
    for pkg in ("dfdetect", "torch", "timm", "xgboost", "numpy", "opencv-python-headless", "dlib",
                "openai-whisper", "av"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass
class LoadedDetector:
    name: str
    detector: Any
    level: str
    inputs: tuple[str, ...]
    threshold: float
    threshold_source: str
    info: dict


@dataclass
class PredictResult:
    videos: int = 0
    scored: int = 0
    failed: int = 0
    seconds: float = 0.0
    reports: list[Path] = field(default_factory=list)
    html: Path | None = None
    failures: Path | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def videos_per_s(self) -> float:
        return self.videos / self.seconds if self.seconds > 0 else float("nan")


def load_detectors(models: Path, names: list[str], metrics_dir: Path) -> tuple[list[LoadedDetector], dict]:
    from ..detectors.base import get  # noqa: PLC0415

    out, skipped = [], {}
    for name in names:
        cls = get(name)
        try:
            det = cls.load(models / name)
        except Exception as err:  # noqa: BLE001 - reported, the other detectors go on
            skipped[name] = f"cannot load {models / name}: {type(err).__name__}: {err}"
            continue
        thr, src = threshold_of(metrics_dir, name)
        cfg = json.loads((models / name / "config.json").read_text())
        weights = sorted(p.name for p in (models / name).iterdir() if p.is_file())
        info = {"init": det.init_info(), "params": cfg.get("params", {}),
                "parameters": det.num_parameters().get("total"), "files": weights,
                "config_sha256": hashlib.sha256((models / name / "config.json").read_bytes()).hexdigest()[:16]}
        out.append(LoadedDetector(name, det, cls.level, tuple(cls.inputs), thr, src, info))
    return out, skipped


def predict(paths: Sequence[str | Path], models: str | Path = "models", out: str | Path = "predictions",
            detectors: Sequence[str] | None = None, params: Mapping | None = None,
            metrics_dir: str | Path | None = None, dag_root: str | Path | None = None,
            chunk_size: int = 16, executor: str | None = None, workers: int | None = None,
            progress: bool = True, fusion: bool = True, echo=None) -> PredictResult:
    """Score ``paths`` (video files or folders); see the module docstring. ``params`` is the
    whole params.yaml (``models/../params.yaml`` when None); ``metrics_dir`` and ``dag_root``
    (for the fusion weights) default to ``models/../metrics`` and ``models/..``."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    from ..config import load_params  # noqa: PLC0415
    from . import fusion as fusion_mod  # noqa: PLC0415
    from .render import HtmlPage, timeline_png  # noqa: PLC0415

    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.perf_counter()
    models = Path(models)
    out = Path(out)
    root = Path(dag_root) if dag_root is not None else models.parent
    metrics_dir = Path(metrics_dir) if metrics_dir is not None else root / "metrics"
    if params is None:
        if not (root / "params.yaml").is_file():
            raise ValueError(f"{root / 'params.yaml'} not found: the DAG's params decide the features")
        params = load_params(root / "params.yaml")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    exec_cfg = dict(params.get("executor") or {})
    executor = executor or str(exec_cfg.get("backend", "process"))
    workers = workers if workers is not None else exec_cfg.get("workers")
    from ..parallel import EXECUTOR  # noqa: PLC0415

    EXECUTOR.validate({"backend": executor, "workers": workers}, "executor")   # ParamError: a ValueError
    seed = int(params.get("seed", 0))
    aggregate = str((params.get("evaluate") or {}).get("aggregate", "mean"))

    names, skipped = trained_detectors(models, detectors)
    loaded, load_skipped = load_detectors(models, names, metrics_dir)
    skipped.update(load_skipped)
    usable = []
    for d in loaded:
        try:
            steps_for(d.inputs)
        except KeyError as err:
            skipped[d.name] = f"input {err} cannot be made from a video by predict"
            continue
        usable.append(d)
    steps = sorted({s for d in usable for s in steps_for(d.inputs)}, key=STEP_ORDER.index)
    pre = Preprocessor(params, models, steps, executor=executor, workers=workers)
    scoring = []
    for d in usable:
        why = pre.blocked(d.inputs)
        if why:
            skipped[d.name] = why
        else:
            scoring.append(d)
    for name, why in sorted(skipped.items()):
        echo(f"predict: detector {name} skipped: {why}")
    if not scoring:
        raise ValueError(f"no usable trained detector in {models} "
                         f"({'; '.join(f'{k}: {v}' for k, v in sorted(skipped.items())) or 'none found'})")

    fusions = {}
    if fusion:
        fusions = fusion_mod.fit_all(scoring, root, params, seed=seed, aggregate=aggregate)
    run_info = {"detectors": {d.name: {**d.info, "level": d.level, "inputs": list(d.inputs),
                                       "threshold": d.threshold, "threshold_source": d.threshold_source}
                              for d in scoring},
                "skipped_detectors": dict(sorted(skipped.items())), "preprocessing": pre.versions,
                "fusion": {k: v.describe() for k, v in fusions.items()}, "versions": _versions(),
                "params": {k: params.get(k) for k in ("seed", "sample_frames", "align_faces", "saab",
                                                      "hyperspectral", "extract_audio", "transcribe",
                                                      "evaluate") if k in params}}

    run_fail = Failures("predict")
    videos = collect_videos(paths, run_fail)
    for row in run_fail.rows:
        echo(f"predict: {row['path']}: {row['reason']}")
    out.mkdir(parents=True, exist_ok=True)
    result = PredictResult(skipped=dict(skipped))
    page = HtmlPage(out / "index.html", run_info)
    all_failures: list[dict] = list(run_fail.rows)
    bar = tqdm(total=len(videos), desc="predict", unit="video", disable=not progress,
               dynamic_ncols=True, mininterval=0.5)

    def say(msg: str) -> None:   # a line above the progress bar
        with tqdm.external_write_mode(file=sys.stderr):
            echo(msg)
    try:
        for start in range(0, len(videos), int(chunk_size)):
            chunk = videos[start:start + int(chunk_size)]
            fails = Failures("predict")
            manifest = probe_manifest(chunk, fails, executor=executor, workers=workers)
            with tempfile.TemporaryDirectory(prefix="dfdetect-predict-") as tmp:
                sources = pre.run(manifest, Path(tmp), fails) if len(manifest) else {}
                scores = _score_chunk(scoring, manifest, sources, seed, fails)
                fusion_scores = {k: f.apply(scores, manifest) for k, f in fusions.items()}
                # stage tables name the temporary shard; the report names the video file
                path_of = {vid: str(path) for vid, path in chunk}
                for row in fails.rows:
                    row["path"] = path_of.get(str(row["video_id"]), row["path"])
                by_video = _failures_by_video(fails.rows)
                for vid, path in chunk:
                    row = manifest[manifest["video_id"] == vid]
                    report = _video_report(vid, path, row, scoring, scores, fusion_scores, fusions,
                                           by_video.get(vid, []), sources, aggregate, run_info)
                    stem = safe_name(vid)
                    png = out / f"{stem}.timeline.png"
                    if report["status"] != "failed":
                        timeline_png(report, png)
                        report["timeline"] = png.name
                    thumbs = _thumbnails(sources, vid, report)
                    write_json_atomic(out / f"{stem}.json", report)
                    result.reports.append(out / f"{stem}.json")
                    page.add_video(report, png if report["status"] != "failed" else None, thumbs)
                    result.videos += 1
                    if report["status"] == "failed":
                        result.failed += 1
                        reasons = "; ".join(f["reason"] for f in report["failures"]) or "not scored"
                        say(f"predict: {path}: FAILED: {reasons}")
                    else:
                        result.scored += 1
                    bar.update(1)
            all_failures.extend(fails.rows)
    finally:
        bar.close()
    result.seconds = time.perf_counter() - t0
    result.html = page.close()
    write_json_atomic(out / "run.json", {**run_info, "videos": result.videos, "scored": result.scored,
                                         "failed": result.failed})
    cols = ["video_id", "stage", "frame_index", "path", "reason"]
    fdf = pd.DataFrame(all_failures, columns=cols).sort_values(cols[:4] + ["reason"], kind="stable")
    result.failures = out / "failures.csv"
    write_csv_atomic(result.failures, fdf)
    echo(f"predict: {result.videos} videos ({result.scored} scored, {result.failed} failed) with "
         f"{len(scoring)} detectors in {result.seconds:.1f} s ({result.videos_per_s:.2f} videos/s) "
         f"-> {out}")
    return result


def _score_chunk(detectors: list[LoadedDetector], manifest: pd.DataFrame, sources: dict,
                 seed: int, fails: Failures) -> dict[str, pd.DataFrame | str]:
    """Score table per detector, or the reason it could not score this chunk."""
    from ..detectors.base import DetectorData, check_scores  # noqa: PLC0415

    out: dict[str, pd.DataFrame | str] = {}
    for d in detectors:
        if manifest.empty:
            out[d.name] = pd.DataFrame(columns=["video_id", "frame_index", "score"])
            continue
        missing = [n for n in d.inputs if not _exists(sources.get(n))]
        if missing:
            out[d.name] = pd.DataFrame(columns=["video_id", "frame_index", "score"])
            continue
        data = DetectorData(manifest, sources={n: sources[n] for n in d.inputs}, seed=seed, progress=False)
        try:
            sc = check_scores(d.detector.score(data, "test"), d.name)
        except Exception as err:  # noqa: BLE001 - recorded for the chunk's videos; the run goes on
            reason = f"{d.name} failed to score: {type(err).__name__}: {err}"
            for vid in manifest["video_id"]:
                fails.rows.append({"video_id": vid, "stage": "predict", "frame_index": -1, "path": "",
                                   "reason": reason})
            out[d.name] = reason
            continue
        out[d.name] = sc[["video_id", "frame_index", "score"]].astype({"frame_index": np.int64, "score": float})
    return out


def _exists(path) -> bool:
    if path is None:
        return False
    p = Path(path)
    return p.is_file() or (p.is_dir() and any(p.glob("shard-*.h5")))


def _failures_by_video(rows) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(str(r["video_id"]), []).append(
            {"stage": str(r["stage"]), "frame_index": int(r["frame_index"]), "reason": str(r["reason"])})
    return out


def _store_items(sources: dict, name: str, vid: str) -> np.ndarray:
    p = sources.get(name)
    if not _exists(p):
        return np.zeros(0, dtype=np.int64)
    store = Store(p)
    try:
        return store.frame_indices(vid) if vid in set(store.videos()) else np.zeros(0, dtype=np.int64)
    finally:
        store.close()


def _transcript(sources: dict, vid: str) -> dict | None:
    p = sources.get("transcripts")
    if p is None or not Path(p).is_file():
        return None
    for line in Path(p).read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            if obj.get("id") == vid:
                return {"text": obj.get("text", ""), "language": obj.get("language"),
                        "duration": obj.get("duration"),
                        "segments": [{"start": s.get("start"), "end": s.get("end"), "text": s.get("text")}
                                     for s in obj.get("segments") or []]}
    return None


def _video_report(vid: str, path: Path, row: pd.DataFrame, detectors: list[LoadedDetector],
                  scores: dict, fusion_scores: dict, fusions: dict, failures: list[dict],
                  sources: dict, aggregate: str, run_info: dict) -> dict:
    from ..metrics import aggregate_videos  # noqa: PLC0415

    report: dict[str, Any] = {"video_id": vid, "path": str(path)}
    if row.empty:
        report.update(status="failed", failures=failures, detectors={},
                      models={k: {"init": v["init"]} for k, v in run_info["detectors"].items()})
        return report
    r = row.iloc[0]
    fps = float(r["fps"])
    report["video"] = {"fps": _r(fps), "frames": int(r["frames"]), "duration_s": _r(r["duration"]),
                       "width": int(r["width"]), "height": int(r["height"]), "has_audio": bool(r["has_audio"])}
    sampled = _store_items(sources, "frames", vid)
    faces = _store_items(sources, "faces", vid)
    report["frames_sampled"] = [int(i) for i in sampled]
    report["faces_found"] = int(len(faces))
    report["frames_without_face"] = sorted(int(i) for i in set(sampled.tolist()) - set(faces.tolist()))
    dets: dict[str, Any] = {}
    for d in detectors:
        entry: dict[str, Any] = {"level": d.level, "threshold": _r(d.threshold),
                                 "threshold_source": d.threshold_source}
        sc = scores.get(d.name)
        if isinstance(sc, str):
            entry.update(status="failed", reason=sc)
        else:
            mine = sc[sc["video_id"] == vid].sort_values("frame_index", kind="stable")
            if mine.empty:
                entry.update(status="no score", reason=_no_score_reason(d, report, failures))
            else:
                video_score = float(aggregate_videos(mine, aggregate)["score"].iloc[0])
                entry.update(status="scored", video_score=_r(video_score),
                             aggregate=aggregate if (mine["frame_index"] >= 0).any() else "none",
                             # decided on the rounded numbers the report shows, so it agrees with them
                             verdict="fake" if _r(video_score) >= _r(d.threshold) else "real")
                frames = mine[mine["frame_index"] >= 0]
                entry["frame_scores"] = [{"frame_index": int(fi), "time_s": _r(fi / fps if fps > 0 else 0.0, 4),
                                          "score": _r(s)} for fi, s in zip(frames["frame_index"], frames["score"])]
        dets[d.name] = entry
    report["detectors"] = dets
    report["skipped_detectors"] = run_info["skipped_detectors"]
    transcript = _transcript(sources, vid)
    if transcript is not None or any(d.inputs and "audio" in d.inputs for d in detectors):
        report["audio"] = {"transcript": transcript}
    fus = {}
    for name, f in fusions.items():
        fus[name] = f.report_entry(fusion_scores.get(name, {}).get(vid))
    if fus:
        report["fusion"] = fus
    report["failures"] = failures
    report["models"] = {k: {"init": v["init"], "config_sha256": v["config_sha256"]}
                        for k, v in run_info["detectors"].items()}
    report["preprocessing"] = run_info["preprocessing"]
    report["versions"] = run_info["versions"]
    report["status"] = "scored" if any(e.get("status") == "scored" for e in dets.values()) else "failed"
    return report


def _no_score_reason(d: LoadedDetector, report: dict, failures: list[dict]) -> str:
    if "audio" in d.inputs:
        audio = [f["reason"] for f in failures if f["stage"] in ("extract_audio", "transcribe")]
        if not report["video"]["has_audio"]:
            return "no audio track"
        return "no usable audio: " + "; ".join(audio) if audio else "no usable audio"
    if report["faces_found"] == 0:
        return f"no face found in the {len(report['frames_sampled'])} sampled frames"
    stage = {"saab": "saab_features", "hsi": "hyperspectral"}
    mine = [f["reason"] for f in failures if f["stage"] in {stage.get(i) for i in d.inputs}]
    return "; ".join(mine) if mine else "the detector returned no score for this video"


def _thumbnails(sources: dict, vid: str, report: dict) -> list[tuple[int, bytes, dict]]:
    """Up to MAX_THUMBNAILS aligned faces (PNG bytes, 72 px) with each frame detector's score."""
    import cv2  # noqa: PLC0415

    p = sources.get("faces")
    if report.get("status") == "failed" or not _exists(p):
        return []
    store = Store(p)
    try:
        if vid not in set(store.videos()):
            return []
        frames = store.frame_indices(vid)
        pick = np.unique(np.round(np.linspace(0, len(frames) - 1, min(MAX_THUMBNAILS, len(frames)))).astype(int))
        faces = store.read(vid, "face")
    finally:
        store.close()
    per_frame: dict[int, dict] = {}
    for name, e in report["detectors"].items():
        for fs in e.get("frame_scores", []):
            per_frame.setdefault(fs["frame_index"], {})[name] = fs["score"]
    out = []
    for k in pick:
        img = cv2.resize(faces[k], (72, 72), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if ok:
            out.append((int(frames[k]), buf.tobytes(), per_frame.get(int(frames[k]), {})))
    return out
