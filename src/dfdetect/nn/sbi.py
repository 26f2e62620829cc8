"""Self-blended images (SBI; Shiohara & Yamasaki, "Detecting Deepfakes with Self-Blended Images",
CVPR 2022): fake training faces made from one real face.

A face blended with a slightly altered copy of itself carries the generic traces of face
manipulation (a blending boundary, a colour or sharpness mismatch between the face and its
surroundings, a small misalignment) without any identity or method-specific artefact, so a
detector trained on real faces and their self-blends learns those traces rather than one
generator's fingerprint. From one real face and its 68 landmarks (in the face's own pixel
coordinates), :func:`self_blend_pair` follows the paper and the authors' released recipe:

1. *source-target generator*: two copies of the face; one of them, the source or the target
   with probability 1/2 each (``alter_which="random"``), is altered in colour (an RGB shift of up to
   20 levels with probability 0.3, brightness and contrast up to 10 %) and in frequency (one of:
   a down-scale by 2 or 4, nearest, and back up, bilinear; or a 3 x 3 sharpening of random
   strength); the source is then shifted (up to 3 % across, 1.5 % down) and scaled (0.95 to
   1/0.95), and the blending mask with it;
2. *mask generator*: the convex hull of the landmarks, moved with the source, deformed by an
   elastic displacement, then (at a random working size of 192-256 px, as the authors' code)
   blurred with a random odd kernel of 5-25 px and cut to where the blur is 1 (a shrink), blurred
   again (kernel 5-25 px, sigma 5-45) and scaled to a peak of 1, times a blend ratio drawn from
   ``{0.25, 0.5, 0.75, 1, 1, 1}``;
3. the self-blended face is ``mask * source + (1 - mask) * target``, and the *real* face of the
   pair is the target: when the target is the altered copy, the real and the fake share that
   alteration, so a global colour or sharpness change never tells them apart, only the
   inconsistency inside the face does.

Every random choice comes from the generator passed in, so a seed gives the same bytes. Where
the returned mask is 0 the fake equals the pair's real exactly: the change lives inside the
landmark hull grown by at most :func:`max_spread` pixels. The training dataset serves both faces
of a pair (``synthetic_fakes: sbi | mixed``, :func:`dfdetect.nn.data.with_synthetic`) and maps a
stored face's full-frame landmarks into the face (:func:`dfdetect.nn.data.landmarks_in_face`).
The demo builder's ``sbi`` method alters the source only (``alter_which="source"``): its fake video sits
beside the untouched real clip, as a face-swap tool leaves the frame outside the face as it was.

Departures from the authors' code, where the paper leaves it open: 68 landmarks (dlib) instead of
their 81 with the forehead, and one convex hull instead of their random choice among four hull
shapes; their HSV shift (limits of 0.3 on 8-bit channels, below one level) is left out.
"""

from __future__ import annotations

import cv2
import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
ALTER = ("random", "source")


def hull_mask(points: np.ndarray, shape) -> np.ndarray:
    """float32 mask (1 inside the convex hull of ``points``, 0 outside)."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.round(np.asarray(points, np.float64)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(np.float32)


# the source's (and mask's) shift and scale: up to 3 % across, 1.5 % down, scale 0.95 to 1/0.95
SHIFT_X, SHIFT_Y, SCALE_LO = 0.03, 0.015, 0.95
# the mask's working size and blur kernels, in pixels of that size (the authors' values)
WORK_SIZE = (192, 256)
KERNEL = (5, 25)


def _elastic_amp(size: int) -> float:
    """Largest elastic displacement (pixels) of the mask on a ``size`` face: the authors'
    alpha 50 / sigma 7 at a 256 px face gives displacements of a few pixels; 2 % of the size."""
    return 0.02 * size


def max_spread(size: int) -> int:
    """An upper bound (pixels) of how far outside the landmark hull the blending mask reaches on
    a ``size`` x ``size`` face: the source's shift and scale, the elastic displacement and the
    second blur's radius (the first blur and its cut only shrink the mask)."""
    affine = max(SHIFT_X, SHIFT_Y) * size + (1.0 / SCALE_LO - 1.0) * size / np.sqrt(2.0)
    blur = (KERNEL[1] // 2) * size / WORK_SIZE[0]
    return int(np.ceil(affine + _elastic_amp(size) + blur)) + 2


def _affine(size_w: int, size_h: int, rng: np.random.Generator) -> np.ndarray:
    s = rng.uniform(SCALE_LO, 1.0 / SCALE_LO)
    tx = rng.uniform(-SHIFT_X, SHIFT_X) * size_w
    ty = rng.uniform(-SHIFT_Y, SHIFT_Y) * size_h
    cx, cy = (size_w - 1) / 2.0, (size_h - 1) / 2.0
    return np.array([[s, 0, (1 - s) * cx + tx], [0, s, (1 - s) * cy + ty]], np.float64)


def _elastic(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth random displacement of the mask (a coarse grid of offsets, upsampled)."""
    h, w = mask.shape
    size = max(h, w)
    grid = max(2, size // 16)
    amp = _elastic_amp(size)
    dx = cv2.resize(rng.uniform(-amp, amp, (grid, grid)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-amp, amp, (grid, grid)).astype(np.float32), (w, h),
                    interpolation=cv2.INTER_CUBIC)
    dx, dy = np.clip(dx, -amp, amp), np.clip(dy, -amp, amp)
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(mask, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _odd_kernel(rng: np.random.Generator) -> int:
    return int(rng.choice(np.arange(KERNEL[0], KERNEL[1] + 1, 2)))


def blend_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The soft blending mask of a (moved, deformed) hull mask, before the blend ratio: at a
    random working size, a blur cut to where it is 1 (a shrink), then a second blur, peak 1."""
    h, w = mask.shape
    wh, ww = (int(rng.integers(WORK_SIZE[0], WORK_SIZE[1] + 1)) for _ in range(2))
    out = cv2.resize(mask, (ww, wh), interpolation=cv2.INTER_LINEAR)
    k1 = _odd_kernel(rng)
    out = cv2.GaussianBlur(out, (k1, k1), 0)
    peak = float(out.max())
    if peak <= 0:
        return np.zeros((h, w), np.float32)
    out = out / peak
    out[out < 1.0] = 0.0
    k2, sigma = _odd_kernel(rng), float(rng.integers(5, 46))
    out = cv2.GaussianBlur(out, (k2, k2), sigma)
    # the cut kept the peak (1 after the division), so the second blur's peak is positive
    out = cv2.resize(out / float(out.max()), (w, h), interpolation=cv2.INTER_LINEAR)
    out[out < 1e-3] = 0.0
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _sharpen(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 3 x 3 sharpening: the identity mixed (alpha 0.2-0.5) with a Laplacian kernel whose
    centre is 8 + lightness (0.5-1)."""
    alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
    effect = -np.ones((3, 3), np.float32)
    effect[1, 1] = 8.0 + lightness
    keep = np.zeros((3, 3), np.float32)
    keep[1, 1] = 1.0
    kernel = (1.0 - alpha) * keep + alpha * effect
    return np.clip(cv2.filter2D(x.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101),
                   0, 255).astype(np.uint8)


def _downscale(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down by 2 or 4 (nearest) and back up (bilinear): a face rendered at a lower resolution."""
    h, w = x.shape[:2]
    r = int(rng.choice([2, 4]))
    small = cv2.resize(x, (max(1, w // r), max(1, h // r)), interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def alter(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The source-target augmentation of one copy: colour (RGB shift with probability 0.3,
    brightness / contrast), then one of a down/up-scale or a sharpening."""
    x = face.astype(np.float32)
    if rng.random() < 0.3:
        x = x + rng.uniform(-20, 20, 3).astype(np.float32)
    contrast, brightness = 1.0 + rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1) * 255.0
    x = np.clip(x * contrast + brightness, 0, 255).astype(np.uint8)
    return _downscale(x, rng) if rng.random() < 0.5 else _sharpen(x, rng)


def self_blend_pair(face: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
                    alter_which: str = "random") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(real uint8 H x W x 3, self-blended fake uint8 H x W x 3, mask float32 H x W in [0, 1]).

    ``landmarks``: 68 (or any number >= 3) points in ``face``'s pixel coordinates.
    ``alter_which``: ``random`` (the paper: the source or the target, 1/2 each) or ``source``.
    The real is the target: ``face`` itself, or its altered copy when the target was altered.
    """
    if alter_which not in ALTER:
        raise ValueError(f"alter_which must be one of {', '.join(ALTER)}, got {alter_which!r}")
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
    h, w = face.shape[:2]
    alter_source = alter_which == "source" or rng.random() < 0.5
    source, target = (alter(face, rng), face) if alter_source else (face, alter(face, rng))
    m = _affine(w, h, rng)                      # the source and its mask move together
    source = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    moved = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
    mask = blend_mask(_elastic(moved, rng), rng)
    mask = mask * float(BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))])
    m3 = mask[..., None]
    out = m3 * source.astype(np.float32) + (1.0 - m3) * target.astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    out[mask == 0] = target[mask == 0]          # exact outside the mask (no rounding drift)
    return target, out, mask


def self_blend(face: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator,
               alter_which: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """(self-blended fake, mask) of :func:`self_blend_pair` (its real is dropped)."""
    _, fake, mask = self_blend_pair(face, landmarks, rng, alter_which)
    return fake, mask


def sbi_frames(frames: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A self-blended video: one set of random choices (the same alteration and mask deformation
    for every frame, as a face-swap tool keeps its settings over a clip), the mask following each
    frame's landmarks; the source is the altered copy, so outside the mask the frames are the
    real clip's."""
    seed = int(rng.integers(2**63))
    out = np.empty_like(frames)
    for i, (f, lm) in enumerate(zip(frames, landmarks)):
        out[i] = self_blend(f, lm, np.random.default_rng(seed), "source")[0]   # same draws per frame
    return out
