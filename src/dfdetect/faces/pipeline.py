"""Per-frame and per-video face alignment: detection, landmarks, both alignments.

For every frame: detect on a copy downscaled so its longer side is at most ``detect_max_side``
(detection dominates the cost and needs no more resolution than that for talking-head faces);
keep the largest face; if the first detector finds none, try the ``fallback`` (MTCNN by default:
metric_learning.txt's face extractor, and the offline stand-in for two_branch.txt's FAN fallback,
section 4); predict the 68 landmarks on the FULL-resolution frame from the box
scaled back up; then make the aligned face (``face_size``, ``margin``) and the DefakeHop face
(``defakehop_size``) with its three patches. A frame without a face is returned as a miss with a
reason, never raised.

:func:`align_video_task` is the unit of parallel work of the ``align_faces`` stage: it receives
(frames shard path, video_id, params) and reads its video's frames itself, one at a time, so
neither the frames nor the whole video cross process boundaries or sit in memory at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ..config import dataclass_kwargs
from .align import align_face, defakehop_align
from .detect import DETECTORS, Face, detect, landmark_box
from .landmarks import predict_landmarks

FIELDS = ("face", "box", "landmarks", "detector", "face128", "patches")


@dataclass(frozen=True)
class AlignConfig:
    detector: str = "hog"
    fallback: str = "mtcnn"
    detect_max_side: int = 640
    coarse_side: int = 400
    upsample: int = 1
    face_size: int = 224
    margin: float = 0.3
    defakehop_size: int = 128
    patch_size: int = 32

    def __post_init__(self):
        for name in (self.detector, self.fallback):
            if name and name not in DETECTORS:
                raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")

    @classmethod
    def from_params(cls, params: dict | None) -> "AlignConfig":
        return cls(**dataclass_kwargs(cls, params, none_is_empty=("fallback",)))

    def detectors(self) -> list[str]:
        out = [self.detector]
        if self.fallback and self.fallback != self.detector:
            out.append(self.fallback)
        return out

    def miss_reason(self) -> str:
        names = self.detectors()
        return "no face found by " + (" nor ".join(names) if len(names) > 1 else names[0])

    def to_dict(self) -> dict:
        return asdict(self)


def downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """(image whose longer side is <= ``max_side``, factor applied); area interpolation."""
    h, w = rgb.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return rgb, 1.0
    f = float(max_side) / max(h, w)
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return small, size[0] / w


def face_landmarks(rgb: np.ndarray, face: Face) -> np.ndarray:
    """68 landmarks (float32 68x2, full frame) of a detection.

    dlib's predictor was trained on upright faces in HOG-shaped boxes. A detection with 5 points
    (MTCNN) that is tilted by more than 10 degrees (often the reason HOG missed it) is therefore
    rotated upright first: the region around it (2 box sides) is warped so the eyes are level,
    landmarks are predicted there and mapped back into the frame.
    """
    box = landmark_box(face)
    if face.points5 is None:
        return predict_landmarks(rgb, box)
    d = face.points5[1].astype(np.float64) - face.points5[0]
    angle = float(np.degrees(np.arctan2(d[1], d[0])))
    if abs(angle) <= 10.0:
        return predict_landmarks(rgb, box)
    side = float(box[2] - box[0])
    cx, cy = float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2
    size = max(8, int(round(2 * side)))
    m = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)  # rotates the eye line to horizontal
    m[:, 2] += np.array([size / 2 - cx, size / 2 - cy])
    region = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    c = size / 2
    lm = predict_landmarks(region, (c - side / 2, c - side / 2, c + side / 2, c + side / 2))
    inv = cv2.invertAffineTransform(m)
    return (lm.astype(np.float64) @ inv[:, :2].T + inv[:, 2]).astype(np.float32)


def find_faces(rgb: np.ndarray, cfg: AlignConfig, max_faces: int | None = None
               ) -> list[tuple[Face, np.ndarray]]:
    """Faces (full-frame coordinates, largest first) with their 68 landmarks: those of the first
    detector that finds any (``cfg.detector``, then ``cfg.fallback``); at most ``max_faces``.

    HOG and CNN first scan a coarse copy (longer side ``coarse_side``, no upsampling): a
    talking-head face is found there at about half the cost, and any face larger than one
    found there would be found there too, so the largest face is kept. Only when that pass
    finds nothing is the frame scanned at ``detect_max_side`` (upsampled up to ``upsample``
    times). Landmarks are always predicted on the full-resolution frame.
    """
    passes = []
    fine, f_fine = downscale(rgb, cfg.detect_max_side)
    coarse_side = int(cfg.coarse_side or 0)
    if 0 < coarse_side < max(fine.shape[:2]):
        passes.append((coarse_side, 0))
    passes.append((None, cfg.upsample))
    for name in cfg.detectors():
        for side, up in passes if name != "mtcnn" else [(None, cfg.upsample)]:
            if side is None:
                img, f = fine, f_fine
            else:  # from the fine copy: cheaper than area-averaging the full frame again
                img, f_coarse = downscale(fine, side)
                f = f_fine * f_coarse
            faces = detect(img, name, upsample=up)
            if faces:
                faces = faces[:max_faces] if max_faces else faces
                faces = [fc.scaled(1.0 / f) if f != 1.0 else fc for fc in faces]
                return [(fc, face_landmarks(rgb, fc)) for fc in faces]
    return []


def find_face(rgb: np.ndarray, cfg: AlignConfig) -> tuple[Face, np.ndarray] | None:
    """The largest face (full-frame coordinates) and its 68 landmarks, or None."""
    found = find_faces(rgb, cfg, max_faces=1)
    return found[0] if found else None


def align_frame(rgb: np.ndarray, cfg: AlignConfig) -> dict | None:
    """One frame's record (the FIELDS) or None when no face is found."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
    found = find_face(rgb, cfg)
    if found is None:
        return None
    face, lm = found
    aligned, _ = align_face(rgb, lm, cfg.face_size, cfg.margin)
    face128, patches, _ = defakehop_align(rgb, lm, cfg.defakehop_size, cfg.patch_size)
    return {"face": aligned, "box": face.box.astype(np.float32), "landmarks": lm.astype(np.float32),
            "detector": face.detector, "face128": face128, "patches": patches}


def empty_fields(cfg: AlignConfig) -> dict:
    s, d, p = cfg.face_size, cfg.defakehop_size, cfg.patch_size
    return {"face": np.zeros((0, s, s, 3), np.uint8), "box": np.zeros((0, 4), np.float32),
            "landmarks": np.zeros((0, 68, 2), np.float32), "detector": np.zeros((0,), dtype="<U5"),
            "face128": np.zeros((0, d, d, 3), np.uint8), "patches": np.zeros((0, 3, p, p, 3), np.uint8)}


def align_frames(frames, frame_indices, cfg: AlignConfig) -> dict:
    """Align an iterable of frames. Returns ``{"frame_index": int64 (n,), <FIELDS>: arrays with
    n rows (frames with a face only), "misses": [(frame_index, reason)], "frames": total}``."""
    kept: list[int] = []
    recs: list[dict] = []
    misses: list[tuple[int, str]] = []
    total = 0
    for fi, rgb in zip(frame_indices, frames):
        total += 1
        rec = align_frame(np.asarray(rgb), cfg)
        if rec is None:
            misses.append((int(fi), cfg.miss_reason()))
        else:
            kept.append(int(fi))
            recs.append(rec)
    out = empty_fields(cfg) if not recs else {
        k: (np.array([r[k] for r in recs], dtype=str) if k == "detector" else np.stack([r[k] for r in recs]))
        for k in FIELDS}
    out["frame_index"] = np.asarray(kept, np.int64)
    out["misses"] = misses
    out["frames"] = total
    return out


def align_video_task(task: tuple) -> dict:
    """Worker for the stage: ``(frames_shard_path, video_id, params_dict)`` -> :func:`align_frames`
    result plus the video's frame attrs. Frames are read from the shard one at a time."""
    from ..failures import ItemError  # noqa: PLC0415
    from ..store import ShardReader  # noqa: PLC0415

    path, video_id, params = task
    cfg = AlignConfig.from_params(params)
    with ShardReader(Path(path)) as reader:
        indices = reader.frame_indices(video_id)
        group = reader.group(video_id)
        if "frame" not in group:
            raise ItemError("the frames shard has no 'frame' field for this video", path=str(path))
        ds = group["frame"]
        if len(indices) == 0:
            raise ItemError("the video has no sampled frames in the frames shard", path=str(path))
        if ds.ndim != 4 or ds.shape[-1] != 3 or ds.dtype != np.uint8 or len(ds) != len(indices):
            raise ItemError(f"frames of this video are not n x H x W x 3 uint8 RGB for the "
                            f"{len(indices)} frame indices (got {ds.dtype} {ds.shape})", path=str(path))
        out = align_frames((ds[i] for i in range(len(indices))), indices, cfg)
        attrs = {k: v for k, v in reader.video_attrs(video_id).items() if k in ("fps", "width", "height")}
    out["attrs"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
    return out
