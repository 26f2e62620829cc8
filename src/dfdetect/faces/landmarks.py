"""68-point facial landmarks (iBUG 300-W convention) with dlib.

Index groups: jaw 0-16, right brow 17-21, left brow 22-26, nose 27-35, right eye 36-41,
left eye 42-47, outer mouth 48-59, inner mouth 60-67 ("right"/"left" from the subject's view:
the subject's right eye appears on the image's left).
"""

from __future__ import annotations

import numpy as np

from .models import dlib_hog_detector, dlib_shape_predictor

RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)
NOSE = slice(27, 36)
JAW = slice(0, 17)


def predict_landmarks(rgb: np.ndarray, box) -> np.ndarray:
    """68 (x, y) landmarks (float32, 68x2) inside ``box`` = (x0, y0, x1, y1) of ``rgb``."""
    import dlib  # noqa: PLC0415

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    shape = dlib_shape_predictor()(np.ascontiguousarray(rgb), dlib.rectangle(x0, y0, x1, y1))
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def detect_landmarks(rgb: np.ndarray, upsample: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every face dlib's HOG detector finds: ``[(box float32 (4,), landmarks float32 (68, 2))]``,
    largest face first."""
    rects = dlib_hog_detector()(np.ascontiguousarray(rgb), int(upsample))
    out = []
    for r in rects:
        box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float32)
        out.append((box, predict_landmarks(rgb, box)))
    out.sort(key=lambda bl: -float((bl[0][2] - bl[0][0]) * (bl[0][3] - bl[0][1])))
    return out
