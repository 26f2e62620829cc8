"""Self-blended images (SBI; Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images",
CVPR 2022): fake training faces made from one real face.

A face blended with a slightly altered copy of itself carries the generic traces of face
manipulation (a blending boundary, a colour or sharpness mismatch inside the face, a small
misalignment) without any identity or method-specific artefact, so a detector trained on real
faces and their self-blends learns those traces rather than one generator's fingerprint. From
one real face and its 68 landmarks (in the face's own pixel coordinates), :func:`self_blend`:

1. the *target* is the face itself; the *source* is a copy altered in colour (per-channel
   shift, hue/saturation/value shift, brightness/contrast), sharpness (blur or sharpen),
   resolution (down/up-scale) and geometry (a small translation and scale);
2. the blending mask is the convex hull of the landmarks, deformed by a smooth random
   (elastic) displacement, eroded or dilated by a random amount, and blurred twice with
   random Gaussian kernels, then multiplied by a blend ratio drawn from
   ``{0.25, 0.5, 0.75, 1, 1, 1}`` (the paper's choice);
3. the self-blended face is ``mask * source + (1 - mask) * target``.

Every random choice comes from the generator passed in, so a seed gives the same bytes. Where
the returned mask is 0 the result equals the input face exactly: the change lives inside the
landmark hull grown by at most :func:`max_spread` pixels. (The training dataset maps a stored
face's full-frame landmarks into the face: :func:`dfdetect.nn.data.landmarks_in_face`.) The geometry of the demo builder's
``sbi`` method and of the training fakes (``synthetic_fakes: sbi | mixed``) is this function.
"""

from __future__ import annotations

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def hull_mask(points: np.ndarray, shape) -> np.ndarray:
    """float32 mask (1 inside the convex hull of ``points``, 0 outside)."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


def max_spread(size: int) -> int:
    """An upper bound (pixels) of how far outside the landmark hull the blending mask reaches on
    a ``size`` x ``size`` face: elastic displacement + dilation + the two blur kernels' radii."""
    return int(np.ceil(_elastic_amp(size))) + _max_morph(size) + 2 * _max_blur(size) + 1


def _elastic_amp(size: int) -> float:
    return 0.02 * size


def _max_morph(size: int) -> int:
    return max(1, int(round(0.04 * size)))


def _max_blur(size: int) -> int:
    """Largest Gaussian kernel radius used on the mask."""
    return max(2, int(round(0.06 * size)))


def deform_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Elastic displacement, random erosion/dilation and two random Gaussian blurs of a mask."""
    h, w = mask.shape
    size = max(h, w)
    # smooth random displacement: a coarse grid of offsets, upsampled (cubic)
    grid = max(2, size // 16)
    amp = _elastic_amp(size)
    dx = cv2.resize(rng.uniform(-amp, amp, (grid, grid)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-amp, amp, (grid, grid)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    dx, dy = np.clip(dx, -amp, amp), np.clip(dy, -amp, amp)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = cv2.remap(mask, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # erosion or dilation by up to _max_morph pixels
    k = int(rng.integers(0, _max_morph(size) + 1))
    op = cv2.erode if rng.random() < 0.5 else cv2.dilate
    if k > 0:
        out = op(out, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    # two Gaussian blurs with random (odd) kernels
    for _ in range(2):
        r = int(rng.integers(1, _max_blur(size) + 1))
        out = cv2.GaussianBlur(out, (2 * r + 1, 2 * r + 1), 0, borderType=cv2.BORDER_CONSTANT)
    peak = float(out.max())
    if peak > 0:
        out = out / peak
    out[out < 1e-3] = 0.0
    return out.astype(np.float32)


def pseudo_source(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The altered copy of ``face``: colour, sharpness, resolution, small geometry changes."""
    h, w = face.shape[:2]
    x = face.astype(np.float32)
    # colour: per-channel shift, then HSV shift, then brightness / contrast
    x = x + rng.uniform(-20, 20, 3).astype(np.float32)
    x = np.clip(x, 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-5, 6))) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + int(rng.integers(-20, 21)), 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + int(rng.integers(-20, 21)), 0, 255)
    x = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    x = (x - 128.0) * (1.0 + rng.uniform(-0.1, 0.1)) + 128.0 + rng.uniform(-0.1, 0.1) * 255.0
    x = np.clip(x, 0, 255).astype(np.uint8)
    # sharpness: blur, sharpen or neither
    pick = rng.random()
    sigma = rng.uniform(0.5, 1.5)
    if pick < 1 / 3:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    elif pick < 2 / 3:
        soft = cv2.GaussianBlur(x, (0, 0), sigma)
        x = cv2.addWeighted(x, 1.0 + sigma, soft, -sigma, 0)
    # resolution: down-scale by 0.5-1 and back
    scale = rng.uniform(0.5, 1.0)
    if scale < 0.98:
        small = cv2.resize(x, (max(4, int(w * scale)), max(4, int(h * scale))), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    # geometry: translation up to 3 % and scale 0.95-1.05 about the centre
    s = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[s, 0, (1 - s) * cx + tx], [0, s, (1 - s) * cy + ty]], np.float64)
    return cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def self_blend(face: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """(self-blended face uint8 H x W x 3, blending mask float32 H x W in [0, 1]).

    ``landmarks``: 68 (or any number >= 3) points in ``face``'s pixel coordinates.
    """
    face = np.ascontiguousarray(face)
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, axis=2)
    if face.ndim != 3 or face.shape[2] != 3 or face.dtype != np.uint8:
        raise ValueError(f"self_blend needs a uint8 H x W x 3 face, got {face.dtype} {face.shape}")
    pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
    if len(pts) < 3 or not np.isfinite(pts).all():
        raise ValueError(f"self_blend needs >= 3 finite landmarks, got {len(pts)}")
    base = hull_mask(pts, face.shape)
    if base.sum() < 16:
        raise ValueError(f"landmark hull covers {int(base.sum())} pixels of the {face.shape[1]}x"
                         f"{face.shape[0]} face (landmarks outside it?)")
    mask = deform_mask(base, rng)
    mask = mask * float(BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))])
    source = pseudo_source(face, rng)
    m3 = mask[..., None]
    out = m3 * source.astype(np.float32) + (1.0 - m3) * face.astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[mask == 0] = face[mask == 0]          # exact outside the mask (no rounding drift)
    return out, mask


def sbi_frames(frames: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A self-blended video: one set of random choices (the same alteration and mask deformation
    for every frame, as a face-swap tool keeps its settings over a clip), the mask following each
    frame's landmarks."""
    seed = int(rng.integers(2**63))
    out = np.empty_like(frames)
    for i, (f, lm) in enumerate(zip(frames, landmarks)):
        out[i] = self_blend(f, lm, np.random.default_rng(seed))[0]   # same draws for every frame
    return out
