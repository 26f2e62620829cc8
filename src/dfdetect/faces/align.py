"""Face alignment from 68 landmarks.

Two alignments are made for every face:

- :func:`align_face`: the CNN input. A least-squares similarity transform (rotation, uniform scale,
  translation) maps five points (the two eye centres, the nose tip, the two mouth corners) onto
  the standard 5-point template of 112 x 112 face crops (the ArcFace/InsightFace template),
  scaled to ``face_size`` and shrunk by ``1 + margin`` about the centre so that context around
  the face is kept.
- :func:`defakehop_align`: DefakeHop's input (defakehop.txt section 3.1: faces "resized to
  128 x 128 and rotated to specific coordinates", then 32 x 32 patches of the left eye, right eye
  and mouth). The rotation makes the line between the eye centres exactly horizontal; scale and
  translation are the least-squares fit of the same five points to the template at ``size`` (with
  :data:`DEFAKEHOP_MARGIN`). Each patch is centred on its landmark group's centre (mean of the
  group's points, transformed into the ``size`` frame) and is sampled from the original frame
  by the same transform shifted, so it is interpolated once and its centre is exact (sub-pixel).

"Left"/"right" follow :mod:`dfdetect.faces.landmarks` (the subject's view): ``patches[0]`` is
the subject's left eye (points 42-47, on the image's right), ``patches[1]`` the subject's right
eye (36-41), ``patches[2]`` the mouth (48-67).

When the transform shrinks the face (a 300 px face of a 1080p frame to 128 px), the region
around the face is first reduced with area averaging so that the warp does not alias.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detect import similarity_fit
from .landmarks import LEFT_EYE, MOUTH, RIGHT_EYE

# ArcFace / InsightFace 5-point template for 112 x 112 crops: image-left eye, image-right eye,
# nose tip, image-left mouth corner, image-right mouth corner.
TEMPLATE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
], dtype=np.float64)

DEFAKEHOP_MARGIN = 0.1
PATCH_GROUPS = (("left_eye", LEFT_EYE), ("right_eye", RIGHT_EYE), ("mouth", MOUTH))


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """The template's five points from 68 landmarks (eye centres, nose tip 30, corners 48/54)."""
    lm = np.asarray(landmarks68, np.float64)
    return np.stack([lm[RIGHT_EYE].mean(0), lm[LEFT_EYE].mean(0), lm[30], lm[48], lm[54]])


def template(size: int, margin: float) -> np.ndarray:
    """The 5-point template in a ``size`` x ``size`` crop with ``margin`` (0.3 = face 1/1.3 as big)."""
    t = TEMPLATE_112 / 112.0
    return ((t - 0.5) / (1.0 + float(margin)) + 0.5) * float(size)


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp(rgb: np.ndarray, m: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """``rgb`` warped by the 2x3 matrix ``m`` (source -> output pixels) into a ``size`` image,
    bilinear, zero outside the frame; area-averaged first where ``m`` shrinks by more than 1.5x."""
    w, h = (size, size) if np.isscalar(size) else size
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    m = np.asarray(m, np.float64)
    if scale < 1 / 1.5:
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64)
        src = transform_points(inv, corners)
        pad = 2.0 / scale
        x0 = int(np.floor(max(0.0, src[:, 0].min() - pad)))
        y0 = int(np.floor(max(0.0, src[:, 1].min() - pad)))
        x1 = int(np.ceil(min(rgb.shape[1], src[:, 0].max() + pad)))
        y1 = int(np.ceil(min(rgb.shape[0], src[:, 1].max() + pad)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            r = scale * 1.25  # reduce to 1.25x the output resolution, then warp
            roi = rgb[y0:y1, x0:x1]
            rw, rh = max(1, int(round((x1 - x0) * r))), max(1, int(round((y1 - y0) * r)))
            small = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
            rx, ry = rw / (x1 - x0), rh / (y1 - y0)
            # p = (x0, y0) + q / (rx, ry)  =>  out = A q / r + (A (x0, y0) + t)
            m2 = np.empty((2, 3))
            m2[:, 0] = m[:, 0] / rx
            m2[:, 1] = m[:, 1] / ry
            m2[:, 2] = m[:, :2] @ np.array([x0, y0], np.float64) + m[:, 2]
            return cv2.warpAffine(small, m2, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def align_matrix(landmarks68: np.ndarray, size: int, margin: float) -> np.ndarray:
    return similarity_fit(five_points(landmarks68), template(size, margin))


def align_face(rgb: np.ndarray, landmarks68: np.ndarray, size: int = 224, margin: float = 0.3
               ) -> tuple[np.ndarray, np.ndarray]:
    """(aligned face uint8 size x size x 3, the 2x3 frame -> face matrix)."""
    m = align_matrix(landmarks68, size, margin)
    return warp(rgb, m, size), m


def eyes_level_matrix(landmarks68: np.ndarray, size: int, margin: float = DEFAKEHOP_MARGIN) -> np.ndarray:
    """Similarity whose rotation makes the eye line horizontal; scale and translation fit the
    five points to the template in least squares (rotation fixed)."""
    pts = five_points(landmarks68)
    dst = template(size, margin)
    d = pts[1] - pts[0]  # image-left eye -> image-right eye
    theta = np.arctan2(d[1], d[0])
    c, s = np.cos(-theta), np.sin(-theta)
    rot = np.array([[c, -s], [s, c]])
    p = pts @ rot.T
    pc, qc = p - p.mean(0), dst - dst.mean(0)
    k = float((pc * qc).sum() / max((pc ** 2).sum(), 1e-12))
    m = np.zeros((2, 3))
    m[:, :2] = k * rot
    m[:, 2] = dst.mean(0) - k * p.mean(0)
    return m


def defakehop_align(rgb: np.ndarray, landmarks68: np.ndarray, size: int = 128, patch_size: int = 32
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DefakeHop alignment: (face uint8 size x size x 3, patches uint8 3 x p x p x 3, matrix).

    Patch ``i`` is centred on the centre of landmark group ``PATCH_GROUPS[i]`` in the ``size``
    frame: that centre lands on the patch's pixel-centre ((p - 1) / 2, (p - 1) / 2).
    """
    m = eyes_level_matrix(landmarks68, size)
    face = warp(rgb, m, size)
    lm = transform_points(m, landmarks68)
    half = (patch_size - 1) / 2.0
    patches = []
    for _, group in PATCH_GROUPS:
        centre = lm[group].mean(0)
        mp = m.copy()
        mp[:, 2] -= centre - half
        patches.append(warp(rgb, mp, patch_size))
    return face, np.stack(patches), m
