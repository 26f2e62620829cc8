"""H.264 encoding with the ffmpeg program (libx264), byte-reproducible.

Quality levels follow FaceForensics++: ``c23`` and ``c40`` are x264 constant rate factors 23
and 40 (``raw``/``c0`` = CRF 0, lossless). One x264 thread and ffmpeg's bitexact flags (no
encoder version strings in the container, no creation time, no metadata) make the same frames
give the same bytes. Audio is AAC (ffmpeg's native encoder), mono 16 kHz, 48 kb/s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np


def crf_of(quality: str) -> int:
    q = str(quality).lower()
    if q in ("raw", "c0"):
        return 0
    m = re.fullmatch(r"c(\d+)", q)
    if not m or not 0 <= int(m.group(1)) <= 51:
        raise ValueError(f"quality {quality!r}: expected cNN with 0 <= NN <= 51 (x264 CRF) or raw")
    return int(m.group(1))


def encode_video(frames: np.ndarray, fps: float, quality: str, out: str | Path,
                 audio_wav: str | Path | None = None, preset: str = "medium") -> Path:
    """Encode RGB ``frames`` (n, h, w, 3) uint8 to an H.264 MP4 (yuv420p) at ``quality``."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("the ffmpeg program is needed (apt-get install ffmpeg)")
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {w}x{h}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-fflags", "+bitexact",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "-"]
    if audio_wav:
        cmd += ["-i", str(audio_wav), "-map", "0:v:0", "-map", "1:a:0",
                "-c:a", "aac", "-b:a", "48k", "-ac", "1", "-flags:a", "+bitexact"]
    cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf_of(quality)),
            "-pix_fmt", "yuv420p", "-threads", "1", "-x264-params", "threads=1:sliced-threads=0",
            "-flags:v", "+bitexact", "-map_metadata", "-1", "-map_chapters", "-1",
            "-t", f"{n / float(fps):.6f}", "-movflags", "+faststart", "-f", "mp4", str(out)]
    run = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if run.returncode != 0:
        raise RuntimeError(f"ffmpeg failed for {out}: {run.stderr.decode(errors='replace')[-400:]}")
    return out


def probe(path: str | Path) -> dict:
    """Streams of a media file (ffprobe): {"video": {...}, "audio": {...}} (missing = absent)."""
    import json  # noqa: PLC0415

    run = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"ffprobe failed for {path}: {run.stderr.strip()[:200]}")
    out: dict = {}
    for s in json.loads(run.stdout).get("streams", []):
        out.setdefault(s.get("codec_type", "other"), s)
    return out
