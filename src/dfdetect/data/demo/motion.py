"""Seeded natural-looking head motion for a still portrait.

Each clip gets smooth random tracks (sums of a few low-frequency sinusoids with random phases,
0.1 to 0.8 Hz, as slow head sway and nodding): in-plane rotation (a few degrees), translation
(a few percent of the frame), scale drift (+-3 %) and a slight brightness flicker. Every frame is
rendered from the original photo with ONE affine warp (framing composed with the motion), so the
image is resampled once, and the landmarks are moved by the same affine (exact for a still).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .faces import Portrait, apply_affine, compose, face_frame_affine


@dataclass
class Clip:
    """A rendered clip: frames and per-frame landmarks in frame pixels."""

    name: str
    identity: str
    frames: np.ndarray        # uint8 (n, size, size, 3) RGB
    landmarks: np.ndarray     # float32 (n, 68, 2)
    fps: float
    audio: str = ""           # path of a WAV for the clip's sound track ("" = none)


def smooth_track(rng: np.random.Generator, n: int, fps: float, amplitude: float,
                 freqs=(0.15, 0.8), components: int = 3) -> np.ndarray:
    t = np.arange(n) / float(fps)
    out = np.zeros(n)
    for _ in range(components):
        f = rng.uniform(*freqs)
        phase = rng.uniform(0, 2 * np.pi)
        w = rng.uniform(0.4, 1.0)
        out += w * np.sin(2 * np.pi * f * t + phase)
    peak = np.abs(out).max() if n else 1.0
    return amplitude * out / (peak if peak > 0 else 1.0)


def motion_affines(rng: np.random.Generator, n: int, fps: float, size: int, center,
                   rot_deg: float = 4.0, shift: float = 0.03, zoom: float = 0.03):
    """Per-frame 2x3 similarity transforms about ``center`` (frame pixels) and gains."""
    rot = smooth_track(rng, n, fps, rot_deg)
    tx = smooth_track(rng, n, fps, shift * size)
    ty = smooth_track(rng, n, fps, shift * size * 0.7)
    sc = 1.0 + smooth_track(rng, n, fps, zoom, freqs=(0.1, 0.4), components=2)
    gain = 1.0 + smooth_track(rng, n, fps, 0.03, freqs=(0.5, 3.0), components=2)
    mats = []
    for i in range(n):
        m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), float(rot[i]), float(sc[i]))
        m[0, 2] += tx[i]
        m[1, 2] += ty[i]
        mats.append(m)
    return mats, gain


def render_portrait(portrait: Portrait, rng: np.random.Generator, n: int, fps: float,
                    size: int, name: str, face_fraction: float = 0.42) -> Clip:
    """Animate a still portrait into ``n`` frames of ``size`` x ``size``."""
    if portrait.kind == "lfw":                       # fill the frame with the small crop
        frame_m = face_frame_affine(portrait.landmarks, size, 0.62)
    else:
        frame_m = face_frame_affine(portrait.landmarks, size, face_fraction, portrait.image.shape)
    lm0 = apply_affine(portrait.landmarks, frame_m)
    center = lm0.mean(0)
    mats, gain = motion_affines(rng, n, fps, size, center)
    frames = np.empty((n, size, size, 3), np.uint8)
    lms = np.empty((n, 68, 2), np.float32)
    for i, m in enumerate(mats):
        full = compose(m, frame_m)
        img = cv2.warpAffine(portrait.image, full, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT_101)
        frames[i] = np.clip(img.astype(np.float32) * gain[i], 0, 255).round().astype(np.uint8)
        lms[i] = apply_affine(portrait.landmarks, full)
    return Clip(name, portrait.identity, frames, lms, float(fps))
