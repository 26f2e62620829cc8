"""The classic landmark-driven FaceSwap recipe (as in the FaceSwap method of FaceForensics++'s
graphics-based family, and the widely used OpenCV "face swap" tutorials):

1. Delaunay triangulation of the target's 68 landmarks (plus nothing else: the face only);
2. every triangle of the SOURCE face is warped onto the corresponding target triangle with its
   own affine transform (piecewise-affine warp);
3. colour correction: Reinhard et al. (2001) statistics transfer in CIE L*a*b*, matching the
   warped face's mean/std to the target face's inside the convex-hull mask (the mouth's inside,
   which stays the target's, neither counted nor changed);
4. Poisson blending (``cv2.seamlessClone``, NORMAL_CLONE) of the corrected face into the target
   frame with the (slightly eroded) convex hull of the target landmarks as mask.

Applied per frame with the source frame of the same index, so the source face follows the
source clip and the blend follows the target clip.
"""

from __future__ import annotations

import cv2
import numpy as np

# landmarks that outline the swapped region: jaw (0-16) and the brows (17-26)
HULL_POINTS = np.r_[0:27]


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


def reinhard_transfer(img: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Match the L*a*b* mean and std of ``img`` to ``ref`` inside ``mask`` (Reinhard 2001)."""
    sel = mask > 0
    if sel.sum() < 10:
        return img
    a = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    b = cv2.cvtColor(ref, cv2.COLOR_RGB2LAB).astype(np.float32)
    am, asd = a[sel].mean(0), a[sel].std(0) + 1e-3
    bm, bsd = b[sel].mean(0), b[sel].std(0) + 1e-3
    out = (a - am) * (bsd / asd) + bm
    out = np.clip(out, 0, 255).round().astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_LAB2RGB)


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
    erode = max(1, int(round(0.02 * np.ptp(dst_lm[:, 0]))))
    mask = hull_mask(dst_lm[HULL_POINTS], dst.shape, erode=erode)
    outside = hull_mask(dst_lm[HULL_POINTS], dst.shape) == 0
    mask[(cover < 0.999) & outside] = 0
    # keep the mask off the image border (seamlessClone needs a margin around it)
    mask[:2] = 0
    mask[-2:] = 0
    mask[:, :2] = 0
    mask[:, -2:] = 0
    if mask.sum() < 255 * 16:
        return dst.copy()
    holes = cover < 0.999
    base = warped.copy()
    base[holes] = dst[holes]
    # the colour statistics are the warped face's, and the target's own pixels in the holes (the
    # mouth's inside) keep their colours: corrected with the face's map, the target's teeth
    # were pushed to a flat white blob
    face = mask.copy()
    face[holes] = 0
    corrected = reinhard_transfer(base, dst, face)
    corrected[holes] = dst[holes]
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    center = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    return cv2.seamlessClone(np.ascontiguousarray(corrected), np.ascontiguousarray(dst), mask,
                             center, cv2.NORMAL_CLONE)


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
