"""Audio extraction: any audio or video file -> 16 kHz mono float32, with clear failure reasons.

Decoding is done by the ffmpeg program (``ffmpeg -nostdin -loglevel error -i FILE -vn -ac 1
-ar 16000 -f f32le -``), so every container and codec ffmpeg knows works (wav, flac, mp3, m4a,
mp4, mkv, ...). A file that is missing, has no audio track, cannot be decoded (corrupt), decodes
to nothing (empty), is shorter than ``min_seconds``, whose RMS is below ``min_rms`` (silent) or
that holds less than ``min_speech_seconds`` of speech by the speech-activity detector of
:mod:`dfdetect.audio.vad` ("no speech": noise above the RMS floor, a hum, a steady tone)
raises :class:`~dfdetect.failures.ItemError` with a reason naming the problem; the shard
function records it in the failures table and goes on.

``extract_shard`` writes one HDF5 shard (:class:`~dfdetect.store.ShardWriter`): per item
``frame_indices=[0]`` and field ``wave`` float32 ``(1, T)``, attrs ``sample_rate``,
``duration``, ``rms``, ``speech_seconds`` (VAD), ``source`` ("audio" | "video"), ``truncated``.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..failures import Failures, ItemError, failed_items
from ..parallel import EXECUTOR
from ..resume import ResumableShard, file_identity
from ..store import COMPRESSION, ShardWriter

log = logging.getLogger("dfdetect")
STAGE = "extract_audio"
DEFAULTS = {"sample_rate": 16000, "min_rms": 1e-4, "min_seconds": 0.1, "max_seconds": 60.0,
            "timeout": 300, "min_speech_seconds": 0.2}

# params schema of the ``extract_audio`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "sample_rate": _cfg.Int(ge=1000, le=384000),
    "min_rms": _cfg.Float(ge=0),
    "min_seconds": _cfg.Float(ge=0),
    "max_seconds": _cfg.Float(ge=0),        # 0: keep all
    "timeout": _cfg.Float(gt=0),
    "min_speech_seconds": _cfg.Float(ge=0),  # 0: no speech-activity check
    "compression": COMPRESSION,
    "executor": EXECUTOR,
})


def decode_audio(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None,
                 timeout: float = 300) -> np.ndarray:
    """Mono float32 samples of the first audio stream of ``path`` at ``sample_rate`` Hz."""
    path = str(path)
    if not os.path.exists(path):
        raise ItemError("missing: file not found", path=path)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ItemError("empty file: 0 bytes", path=path)
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-vn", "-map", "0:a:0?",
           "-ac", "1", "-ar", str(int(sample_rate))]
    if max_seconds:
        cmd += ["-t", f"{float(max_seconds):.6f}"]
    cmd += ["-f", "f32le", "-"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                              check=False)
    except FileNotFoundError as err:
        raise RuntimeError("the ffmpeg program is not installed (apt install ffmpeg)") from err
    except subprocess.TimeoutExpired as err:
        raise ItemError(f"corrupt audio: ffmpeg did not finish within {timeout} s", path=path) from err
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        last = err.splitlines()[-1] if err else f"exit status {proc.returncode}"
        if "does not contain any stream" in err or "matches no streams" in err:
            raise ItemError("no audio track", path=path)
        raise ItemError(f"corrupt audio: ffmpeg cannot decode it ({last})", path=path)
    wave = np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)
    if wave.size == 0:
        if err and ("does not contain any stream" in err or "matches no streams" in err):
            raise ItemError("no audio track", path=path)
        reason = "no audio track or 0 samples decoded" if not err else f"0 samples decoded ({err.splitlines()[-1]})"
        raise ItemError(f"empty audio: {reason}", path=path)
    if not np.all(np.isfinite(wave)):
        raise ItemError("corrupt audio: decoded samples are not finite", path=path)
    return wave


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0


def check_audio(wave: np.ndarray, sample_rate: int, min_rms: float, min_seconds: float,
                path: str | None = None, min_speech_seconds: float = 0.0) -> tuple[float, float | None]:
    """``(RMS, seconds of speech)`` of ``wave`` (speech None when ``min_speech_seconds`` is 0);
    :class:`ItemError` when it is too short, silent, or holds no speech."""
    duration = wave.size / sample_rate
    if duration < min_seconds:
        raise ItemError(f"empty audio: {duration:.3f} s is shorter than min_seconds {min_seconds}",
                        path=path)
    level = rms(wave)
    if level < min_rms:
        raise ItemError(f"silent audio: RMS {level:.2e} is below min_rms {min_rms:g}", path=path)
    if not min_speech_seconds:
        return level, None
    from .vad import speech_seconds  # noqa: PLC0415

    speech = speech_seconds(wave, sample_rate)
    if speech < min_speech_seconds:
        raise ItemError(f"no speech: {speech:.2f} s of speech activity (VAD) in {duration:.2f} s, "
                        f"RMS {level:.2e}; below min_speech_seconds {min_speech_seconds:g}", path=path)
    return level, speech


def extract_item(path: str | Path, params: Mapping | None = None) -> dict:
    """``{"wave": float32 (1, T), "attrs": {...}}`` of one file (see the module docstring)."""
    p = {**DEFAULTS, **dict(params or {})}
    sr = int(p["sample_rate"])
    max_seconds = float(p["max_seconds"] or 0)
    # decode 10 ms beyond the limit so that a truncation is detected
    limit = max_seconds + 0.01 if max_seconds > 0 else None
    wave = decode_audio(path, sr, limit, float(p["timeout"]))
    truncated = bool(max_seconds > 0 and wave.size > int(round(max_seconds * sr)))
    if truncated:
        wave = wave[: int(round(max_seconds * sr))]
    level, speech = check_audio(wave, sr, float(p["min_rms"]), float(p["min_seconds"]), str(path),
                                float(p["min_speech_seconds"] or 0))
    attrs = {"sample_rate": sr, "duration": wave.size / sr, "rms": level, "truncated": truncated}
    if speech is not None:
        attrs["speech_seconds"] = round(speech, 2)
    return {"wave": wave[None, :], "attrs": attrs}


def _work(item: tuple[str, str, str], params: Mapping) -> dict:
    _vid, path, _source = item
    return extract_item(path, params)


def shard_items(audio_manifest: pd.DataFrame | None, video_manifest: pd.DataFrame | None,
                failures: Failures) -> list[tuple[str, str, str]]:
    """``(id, path, source)`` of a shard: every audio-manifest row, then every video-manifest
    row with ``has_audio`` whose id the audio manifest does not already use (a clash is a
    failure row: ids are the store's keys)."""
    items: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    if audio_manifest is not None:
        for vid, path in zip(audio_manifest["video_id"], audio_manifest["path"]):
            items.append((str(vid), str(path or vid), "audio"))
            seen.add(str(vid))
    if video_manifest is not None and len(video_manifest):
        has = video_manifest["has_audio"].astype(bool)
        for vid, path in zip(video_manifest.loc[has, "video_id"], video_manifest.loc[has, "path"]):
            if str(vid) in seen:
                failures.add(str(vid), "video id also used by the audio manifest; the audio "
                             "dataset's item is kept", path=str(path))
                continue
            items.append((str(vid), str(path or vid), "video"))
            seen.add(str(vid))
    return items


def extract_shard(audio_manifest, video_manifest, out_path: str | Path,
                  failures_path: str | Path, params: Mapping, executor: str = "process",
                  workers: int | None = None, progress: bool = True) -> Failures:
    """Extract every item of an audio-manifest shard and the audio tracks of a video-manifest
    shard (DataFrames or CSV paths; either may be None or a missing path) into one HDF5 shard."""
    from ..data.manifest import read_manifest  # noqa: PLC0415

    def load(m):
        if m is None:
            return None
        if isinstance(m, (str, os.PathLike)):
            return read_manifest(m) if Path(m).is_file() else None
        return m

    params = {**DEFAULTS, **{k: v for k, v in dict(params).items() if k not in ("sharding", "seed")}}
    failures = Failures(STAGE)
    items = shard_items(load(audio_manifest), load(video_manifest), failures)
    failures.items = len(items) + len(failed_items(failures.rows))   # + the items left out above
    compression = params.get("compression")
    compression = {"wave": compression} if compression not in (None, "none", "") else None
    fn = functools.partial(_work, params={k: params[k] for k in DEFAULTS})
    # an interrupted run's finished items are reused (dfdetect.resume): records keyed by these
    # params and each item's id, source, path, size and mtime
    with ResumableShard(out_path, STAGE, params) as rs:
        with ShardWriter(out_path, stage=STAGE, params=params, compression=compression) as writer:
            key = lambda it: [it[0], it[2], *file_identity(it[1])]  # noqa: E731
            for (vid, path, source), result, error in rs.imap(
                    fn, items, key=key, executor=executor, workers=workers,
                    desc=f"{STAGE} {Path(out_path).name}", progress=progress):
                if error is not None:
                    failures.add_error(vid, error, path=path)
                    continue
                if result["attrs"]["truncated"]:
                    failures.add(vid, f"partial: truncated to max_seconds {params['max_seconds']}",
                                 path=path, warn=False)
                writer.add_video(vid, [0], attrs={**result["attrs"], "source": source},
                                 wave=result["wave"])
        failures.write(failures_path)
    return failures
