"""Face detectors behind one interface: ``detect(rgb) -> [Face]``, largest face first.

- ``hog``: dlib's HOG + linear SVM frontal detector (fast on CPU; finds faces of about 80 px and
  larger per 2x upsampling step). Upsampling is a cascade: the detection image is scanned as is
  first and upsampled (up to ``upsample`` times) only when nothing was found, so large faces
  cost one cheap pass and small ones are still found.
- ``cnn``: dlib's MMOD CNN detector (``mmod_human_face_detector.dat``): more pose-robust, slow on CPU.
- ``mtcnn``: facenet-pytorch's MTCNN with its bundled P/R/O-Net weights; also gives 5 points
  (eyes, nose, mouth corners). The fallback when dlib finds no face. MTCNN is metric_learning.txt's
  face extractor (section III-A); two_branch.txt section 4 falls back to FAN (Bulat &
  Tzimiropoulos, the ``face-alignment`` package, whose weights download at run time), for which
  MTCNN is the offline stand-in.

Every detector returns boxes in the pixel frame of the image it was given. dlib's 68-point shape
predictor was trained on boxes shaped like the HOG detector's, so :func:`landmark_box` turns a
detection of another detector into such a box before landmarks are predicted.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .models import dlib_hog_detector, dlib_model_path

DETECTORS = ("hog", "cnn", "mtcnn")


@dataclass
class Face:
    """One detection: ``box`` = float32 (x0, y0, x1, y1); ``points5`` (MTCNN only) = float32 5x2
    (image-left eye, image-right eye, nose tip, image-left mouth corner, image-right corner)."""

    box: np.ndarray
    score: float
    detector: str
    points5: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))

    def scaled(self, factor: float) -> "Face":
        """The same detection in a frame ``factor`` times larger."""
        pts = None if self.points5 is None else (self.points5 * factor).astype(np.float32)
        return Face((self.box * factor).astype(np.float32), self.score, self.detector, pts)


def largest_first(faces: list[Face]) -> list[Face]:
    """Sort by box area (largest first), ties by score then position: a total, stable order."""
    return sorted(faces, key=lambda f: (-round(f.area, 3), -f.score, float(f.box[0]), float(f.box[1])))


def _rect_box(r) -> np.ndarray:
    return np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float32)


# ----------------------------------------------------------------------------- dlib HOG
def detect_hog(rgb: np.ndarray, upsample: int = 1) -> list[Face]:
    """dlib HOG; upsampling 0, 1, ... ``upsample`` times until a face is found."""
    det = dlib_hog_detector()
    img = np.ascontiguousarray(rgb)
    for up in range(int(upsample) + 1):
        rects, scores, _ = det.run(img, up, 0.0)
        if len(rects):
            return largest_first([Face(_rect_box(r), float(s), "hog") for r, s in zip(rects, scores)])
    return []


# ----------------------------------------------------------------------------- dlib CNN (MMOD)
@functools.lru_cache(maxsize=None)
def _cnn_detector():
    import dlib  # noqa: PLC0415

    return dlib.cnn_face_detection_model_v1(str(dlib_model_path("cnn_detector")))


def detect_cnn(rgb: np.ndarray, upsample: int = 1) -> list[Face]:
    """dlib's MMOD CNN detector (same upsampling cascade as :func:`detect_hog`)."""
    det = _cnn_detector()
    img = np.ascontiguousarray(rgb)
    for up in range(int(upsample) + 1):
        dets = det(img, up)
        if len(dets):
            return largest_first([Face(_rect_box(d.rect), float(d.confidence), "cnn") for d in dets])
    return []


# ----------------------------------------------------------------------------- MTCNN
@functools.lru_cache(maxsize=None)
def _mtcnn(min_face_size: int = 20):
    from ..nn.compat import ensure_torchvision  # noqa: PLC0415

    ensure_torchvision()
    from facenet_pytorch import MTCNN  # noqa: PLC0415  (weights ship in the wheel)

    return MTCNN(keep_all=True, device="cpu", min_face_size=int(min_face_size), post_process=False)


def detect_mtcnn(rgb: np.ndarray, upsample: int = 0, min_face_size: int = 20) -> list[Face]:
    """facenet-pytorch MTCNN (bundled weights). ``upsample`` is ignored: MTCNN runs its own
    image pyramid down to ``min_face_size`` pixels."""
    import torch  # noqa: PLC0415

    from ..determinism import torch_threads  # noqa: PLC0415

    # one thread, whatever the calling process has: a serial run gives the workers' bytes
    with torch_threads(1), torch.inference_mode():
        boxes, probs, points = _mtcnn(int(min_face_size)).detect(np.ascontiguousarray(rgb), landmarks=True)
    if boxes is None:
        return []
    return largest_first([Face(np.asarray(b, np.float32), float(p), "mtcnn", np.asarray(q, np.float32))
                          for b, p, q in zip(boxes, probs, points)])


_FUNCS = {"hog": detect_hog, "cnn": detect_cnn, "mtcnn": detect_mtcnn}


def detect(rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Face]:
    """All faces ``detector`` finds in ``rgb`` (HxWx3 uint8 RGB), largest first."""
    try:
        fn = _FUNCS[detector]
    except KeyError:
        raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}") from None
    return fn(rgb, upsample=upsample)


# ----------------------------------------------------------------------------- landmark boxes
# Median positions of MTCNN's 5 points inside dlib HOG boxes (box = unit square), measured on
# the 60 faces both detectors found in scikit-image's astronaut, dlib's example photos and the
# face_recognition photos of ../shared/media (spread about 0.06 box widths). Order as Face.points5.
# tests/faces/test_detect.py re-checks it on the astronaut.
MTCNN_POINTS_IN_HOG_BOX = np.array([
    [0.330, 0.317],
    [0.717, 0.313],
    [0.501, 0.547],
    [0.352, 0.728],
    [0.719, 0.734],
], dtype=np.float64)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to
    ``dst`` (Umeyama 1991, no reflection); returns the 2x3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    var = (s ** 2).sum() / len(src)
    scale = float((sig * sign).sum() / var) if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def landmark_box(face: Face) -> np.ndarray:
    """A box shaped like dlib HOG's for ``face`` (what the 68-point predictor expects)."""
    if face.detector == "hog" or face.points5 is None:
        if face.detector == "cnn":
            # MMOD boxes vs HOG boxes of the same faces (11 faces, same photos as above): HOG's
            # side is 0.916 x MMOD's, its centre 0.038 / 0.079 MMOD sides right / lower
            x0, y0, x1, y1 = (float(v) for v in face.box)
            w = max(x1 - x0, y1 - y0)
            cx, cy, side = (x0 + x1) / 2 + 0.038 * w, (y0 + y1) / 2 + 0.079 * w, 0.916 * w
            return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
        return face.box.astype(np.float32)
    m = similarity_fit(MTCNN_POINTS_IN_HOG_BOX, face.points5)
    cx, cy = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2]
    side = float(np.hypot(m[0, 0], m[1, 0]))
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
