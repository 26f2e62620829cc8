"""The classic landmark-driven FaceSwap recipe, as FaceForensics++ made its FaceSwap fakes
(Kowalski's FaceSwap: fit the source face, put it onto the target, shift its colours, feather it in):

1. Delaunay triangulation of the target's 68 landmarks (plus nothing else: the face only);
2. every triangle of the SOURCE face is warped onto the corresponding target triangle with its
   own affine transform (piecewise-affine warp; FaceForensics++ renders a fitted 3D model instead);
3. colour correction: the warped face's mean RGB is shifted to the target face's inside the
   convex-hull mask (the mouth's inside, which stays the target's, neither counted nor changed);
4. feathered alpha blending: the weight of the swapped face rises from 0 on the hull of the
   target's jaw and brows to 1 at ``FEATHER`` x the face's size inside it.

Until 2026-12-03 steps 3-4 were the OpenCV tutorials' Reinhard L*a*b* transfer and Poisson
blending (``cv2.seamlessClone``). The Poisson solve pulled the seam's colours into the face:
dark hair or background at the jaw or the brows left dark smears across cheeks and foreheads,
and matching the colours' spread as well as their mean washed some faces out to grey. Neither
is what the FaceSwap fakes of FaceForensics++ show.

Applied per frame with the source frame of the same index, so the source face follows the
source clip and the blend follows the target clip.
"""

from __future__ import annotations

import cv2
import numpy as np

# landmarks that outline the swapped region: jaw (0-16) and the brows (17-26)
HULL_POINTS = np.r_[0:27]
# the feathered band: FaceForensics++'s FaceSwap blends over 0.2 of the face's size
FEATHER = 0.2


def delaunay(points: np.ndarray, size) -> np.ndarray:
    """Triangles (k, 3) of point indices of the Delaunay triangulation of ``points``."""
    h, w = size
    pts = np.asarray(points, dtype=np.float32)
    lo = np.minimum(pts.min(0), 0) - 1
    hi = np.maximum(pts.max(0), [w, h]) + 1
    sub = cv2.Subdiv2D((int(np.floor(lo[0])), int(np.floor(lo[1])),
                        int(np.ceil(hi[0] - lo[0])) + 1, int(np.ceil(hi[1] - lo[1])) + 1))
    for p in pts:
        sub.insert((float(p[0]), float(p[1])))
    tris = []
    for t in sub.getTriangleList():
        tri = t.reshape(3, 2)
        idx = []
        for v in tri:
            d = np.abs(pts - v).sum(1)
            j = int(np.argmin(d))
            if d[j] > 1e-3:
                break
            idx.append(j)
        if len(idx) == 3 and len(set(idx)) == 3:
            tris.append(sorted(idx))
    tris = np.array(sorted(set(map(tuple, tris))), dtype=np.int32).reshape(-1, 3)
    return tris


def warp_triangles(src: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray,
                   triangles: np.ndarray, out_shape) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-affine warp of ``src`` so that ``src_pts`` land on ``dst_pts``.

    Returns the warped image (float32) and its coverage mask (float32 0..1)."""
    h, w = out_shape[:2]
    out = np.zeros((h, w, 3), np.float32)
    cover = np.zeros((h, w), np.float32)
    srcf = src.astype(np.float32)
    for tri in triangles:
        s = np.float32(src_pts[tri])
        d = np.float32(dst_pts[tri])
        x, y, bw, bh = cv2.boundingRect(d)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + bw, w), min(y + bh, h)
        if x1 <= x0 or y1 <= y0:
            continue
        m = cv2.getAffineTransform(s, d - np.float32([x0, y0]))
        patch = cv2.warpAffine(srcf, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillConvexPoly(mask, np.int32(np.round((d - [x0, y0]) * 16)), 1.0, cv2.LINE_AA, 4)
        region = out[y0:y1, x0:x1]
        cov = cover[y0:y1, x0:x1]
        new = mask * (1.0 - cov)
        region += patch * new[..., None]
        cover[y0:y1, x0:x1] = cov + new
    filled = cover > 1e-3
    out[filled] /= cover[filled][:, None]
    return out, np.clip(cover, 0, 1)


def hull_mask(points: np.ndarray, shape, erode: int = 0) -> np.ndarray:
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    hull = cv2.convexHull(np.int32(np.round(points)))
    cv2.fillConvexPoly(mask, hull, 255)
    if erode > 0:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask


def mean_colour_transfer(img: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``img`` (float32) shifted so that its mean RGB inside ``mask`` is ``ref``'s there."""
    sel = mask > 0
    out = np.asarray(img, dtype=np.float32)
    if sel.sum() < 10:
        return out
    shift = ref[sel].astype(np.float64).mean(0) - out[sel].astype(np.float64).mean(0)
    return np.clip(out + shift.astype(np.float32), 0, 255)


def feather_weights(mask: np.ndarray, feather: float = FEATHER) -> np.ndarray:
    """Blend weight (float32 0..1): distance inside ``mask`` over ``feather`` x its size."""
    inside = (mask > 0).astype(np.uint8)
    ys, xs = np.nonzero(inside)
    if not len(ys):
        return np.zeros(mask.shape, np.float32)
    size = max(np.ptp(xs), np.ptp(ys)) + 1
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.clip(dist / max(feather * size, 1.0), 0, 1).astype(np.float32)


def face_swap(src: np.ndarray, src_lm: np.ndarray, dst: np.ndarray, dst_lm: np.ndarray,
              triangles: np.ndarray | None = None) -> np.ndarray:
    """Put the face of ``src`` (landmarks ``src_lm``) onto ``dst`` (landmarks ``dst_lm``)."""
    h, w = dst.shape[:2]
    if triangles is None:
        triangles = delaunay(dst_lm, (h, w))
    # the mouth's inside (triangles of inner-lip points only) stays the target's: a closed
    # source mouth stretched over an open target mouth would smear the lips
    inner = np.all(triangles >= 60, axis=1)
    warped, cover = warp_triangles(src, src_lm, dst_lm, triangles[~inner], dst.shape)
    mask = hull_mask(dst_lm[HULL_POINTS], dst.shape)
    if mask.sum() < 255 * 16:
        return dst.copy()
    # the target's own pixels where no source triangle lands (the mouth's inside): counted
    # neither in the colour statistics nor changed by them (corrected with the face's colours,
    # the target's teeth were pushed to a flat white blob)
    holes = cover < 0.999
    face = mask.copy()
    face[holes] = 0
    corrected = mean_colour_transfer(warped, dst, face)
    corrected[holes] = dst[holes]
    alpha = feather_weights(mask)[..., None]
    out = alpha * corrected + (1.0 - alpha) * dst.astype(np.float32)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def swap_frames(src_frames: np.ndarray, src_lms: np.ndarray, dst_frames: np.ndarray,
                dst_lms: np.ndarray) -> np.ndarray:
    """Per-frame swap; source frame i (cycled) onto target frame i. One triangulation (of the
    first target frame) keeps the triangle topology stable over time."""
    n = len(dst_frames)
    tris = delaunay(dst_lms[0], dst_frames.shape[1:3])
    out = np.empty_like(dst_frames)
    for i in range(n):
        j = i % len(src_frames)
        out[i] = face_swap(src_frames[j], src_lms[j], dst_frames[i], dst_lms[i], tris)
    return out
