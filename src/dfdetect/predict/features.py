"""The DAG's preprocessing, run on new videos into a temporary work directory.

For a chunk of videos (a manifest built by ingest's own probing), the library function of
each preprocessing stage writes one shard into ``workdir`` exactly as the stage would into
``data/``: ``sample_shard`` (frames), ``run_align_faces`` (faces), ``transform_shard`` with
the fitted Saab transforms of ``models/saab`` (saab), ``reconstruct_shard`` with the MST++
weights of ``models/mst`` (hsi), ``extract_shard`` (audio) and Whisper (transcripts, the
``transcribe`` stage's JSONL records). Only what the chosen detectors declare in ``inputs`` is
made. A scored video therefore gets the same features the DAG would give it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..failures import Failures, ItemError
from ..store import Store, shard_path, write_text_atomic

log = logging.getLogger("dfdetect.predict")

# detector input -> the preprocessing steps it needs (in run order)
NEEDS = {
    "frames": ("frames",),
    "faces": ("frames", "faces"),
    "saab": ("frames", "faces", "saab"),
    "hsi": ("frames", "faces", "hsi"),
    "face_emb": ("frames", "faces", "face_emb"),
    "audio": ("audio",),
    "transcripts": ("audio", "transcripts"),
    "manifest": (),
}
STEP_ORDER = ("frames", "faces", "saab", "hsi", "face_emb", "audio", "transcripts")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def steps_for(inputs) -> list[str]:
    """The preprocessing steps that make ``inputs`` (unknown inputs raise KeyError)."""
    need = set()
    for name in inputs:
        if name not in NEEDS:
            raise KeyError(name)
        need.update(NEEDS[name])
    return [s for s in STEP_ORDER if s in need]


def _sha16(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass
class Preprocessor:
    """Loads the fitted transforms once, then preprocesses chunk after chunk.

    ``params`` is the whole params.yaml; ``models`` the trained models folder. ``unavailable``
    maps a step that cannot run (no Saab transforms, no MST++ weights, no Whisper) to why.
    """

    params: Mapping[str, Any]
    models: Path
    steps: list[str]
    executor: str = "process"
    workers: int | None = None
    device: str = "auto"
    unavailable: dict[str, str] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.models = Path(self.models)
        self._saab = None
        self._mst = None
        self._engine = None
        if "saab" in self.steps:
            self._load_saab()
        if "hsi" in self.steps:
            self._load_mst()
        if "face_emb" in self.steps:
            self._check_embedder()
        if "transcripts" in self.steps:
            self._load_whisper()

    def section(self, name: str) -> dict:
        from ..config import section  # noqa: PLC0415

        return section(dict(self.params), name)

    # ------------------------------------------------------------------ fitted transforms
    def _load_saab(self) -> None:
        from ..saab import features as F  # noqa: PLC0415

        cfg = self.section("saab")
        regions = list(cfg.get("regions", F.PATCH_REGIONS))
        folder = self.models / "saab"
        try:
            self._saab = F.load_models(folder, regions)
        except (OSError, ValueError, KeyError) as err:
            self.unavailable["saab"] = (f"no fitted Saab transforms in {folder} ({type(err).__name__}: "
                                        f"{err}); run the saab_features stage")
            return
        self.versions["saab"] = {"folder": str(folder), "regions": regions,
                                 "sha256": {r: _sha16(folder / f"{r}.npz") for r in regions}}

    def _check_embedder(self) -> None:
        """The face_embeddings section's embedder (dlib's offline, or FaceNet from a local file)
        must be loadable before any chunk runs; its identity goes into ``versions``."""
        from ..faceid.embed import EmbedConfig, embedder_info  # noqa: PLC0415

        try:
            self.versions["face_emb"] = embedder_info(EmbedConfig.from_params(self.section("face_embeddings")))
        except (OSError, ValueError, KeyError) as err:
            self.unavailable["face_emb"] = f"face_embeddings: {type(err).__name__}: {err}"

    def _resolve_device(self, device: str) -> str:
        if device != "auto":
            return device
        import torch  # noqa: PLC0415

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _load_mst(self) -> None:
        cfg = self.section("hyperspectral")
        variant = str(cfg.get("variant", "flexi"))
        from ..spectral.reconstruct import resolve_checkpoint  # noqa: PLC0415

        ckpt_param = str(cfg.get("checkpoint") or "")
        if ckpt_param and not Path(ckpt_param).is_absolute():
            ckpt_param = str(self.models.parent / ckpt_param)   # relative to the project, as in dvc.yaml
        if ckpt_param and not Path(ckpt_param).exists():
            # a models folder copied without the project's (README-only) data/mst_checkpoint: the DAG
            # that trained the detectors had no checkpoint there either, so its MST++ is models/mst
            absent = f"{ckpt_param} absent: the DAG's trained MST++ (models/mst)"
            ckpt_param = ""
        else:
            absent = ""
        try:    # as the hyperspectral stage: a file, a folder holding one, or the README-only placeholder
            ckpt = resolve_checkpoint(ckpt_param)
        except (FileNotFoundError, ValueError) as err:
            self.unavailable["hsi"] = f"hyperspectral.checkpoint: {err}"
            return
        weights = ckpt if ckpt is not None else self.models / "mst" / f"mst_{variant}.pt"
        if not weights.is_file():
            self.unavailable["hsi"] = (f"no MST++ weights at {weights}; run the train_mst stage "
                                       "(or set hyperspectral.checkpoint)")
            return
        from ..spectral import mst  # noqa: PLC0415

        try:
            model = (mst.load_official_checkpoint(ckpt, attention=variant) if ckpt
                     else mst.load_weights(weights))
        except Exception as err:  # noqa: BLE001 - reported as the reason the detectors skip
            self.unavailable["hsi"] = f"cannot load MST++ weights {weights}: {type(err).__name__}: {err}"
            return
        self._mst = model
        self._mst_info = {"variant": variant, "weights": str(weights), "sha256": _sha16(weights),
                          "parameters": mst.count_parameters(model)}
        if absent:
            self._mst_info["checkpoint"] = absent
        self.versions["mst"] = dict(self._mst_info)

    def _load_whisper(self) -> None:
        from ..audio.transcribe import ENGINE_KEYS  # noqa: PLC0415
        from ..audio.whisper_engine import load_engine  # noqa: PLC0415

        cfg = self.section("transcribe")
        try:
            self._engine = load_engine(**{k: cfg[k] for k in ENGINE_KEYS if k in cfg})
        except Exception as err:  # noqa: BLE001
            self.unavailable["transcripts"] = (f"cannot load the Whisper engine {cfg.get('engine')!r} "
                                               f"model {cfg.get('model')!r}: {type(err).__name__}: {err}")
            return
        self.versions["whisper"] = {"engine": self._engine.name, "model": self._engine.model_label}

    def blocked(self, inputs) -> str | None:
        """Why ``inputs`` cannot be made (None when they can)."""
        for step in steps_for(inputs):
            if step in self.unavailable:
                return self.unavailable[step]
        return None

    # ------------------------------------------------------------------ one chunk
    def run(self, manifest: pd.DataFrame, workdir: Path, failures: Failures) -> dict[str, Path]:
        """Preprocess every video of ``manifest`` into ``workdir``; returns the detector sources
        (input name -> path). Per-video problems land in ``failures`` (stage column)."""
        from ..data.manifest import write_manifest  # noqa: PLC0415

        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        fail_dir = workdir / "failures"
        sources: dict[str, Path] = {"manifest": workdir / "manifest.csv"}
        write_manifest(manifest, sources["manifest"])
        ex = {"executor": self.executor, "workers": self.workers}
        steps = [s for s in self.steps if s not in self.unavailable]

        def collect(path: Path) -> None:
            if path.is_file():
                failures.rows.extend(pd.read_csv(path, keep_default_na=False).to_dict("records"))

        if "frames" in steps:
            from ..video.sample import sample_shard  # noqa: PLC0415

            sources["frames"] = workdir / "frames"
            sample_shard(manifest, shard_path(sources["frames"], 0), fail_dir / "sample_frames.csv",
                         self.section("sample_frames"), progress=False, **ex)
            collect(fail_dir / "sample_frames.csv")
        if "faces" in steps:
            from ..faces.stage import run_align_faces  # noqa: PLC0415

            frames = shard_path(sources["frames"], 0)
            sources["faces"] = workdir / "faces"
            if frames.is_file():
                run_align_faces(frames, shard_path(sources["faces"], 0), fail_dir / "align_faces.csv",
                                self.section("align_faces"), progress=False, **ex)
                collect(fail_dir / "align_faces.csv")
        faces = shard_path(workdir / "faces", 0)
        if "saab" in steps:
            from ..saab import features as F  # noqa: PLC0415

            cfg = self.section("saab")
            sources["saab"] = workdir / "saab"
            if faces.is_file():
                fl = F.transform_shard(faces, shard_path(sources["saab"], 0), self.models / "saab",
                                       list(cfg.get("regions", F.PATCH_REGIONS)), stage_params=cfg,
                                       batch_frames=int(cfg.get("batch_frames", 2048)),
                                       compression=cfg.get("compression", "none"))
                failures.extend(fl)
        if "hsi" in steps:
            from ..spectral.reconstruct import reconstruct_shard  # noqa: PLC0415

            cfg = self.section("hyperspectral")
            sources["hsi"] = workdir / "hsi"
            if faces.is_file():
                fl = Failures("hyperspectral")
                reconstruct_shard(faces, shard_path(sources["hsi"], 0), self._mst,
                                  size=int(cfg.get("size", 64)), batch_size=int(cfg.get("batch_size", 8)),
                                  field=str(cfg.get("field", "face128")),
                                  device=self._resolve_device(str(cfg.get("device", self.device))),
                                  params=cfg, model_info=self._mst_info, codec=cfg.get("codec"),
                                  failures=fl, progress=False, engine=str(cfg.get("engine", "torch")),
                                  precision=str(cfg.get("precision", "fp32")))
                failures.extend(fl)
        if "face_emb" in steps:
            from ..faceid.embed import embed_shard  # noqa: PLC0415

            sources["face_emb"] = workdir / "face_emb"
            if faces.is_file():
                fl = Failures("face_embeddings")
                embed_shard(faces, shard_path(sources["face_emb"], 0), self.section("face_embeddings"),
                            failures=fl, progress=False, **ex)
                failures.extend(fl)
        if "audio" in steps:
            from ..audio.extract import extract_shard  # noqa: PLC0415

            cfg = {k: v for k, v in self.section("extract_audio").items() if k != "executor"}
            sources["audio"] = workdir / "audio"
            extract_shard(None, manifest, shard_path(sources["audio"], 0),
                          fail_dir / "extract_audio.csv", cfg, progress=False, **ex)
            collect(fail_dir / "extract_audio.csv")
        if "transcripts" in steps:
            sources["transcripts"] = workdir / "transcripts.jsonl"
            self._transcribe(sources["audio"], sources["transcripts"], failures)
        return sources

    def _transcribe(self, audio_dir: Path, out: Path, failures: Failures) -> None:
        """The transcribe stage's JSONL records for every item of ``audio_dir`` (the engine is
        loaded once per run, not once per chunk)."""
        from ..audio.transcribe import record  # noqa: PLC0415

        lines = []
        if shard_path(audio_dir, 0).is_file():
            store = Store(audio_dir)
            for item in sorted(store.videos()):
                try:
                    result = self._engine.transcribe(store.read(item, "wave")[0])
                except Exception as err:  # noqa: BLE001 - recorded, never fatal
                    failures.rows.append({"video_id": item, "stage": "transcribe", "frame_index": -1,
                                          "path": str(audio_dir),
                                          "reason": f"{type(err).__name__}: {err}"})
                    continue
                lines.append(json.dumps(record(item, result, self._engine.name, self._engine.model_label),
                                        ensure_ascii=True))
            store.close()
        write_text_atomic(out, "".join(line + "\n" for line in lines))


def collect_videos(paths, failures: Failures) -> list[tuple[str, Path]]:
    """``(video_id, path)`` of every video given: files as they are, folders searched
    recursively for video extensions (sorted). ``video_id`` is the file name for a file and
    ``<folder name>/<path inside it>`` for a folder; a repeated id gets ``~2``, ``~3``.
    Missing paths are failure rows."""
    out: list[tuple[str, Path]] = []
    seen: dict[str, int] = {}

    def add(vid: str, path: Path) -> None:
        n = seen.get(vid, 0) + 1
        seen[vid] = n
        out.append((vid if n == 1 else f"{vid}~{n}", path))

    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                failures.add(str(raw), f"folder has no video file ({', '.join(VIDEO_EXTENSIONS)})",
                             path=str(p), warn=False)
            base = p.resolve().name or "videos"
            for f in found:
                add(f"{base}/{f.relative_to(p).as_posix()}", f)
        elif p.exists():
            add(p.name, p)
        else:
            failures.add(str(raw), "file not found", path=str(p), warn=False)
    return out


def _probe(item: tuple[str, str]) -> dict:
    """Worker of the probe map (top level, so that process executors can pickle it)."""
    from ..data.probe import probe_video  # noqa: PLC0415

    return probe_video(item[1])


def probe_manifest(videos: list[tuple[str, Path]], failures: Failures, executor: str = "process",
                   workers: int | None = None) -> pd.DataFrame:
    """The manifest of ``videos`` (ingest's probing: fps, frames, size, audio), split ``test``.

    The label column is required by the manifest format; new videos have no label, so it is
    ``real`` for all and never read (scoring does not use it). Unreadable files are failures."""
    from ..data.ingest import PROBE_FIELDS  # noqa: PLC0415
    from ..data.manifest import empty_manifest, normalise  # noqa: PLC0415
    from ..parallel import imap  # noqa: PLC0415

    rows = []
    items = [(vid, str(path)) for vid, path in videos]
    for (vid, path), result, error in imap(_probe, items, executor=executor, workers=workers,
                                           desc="probe", progress=False):
        if error is not None:
            reason = error.reason if isinstance(error, ItemError) else f"{type(error).__name__}: {error}"
            failures.add(vid, reason, path=path, warn=False)   # predict prints its own line
            continue
        rows.append({"video_id": vid, "path": path, "dataset": "predict", "label": "real",
                     "split": "test", **{f: result[f] for f in PROBE_FIELDS}})
    return normalise(pd.DataFrame(rows)) if rows else empty_manifest()
