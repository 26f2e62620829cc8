"""Which frames of a video to sample: exact, deterministic frame indices.

Frame ``i`` is the i-th frame a full decode of the video outputs (presentation order, 0-based).
Every strategy spreads its frames over the WHOLE video and never degenerates into "the first
N frames": DeepfakeBench's dataset (training/dataset/abstract_dataset.py) keeps
``range(0, total, total // frame_num)[:frame_num]``, which is the first ``frame_num`` frames
whenever a video has fewer than ``2 * frame_num`` and always drops the tail (250 frames,
32 wanted: step 7, frames 0..217), and reuses the previous video's selection when a video has
``frame_num`` frames or fewer.

- ``uniform``: ``num_frames`` indices ``round(linspace(0, n - 1, num_frames))`` (round half
  up), de-duplicated; a video with ``n <= num_frames`` frames gives all its frames.
- ``every_k``: ``0, k, 2k, ...`` below ``n``.
- ``uniform_every_k``: ``num_frames`` frames of the ``every_k`` grid, spread over it as
  ``uniform`` spreads frames over the video (``k * uniform(m, num_frames)``, ``m`` grid
  points): the same number of frames as ``uniform``, over the whole video, and wherever
  ``num_frames`` is dense enough (short clips, or ``num_frames >= n / k``) adjacent frames are
  ``k`` apart, which DefakeHop's own frame selection (every 6th frame, defakehop.txt 3.4) needs.
- ``fps``: one frame every ``1 / fps`` seconds of the video's own time base: frame
  ``floor(j * video_fps / fps)`` for ``j = 0, 1, ...``; at or above the video's rate, all frames.
- ``all``: every frame.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

STRATEGIES = ("uniform", "every_k", "uniform_every_k", "fps", "all")


def uniform(n: int, num_frames: int) -> np.ndarray:
    n, num_frames = int(n), int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    if n <= num_frames:
        return np.arange(n, dtype=np.int64)
    pos = np.linspace(0.0, n - 1, num_frames)
    return np.unique(np.floor(pos + 0.5).astype(np.int64))


def every_k(n: int, k: int) -> np.ndarray:
    k = int(k)
    if k < 1:
        raise ValueError(f"every_k must be >= 1, got {k}")
    return np.arange(0, max(int(n), 0), k, dtype=np.int64)


def uniform_every_k(n: int, num_frames: int, k: int) -> np.ndarray:
    grid = every_k(n, k)
    return grid[uniform(len(grid), num_frames)]


def at_fps(n: int, video_fps: float, fps: float) -> np.ndarray:
    n = int(n)
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be > 0, got {fps}")
    if not video_fps or video_fps <= 0 or not math.isfinite(video_fps):
        raise ValueError(f"the video's frame rate is unknown ({video_fps}); cannot sample at {fps} fps")
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    step = float(video_fps) / float(fps)
    if step <= 1.0:
        return np.arange(n, dtype=np.int64)
    count = int(math.ceil(n / step - 1e-9))   # every j with floor(j * step) < n
    idx = np.floor(np.arange(count) * step + 1e-9).astype(np.int64)
    return np.unique(idx[idx < n])


def all_frames(n: int) -> np.ndarray:
    return np.arange(max(int(n), 0), dtype=np.int64)


def frame_indices(n: int, strategy: str = "uniform", *, num_frames: int = 8, every: int = 10,
                  fps: float = 1.0, video_fps: float | None = None) -> np.ndarray:
    """Sorted unique int64 indices of the frames to sample from a video of ``n`` frames."""
    if strategy == "uniform":
        return uniform(n, num_frames)
    if strategy == "every_k":
        return every_k(n, every)
    if strategy == "uniform_every_k":
        return uniform_every_k(n, num_frames, every)
    if strategy == "fps":
        return at_fps(n, video_fps or 0.0, fps)
    if strategy == "all":
        return all_frames(n)
    raise ValueError(f"unknown frame sampling strategy {strategy!r}; expected one of {STRATEGIES}")


def indices_from_params(n: int, params: Mapping, video_fps: float | None = None) -> np.ndarray:
    """:func:`frame_indices` with the keys of the ``sample_frames`` params section."""
    return frame_indices(n, str(params.get("strategy", "uniform")),
                         num_frames=int(params.get("num_frames", 8)),
                         every=int(params.get("every_k", 10)),
                         fps=float(params.get("fps", 1.0)), video_fps=video_fps)
