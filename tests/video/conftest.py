"""Tiny test videos whose frames carry their own frame number in their pixels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

SIZE = 64
GRID = 4          # 4 x 4 blocks of 16 x 16 pixels = 16 bits of frame number


def numbered_frame(i: int) -> np.ndarray:
    """RGB frame whose 16 blocks spell ``i`` in binary (bright = 1), plus a colour ramp."""
    img = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    b = SIZE // GRID
    for bit in range(GRID * GRID):
        r, c = divmod(bit, GRID)
        img[r * b:(r + 1) * b, c * b:(c + 1) * b] = 215 if (i >> bit) & 1 else 40
    img[..., 2] = np.clip(img[..., 2].astype(int) + (i * 3) % 30, 0, 255)
    return img


def frame_number(img: np.ndarray) -> int:
    """Read the frame number back from a decoded (lossy) frame."""
    b = img.shape[0] // GRID
    value = 0
    for bit in range(GRID * GRID):
        r, c = divmod(bit, GRID)
        block = img[r * b + b // 4:(r + 1) * b - b // 4, c * b + b // 4:(c + 1) * b - b // 4, :2]
        if block.mean() > 128:
            value |= 1 << bit
    return value


def make_h264(path: Path, n: int, gop: int = 10, fps: int = 25, bframes: int = 2,
              faststart: bool = False) -> Path:
    """H.264 mp4 of ``n`` numbered frames with a keyframe every ``gop`` frames (B-frames on)."""
    raw = b"".join(numbered_frame(i).tobytes() for i in range(n))
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{SIZE}x{SIZE}", "-r", str(fps), "-i", "-", "-c:v", "libx264",
           "-preset", "ultrafast" if bframes == 0 else "veryfast", "-crf", "12",
           "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", str(bframes),
           "-pix_fmt", "yuv420p", "-threads", "1"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    subprocess.run(cmd + [str(path)], input=raw, check=True)
    return path


def make_mjpg_avi(path: Path, n: int, fps: int = 25) -> Path:
    """Motion-JPEG AVI written by OpenCV (every frame a keyframe)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (SIZE, SIZE))
    for i in range(n):
        w.write(cv2.cvtColor(numbered_frame(i), cv2.COLOR_RGB2BGR))
    w.release()
    return path


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "gop10": make_h264(d / "gop10.mp4", 60, gop=10),
        "onegop": make_h264(d / "onegop.mp4", 30, gop=250),
        "fast": make_h264(d / "fast.mp4", 60, gop=10, faststart=True),
        "short": make_h264(d / "short.mp4", 5, gop=10),
        "avi": make_mjpg_avi(d / "clip.avi", 20),
    }
    half = d / "trunc_end.mp4"          # moov at the end: cutting the file loses the index
    half.write_bytes(out["gop10"].read_bytes()[: out["gop10"].stat().st_size // 2])
    out["trunc_moov"] = half
    half = d / "trunc_data.mp4"         # faststart: index intact, frame data cut in half
    half.write_bytes(out["fast"].read_bytes()[: out["fast"].stat().st_size // 2])
    out["trunc_data"] = half
    data = out["fast"].read_bytes()     # faststart file cut right after its header: 0 frames
    hdr = d / "header_only.mp4"
    hdr.write_bytes(data[: data.index(b"mdat") + 4])
    out["header_only"] = hdr
    audio = d / "audio_only.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac",
                    str(audio)], check=True)
    out["audio_only"] = audio
    junk = d / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 40)
    out["junk"] = junk
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    out["empty"] = empty
    return out


@pytest.fixture(name="frame_number", scope="session")
def _frame_number_fixture():
    """:func:`frame_number` for test modules (conftest is not importable in importlib mode)."""
    return frame_number
