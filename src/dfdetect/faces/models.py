"""Offline locations of the face models that installed packages ship.

dlib's models come with the ``face-recognition-models`` wheel (located through importlib, not
``pkg_resources``); MTCNN's weights come with ``facenet-pytorch``. A user may point at other
files with the ``DFDETECT_DLIB_MODELS`` environment variable (a directory).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

DLIB_FILES = {
    "shape_predictor_68": "shape_predictor_68_face_landmarks.dat",
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
    "face_recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


def dlib_model_path(name: str) -> Path:
    filename = DLIB_FILES.get(name, name)
    candidates = []
    if os.environ.get("DFDETECT_DLIB_MODELS"):
        candidates.append(Path(os.environ["DFDETECT_DLIB_MODELS"]) / filename)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(Path(loc) / "models" / filename)
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(
        f"dlib model {filename} not found (looked in: {', '.join(map(str, candidates)) or 'nowhere'}); "
        "install face-recognition-models or set DFDETECT_DLIB_MODELS")


@functools.lru_cache(maxsize=None)
def dlib_hog_detector():
    import dlib  # noqa: PLC0415

    return dlib.get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def dlib_shape_predictor(name: str = "shape_predictor_68"):
    import dlib  # noqa: PLC0415

    return dlib.shape_predictor(str(dlib_model_path(name)))
