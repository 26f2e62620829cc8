"""Probe one video: fps, frame count, duration, size and whether it has an audio stream.

The streams are listed first, in process with PyAV (libav's demuxer: about 6 ms a file, where
spawning ``ffprobe`` costs 50 to 250 ms), or with ``ffprobe -of json`` when PyAV is absent:
this rejects unreadable or corrupt files with libav's own message, finds zero-frame and
video-less files, and tells whether there is audio. Video
properties then come from OpenCV (container header, no full decode) and frame 0 is decoded
once, so a file that opens but cannot be decoded is caught here and not three stages later.
``width``/``height`` are the displayed size: a phone video whose display matrix rotates it by
90 degrees (``rotation``, counter-clockwise degrees as ffprobe reports it) has them swapped with
respect to the coded size (:mod:`dfdetect.video.orientation`; OpenCV's auto-rotation is off).
Every expected problem (missing, empty, unreadable, corrupt, zero-frame file) raises
:class:`~dfdetect.failures.ItemError` with a reason, and ingest records it with the file's path
and goes on. Without PyAV and ffprobe, OpenCV alone is used and ``has_audio`` is False.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
from pathlib import Path

from ..failures import ItemError
from ..video.orientation import NONE, Orientation, from_matrix, parse_ffprobe_matrix, read_display_matrix

log = logging.getLogger("dfdetect")

FFPROBE_TIMEOUT_S = 30


def _cv2():
    import cv2  # noqa: PLC0415  (heavy import, only where probing happens)

    return cv2


def _av_streams(path: str | Path) -> list[dict] | None:
    try:
        import av  # noqa: PLC0415
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            streams = [{"index": st.index, "codec_type": st.type,
                        "codec_name": getattr(st.codec_context, "name", "") or "",
                        "nb_frames": str(int(st.frames or 0)) if st.frames else ""}
                       for st in container.streams]
            if container.streams.video:
                video = container.streams.video[0]
                matrix, _ = read_display_matrix(container, video)
                streams[video.index]["displaymatrix"] = matrix
            return streams
    except av.error.FFmpegError as err:
        detail = getattr(err, "strerror", None) or str(err)
        raise ItemError(f"unreadable or corrupt video (libav: {detail})", path=str(path)) from err


def list_streams(path: str | Path) -> list[dict] | None:
    """Streams (codec_type, codec_name, nb_frames) via PyAV, else ffprobe; None if neither."""
    streams = _av_streams(path)
    return streams if streams is not None else ffprobe_streams(path)


def ffprobe_streams(path: str | Path) -> list[dict] | None:
    """The streams ffprobe sees (codec_type, codec_name, nb_frames), or None without ffprobe.

    Raises ItemError with ffprobe's own message when it cannot read the file.
    """
    exe = shutil.which("ffprobe")
    if exe is None:
        return None
    cmd = [exe, "-v", "error", "-show_entries",
           "stream=index,codec_type,codec_name,nb_frames:stream_side_data=displaymatrix",
           "-of", "json", str(path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired as err:
        raise ItemError(f"ffprobe timed out after {FFPROBE_TIMEOUT_S} s", path=str(path)) from err
    if proc.returncode != 0:
        msg = [m for m in (proc.stderr or "").strip().splitlines() if m.strip()]
        detail = msg[-1].split(": ", 1)[-1] if msg else f"exit status {proc.returncode}"
        raise ItemError(f"unreadable or corrupt video (ffprobe: {detail})", path=str(path))
    try:
        streams = list(json.loads(proc.stdout or "{}").get("streams", []))
    except json.JSONDecodeError as err:
        raise ItemError(f"ffprobe returned invalid JSON: {err}", path=str(path)) from err
    for st in streams:
        for sd in st.pop("side_data_list", None) or []:
            if "displaymatrix" in sd:
                st["displaymatrix"] = parse_ffprobe_matrix(sd["displaymatrix"])
    return streams


def _orientation_from_angle(cw_degrees: float) -> Orientation:
    """OpenCV's CAP_PROP_ORIENTATION_META (clockwise degrees; no mirror information)."""
    k = int(round(float(cw_degrees or 0) / 90.0)) % 4
    return (NONE, Orientation(transpose=True, flip_cols=True), Orientation(flip_rows=True, flip_cols=True),
            Orientation(transpose=True, flip_rows=True))[k]


def has_audio_stream(path: str | Path) -> bool:
    """True when the file has an audio stream (False, with a warning, without PyAV/ffprobe)."""
    streams = list_streams(path)
    if streams is None:
        _warn_no_ffprobe()
        return False
    return any(s.get("codec_type") == "audio" for s in streams)


_warned: list[bool] = []


def _warn_no_ffprobe() -> None:
    if not _warned:
        log.warning("neither PyAV nor ffprobe is available: has_audio is False for every video")
        _warned.append(True)


def probe_video(path: str | Path, audio: bool = True) -> dict:
    """``{"fps", "frames", "duration", "width", "height", "rotation", "has_audio"}`` of one
    video file (``width``/``height`` as displayed, ``rotation`` from its display matrix).

    ``audio=False`` skips the stream listing (OpenCV only; ``has_audio`` is then False).
    """
    path = Path(path)
    if not path.exists():
        raise ItemError("file not found", path=str(path))
    if not path.is_file():
        raise ItemError("not a regular file", path=str(path))
    size = path.stat().st_size
    if size == 0:
        raise ItemError("empty file (0 bytes)", path=str(path))
    if not os.access(path, os.R_OK):
        raise ItemError("file is not readable (permission denied)", path=str(path))
    streams = list_streams(path) if audio else None
    if streams is not None:
        video = [st for st in streams if st.get("codec_type") == "video"]
        if not video:
            raise ItemError("no video stream in the file (zero-frame, empty or audio-only container)",
                            path=str(path))
        if all(str(st.get("nb_frames", "")) == "0" for st in video):
            raise ItemError("video has no frames (zero-frame file)", path=str(path))
    elif audio:
        _warn_no_ffprobe()
    orient = from_matrix(video[0].get("displaymatrix")) if streams is not None else None
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            codec = video[0].get("codec_name", "?") if streams is not None else "?"
            raise ItemError(f"cannot open video ({size} bytes, codec {codec}): corrupt file or "
                            "unsupported container", path=str(path))
        if orient is None:          # neither PyAV nor ffprobe: OpenCV's angle
            orient = _orientation_from_angle(cap.get(cv2.CAP_PROP_ORIENTATION_META))
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)       # coded sizes and pixels below
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        frames = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        ok, frame = cap.read()
        if not ok or frame is None:
            if frames <= 0:
                raise ItemError("video has no frames (zero-frame or truncated file)", path=str(path))
            raise ItemError(f"cannot decode frame 0 (header claims {frames} frames): corrupt or "
                            "truncated video", path=str(path))
        if width <= 0 or height <= 0:
            height, width = frame.shape[:2]
        if frames <= 0:
            # header without a frame count (some streams): count by grabbing, no decode
            frames = 1
            while cap.grab():
                frames += 1
    finally:
        cap.release()
    if not math.isfinite(fps) or fps <= 0:
        raise ItemError("video reports no frame rate (fps <= 0)", path=str(path))
    width, height = orient.display_size(width, height)
    return {"fps": fps, "frames": frames, "duration": frames / fps, "width": width,
            "height": height, "rotation": int(orient.rotation),
            "has_audio": bool(streams) and any(st.get("codec_type") == "audio" for st in streams)}
