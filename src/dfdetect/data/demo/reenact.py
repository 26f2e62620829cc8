"""Two more manipulation methods of the demo.

``reenact``: expression reenactment by landmark warping (in the spirit of Face2Face: the
target keeps its identity and head pose, the SOURCE drives the expression). The source is
another person's clip: the loudness envelope of the source's speech opens and closes the
target's mouth frame by frame, and seeded blinks close the eyes. The 68 target landmarks are
moved (lower lip, inner lips, chin and jaw for the mouth; upper eyelids for blinks), the frame is
warped piecewise-affinely over a Delaunay triangulation of the landmarks plus a fixed ring of
anchors around the face (so nothing outside the face moves). The opened mouth's interior is
retrieved from the target's own clip as Face2Face does (Thies et al., CVPR 2016, "mouth
retrieval"): the frame whose own inner lips are open the closest to the wanted opening is warped
piecewise-affinely from its inner-lip landmarks onto the new ones and feathered into the lips.
Only when no frame of the clip opens its mouth (``MIN_RETRIEVE_OPENING``; a still photo) is the
interior painted instead (a dark cavity with an upper-teeth band).

``decoder``: the look of an autoencoder's decoder output (DeepFakes-style): the face region is
downsampled to an 80-px bottleneck, upsampled, slightly smoothed and blended back with a feathered
convex-hull mask, so identity and expression stay, but the face loses detail while the
surroundings keep the camera's.
"""

from __future__ import annotations

import cv2
import numpy as np

from .swap import delaunay, hull_mask, warp_triangles

LOWER_OUTER = [55, 56, 57, 58, 59]
LOWER_INNER = [65, 66, 67]
UPPER_INNER = [61, 62, 63]
CORNERS = [48, 54, 60, 64]
# a driven opening below this leaves the mouth as it is (closed lips stay closed)
MIN_OPENING = 0.04
CHIN = {4: 0.15, 5: 0.35, 6: 0.6, 7: 0.8, 8: 0.9, 9: 0.8, 10: 0.6, 11: 0.35, 12: 0.15}
UPPER_LIDS = {37: 41, 38: 40, 43: 47, 44: 46}


def moved_landmarks(lm: np.ndarray, open_amount: float, blink: float) -> np.ndarray:
    """Landmarks with the mouth opened by ``open_amount`` (0..1) and eyes closed by ``blink``."""
    out = lm.astype(np.float32).copy()
    mouth_w = float(np.linalg.norm(lm[54] - lm[48]))
    # "down" = from the eyes' midpoint to the mouth (follows head roll)
    eyes = (lm[36:42].mean(0) + lm[42:48].mean(0)) / 2
    down = lm[48:68].mean(0) - eyes
    down /= max(np.linalg.norm(down), 1e-6)
    gap = 0.45 * mouth_w * float(open_amount)
    for k in LOWER_OUTER + LOWER_INNER:
        out[k] += down * gap
    for k in UPPER_INNER:
        out[k] -= down * gap * 0.08
    for k in CORNERS:
        out[k] += down * gap * 0.35
    for k, wgt in CHIN.items():
        out[k] += down * gap * 0.75 * wgt
    for up, low in UPPER_LIDS.items():
        out[up] = out[up] + (lm[low] - lm[up]) * 0.85 * float(blink)
    return out


def _anchor_ring(lm: np.ndarray, shape, scale: float = 1.45, n: int = 16) -> np.ndarray:
    h, w = shape[:2]
    c = lm.mean(0)
    r = np.abs(lm - c).max(0) * scale
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([c[0] + r[0] * np.cos(ang), c[1] + r[1] * 1.1 * np.sin(ang)], 1)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1],
                        [w // 2, 0], [w // 2, h - 1], [0, h // 2], [w - 1, h // 2]], np.float32)
    ring = np.clip(ring, 0, [w - 1, h - 1])
    return np.vstack([ring, corners]).astype(np.float32)


def _paint_mouth(img: np.ndarray, lm_new: np.ndarray) -> np.ndarray:
    mask = _inner_mask(lm_new, img.shape)
    if mask.max() == 0:
        return img
    lips = hull_mask(lm_new[48:60], img.shape)
    lip_col = img[lips > 0].reshape(-1, 3).mean(0) if (lips > 0).any() else np.array([120, 60, 60])
    cavity = np.clip(lip_col * 0.22, 0, 255)
    teeth = np.clip(np.array([215.0, 205.0, 190.0]) * (img.mean() / 128.0) ** 0.5, 0, 255)
    paint = np.empty_like(img, dtype=np.float32)
    paint[:] = cavity
    # upper teeth: a band below the upper inner lip, ~35 % of the opening
    ys, xs = np.nonzero(mask)
    top = np.interp(xs, lm_new[[60, 61, 62, 63, 64], 0], lm_new[[60, 61, 62, 63, 64], 1])
    bottom = np.interp(xs, lm_new[[64, 65, 66, 67, 60], 0][::-1], lm_new[[64, 65, 66, 67, 60], 1][::-1])
    frac = (ys - top) / np.maximum(bottom - top, 1.0)
    tooth = frac < 0.35
    paint[ys[tooth], xs[tooth]] = teeth
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0)[..., None]
    paint = cv2.GaussianBlur(paint, (0, 0), 0.7)
    return np.clip(img * (1 - soft) + paint * soft, 0, 255).round().astype(np.uint8)


# a clip frame lends its mouth interior only if its own inner lips are at least this far apart
# (the gap between landmarks 62 and 66 over the mouth's width) ...
MIN_RETRIEVE_OPENING = 0.12
# ... and at least this fraction of the wanted gap (a barely open mouth stretched over a wide one
# smears its teeth)
MIN_RETRIEVE_FRACTION = 0.5
# the inner-lip octagon and its centre: the triangles the interior is warped over
_INNER_TRIS = np.array([[i, (i + 1) % 8, 8] for i in range(8)], np.int32)


def mouth_opening(lm: np.ndarray) -> float:
    """Inner-lip gap (landmarks 62 to 66) over the mouth's width (48 to 54)."""
    width = float(np.linalg.norm(lm[54] - lm[48]))
    return float(np.linalg.norm(lm[66] - lm[62])) / max(width, 1e-6)


def pick_mouth_donor(openings: np.ndarray, wanted: float, frame: int) -> int | None:
    """The clip frame whose own mouth opening is closest to ``wanted`` among those open enough
    (nearest in time on a tie), or None when no frame is."""
    openings = np.asarray(openings, dtype=np.float64)
    ok = (openings >= MIN_RETRIEVE_OPENING) & (openings >= MIN_RETRIEVE_FRACTION * wanted)
    if not ok.any():
        return None
    idx = np.nonzero(ok)[0]
    key = np.lexsort((np.abs(idx - frame), np.abs(openings[idx] - wanted)))
    return int(idx[key[0]])


def _inner_mask(lm_new: np.ndarray, shape) -> np.ndarray:
    """The rounded inner-lip polygon (two steps of Chaikin corner cutting), uint8 0/255."""
    h, w = shape[:2]
    poly = lm_new[60:68].astype(np.float64)
    for _ in range(2):
        nxt = np.roll(poly, -1, axis=0)
        poly = np.stack([0.75 * poly + 0.25 * nxt, 0.25 * poly + 0.75 * nxt], 1).reshape(-1, 2)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.int32(np.round(poly * 8))], 255, cv2.LINE_AA, 3)
    return mask


def _retrieve_mouth(img: np.ndarray, lm_new: np.ndarray, donor: np.ndarray,
                    donor_lm: np.ndarray) -> np.ndarray:
    """``img`` with the interior of its (moved) inner lips taken from ``donor``'s open mouth."""
    mask = _inner_mask(lm_new, img.shape)
    if mask.max() == 0:
        return img
    src = np.vstack([donor_lm[60:68], donor_lm[60:68].mean(0, keepdims=True)])
    dst = np.vstack([lm_new[60:68], lm_new[60:68].mean(0, keepdims=True)])
    warped, cover = warp_triangles(donor, src, dst, _INNER_TRIS, img.shape)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 1.0) * (cover > 0.999)
    soft = soft[..., None]
    return np.clip(img * (1 - soft) + warped * soft, 0, 255).round().astype(np.uint8)


def reenact_frame(img: np.ndarray, lm: np.ndarray, open_amount: float, blink: float,
                  triangles=None, donor: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """One reenacted frame; ``donor`` (frame, landmarks): the clip frame whose open mouth fills
    the new one (else the interior is painted)."""
    lm_new = moved_landmarks(lm, open_amount, blink)
    anchors = _anchor_ring(lm, img.shape)
    src_pts = np.vstack([lm, anchors])
    dst_pts = np.vstack([lm_new, anchors])
    if triangles is None:
        triangles = delaunay(src_pts, img.shape[:2])
    warped, cover = warp_triangles(img, src_pts, dst_pts, triangles, img.shape)
    out = np.where(cover[..., None] > 0.999, warped, img.astype(np.float32))
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    if open_amount < MIN_OPENING:
        return out
    if donor is not None:
        return _retrieve_mouth(out, lm_new, donor[0], donor[1])
    return _paint_mouth(out, lm_new)


def mouth_track(envelope: np.ndarray) -> np.ndarray:
    """Mouth opening (0..1) per frame from a speech loudness envelope (per frame)."""
    env = np.asarray(envelope, dtype=np.float64)
    if env.size == 0 or env.max() <= 0:
        return np.zeros_like(env)
    env = env / np.percentile(env, 95) if np.percentile(env, 95) > 0 else env / env.max()
    env = np.clip(env, 0, 1)
    kernel = np.array([0.25, 0.5, 0.25])
    env = np.convolve(np.pad(env, 1, mode="edge"), kernel, mode="valid")
    return np.clip((env - 0.15) / 0.85, 0, 1)


def blink_track(rng: np.random.Generator, n: int, fps: float) -> np.ndarray:
    """Seeded blinks: one every 1.5 to 4 s, each ~0.2 s (closing then opening)."""
    out = np.zeros(n)
    t = rng.uniform(0.2, 1.5)
    dur = max(3, int(round(0.2 * fps)))
    prof = 1 - np.abs(np.linspace(-1, 1, dur))
    while True:
        start = int(round(t * fps))
        if start >= n:
            break
        seg = prof[: n - start]
        out[start:start + len(seg)] = np.maximum(out[start:start + len(seg)], seg)
        t += rng.uniform(1.5, 4.0)
    return out


def reenact_frames(frames: np.ndarray, lms: np.ndarray, mouth: np.ndarray,
                   blinks: np.ndarray) -> np.ndarray:
    anchors = _anchor_ring(lms[0], frames.shape[1:])
    tris = delaunay(np.vstack([lms[0], anchors]), frames.shape[1:3])
    openings = np.array([mouth_opening(lm) for lm in lms])
    retrieve = openings.size > 0 and openings.max() >= MIN_RETRIEVE_OPENING
    out = np.empty_like(frames)
    for i in range(len(frames)):
        amount, donor = float(mouth[i]), None
        if retrieve and amount >= MIN_OPENING:
            amount = capped_opening(lms[i], amount, openings.max() / MIN_RETRIEVE_FRACTION)
            j = pick_mouth_donor(openings, mouth_opening(moved_landmarks(lms[i], amount, 0.0)), i)
            donor = None if j is None else (frames[j], lms[j])
        out[i] = reenact_frame(frames[i], lms[i], amount, float(blinks[i]), tris, donor)
    return out


def capped_opening(lm: np.ndarray, amount: float, cap: float) -> float:
    """``amount`` lowered so that the moved mouth opens at most ``cap`` (:func:`mouth_opening`):
    the driving speech opens the target's mouth only as far as a mouth of its own clip can
    fill (as Face2Face's retrieval, which shows only mouth interiors the target has shown). The
    inner-lip gap moves linearly with ``amount`` (:func:`moved_landmarks`)."""
    o0, o1 = mouth_opening(moved_landmarks(lm, 0.0, 0.0)), mouth_opening(moved_landmarks(lm, 1.0, 0.0))
    if o0 + amount * (o1 - o0) <= cap or o1 <= o0:
        return amount
    return float(np.clip((cap - o0) / (o1 - o0), 0.0, amount))


def decoder_frame(img: np.ndarray, lm: np.ndarray, bottleneck: int = 80) -> np.ndarray:
    h, w = img.shape[:2]
    x0, y0 = np.floor(lm.min(0)).astype(int)
    x1, y1 = np.ceil(lm.max(0)).astype(int)
    pad = int(0.15 * max(x1 - x0, y1 - y0))
    x0, y0 = max(x0 - pad, 0), max(y0 - pad, 0)
    x1, y1 = min(x1 + pad, w), min(y1 + pad, h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return img.copy()
    crop = img[y0:y1, x0:x1]
    small = cv2.resize(crop, (bottleneck, bottleneck), interpolation=cv2.INTER_AREA)
    small = cv2.bilateralFilter(small, 5, 20, 3)
    up = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    mask = hull_mask(lm[np.r_[0:27]], img.shape)[y0:y1, x0:x1].astype(np.float32) / 255.0
    sigma = max(1.0, 0.04 * (x1 - x0))
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=int(sigma)),
                            (0, 0), sigma)[..., None]
    out = img.astype(np.float32).copy()
    out[y0:y1, x0:x1] = crop * (1 - mask) + up * mask
    return np.clip(out, 0, 255).round().astype(np.uint8)


def decoder_frames(frames: np.ndarray, lms: np.ndarray) -> np.ndarray:
    return np.stack([decoder_frame(f, l) for f, l in zip(frames, lms)])
