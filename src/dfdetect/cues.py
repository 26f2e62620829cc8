"""Cues that need no training, read beside the detectors. Face sharpness: the variance of the
Laplacian of the aligned face in grey, at the frame CNNs' input size.

It is a reference, not a detector of the registry. A swap or a talking-head generator renders
the face through a network at its own resolution, so real deepfakes often come out smoother
than the footage they replace; a training set whose fakes are not smoother than its reals
teaches nothing of that. ``benchmarks/quality.py`` prints the AUC this cue alone gets on each
set ("blurrier = fake"), beside the trained detectors, so a trained detector's AUC can be read
against what a trivial image statistic gets on the same videos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .store import Store


def laplacian_variance(face: np.ndarray, size: int = 128) -> float:
    """Variance of the 3 x 3 Laplacian of ``face`` (uint8 RGB, any size) resized to ``size``
    (area interpolation) and converted to grey."""
    import cv2  # noqa: PLC0415

    face = np.ascontiguousarray(face)
    if face.ndim != 3 or face.shape[2] != 3 or face.shape[0] < 3 or face.shape[1] < 3:
        raise ValueError(f"expected an RGB face (h, w, 3), got shape {face.shape}")
    small = cv2.resize(face, (int(size), int(size)), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=1).var())


def video_sharpness(faces_dir: str | Path, field: str = "face", size: int = 128):
    """One row per video of the face store ``faces_dir``: ``video_id``, ``sharpness`` (mean
    :func:`laplacian_variance` of its faces) and ``faces`` (how many)."""
    import pandas as pd  # noqa: PLC0415

    rows = []
    store = Store(faces_dir)
    for vid in store.videos():
        faces = store.read(vid, field)
        if len(faces):
            rows.append((vid, float(np.mean([laplacian_variance(f, size) for f in faces])), len(faces)))
    return pd.DataFrame(rows, columns=["video_id", "sharpness", "faces"])


def face_montage(rows, out, per_row: int = 8, size: int = 96, field: str = "face") -> Path:
    """A contact sheet of aligned faces, one row per group, written atomically to ``out`` (PNG).

    ``rows``: ``(title, faces_dir, video_ids)`` per row; the first face of each of the first
    ``per_row`` videos that have one is shown at ``size`` px, the title on a strip at the left.
    Looking at the training split's reals and fakes beside an evaluation set's shows what a
    detector could key on that the set does not share (a painted mouth, a colour seam)."""
    import cv2  # noqa: PLC0415

    from .store import atomic_path  # noqa: PLC0415

    rows = list(rows)
    if not rows:
        raise ValueError("face_montage: no rows")
    strip = 8 * max(len(str(t)) for t, _, _ in rows) + 12
    sheet = np.full((size * len(rows), strip + size * per_row, 3), 255, np.uint8)
    stores: dict[str, tuple[Store, set]] = {}     # one open store and its video list per folder
    for r, (title, faces_dir, video_ids) in enumerate(rows):
        if str(faces_dir) not in stores:
            opened = Store(faces_dir)
            stores[str(faces_dir)] = (opened, set(opened.videos()))
        store, have = stores[str(faces_dir)]
        col = 0
        for vid in video_ids:
            if col == per_row:
                break
            if vid not in have:
                continue
            faces = store.read(vid, field)
            if not len(faces):
                continue
            face = cv2.resize(np.ascontiguousarray(faces[0]), (size, size), interpolation=cv2.INTER_AREA)
            sheet[r * size:(r + 1) * size, strip + col * size:strip + (col + 1) * size] = face
            col += 1
        cv2.putText(sheet, str(title), (4, r * size + size // 2 + 4), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV's PNG encoder
        raise RuntimeError(f"face_montage: PNG encoding failed for {out}")
    with atomic_path(out) as tmp:
        tmp.write_bytes(png.tobytes())
    return Path(out)
