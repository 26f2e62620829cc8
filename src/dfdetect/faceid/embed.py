"""Face-recognition embeddings of the aligned faces: one vector per stored face.

metric_learning.txt (Kumar & Bhavsar, section III-F) embeds every face with FaceNet (512-d) and
learns a triplet network on top. FaceNet's VGGFace2 weights ship with no installed package
(facenet-pytorch downloads them at run time and unpickles them), so two embedders are offered:

- ``dlib`` (the offline default): dlib's 128-d ResNet face descriptor
  (``dlib_face_recognition_resnet_model_v1.dat`` from ``face-recognition-models``). It needs a
  face and its 68 landmarks: the stored ``face`` crop is used, the landmarks are mapped into it
  by the same similarity transform that made it (recomputed from the stored full-frame
  landmarks and the faces shard's own ``face_size``/``margin``), and dlib cuts its own 150 x 150
  chip (``chip_padding``) from the crop. No frames are read: only ``data/faces``. On the
  astronaut the descriptor from the 224 px / 0.3-margin crop is 0.04 from the one computed on
  the full photo (dlib's same-person threshold is 0.6).
- ``facenet``: InceptionResnetV1 (facenet-pytorch, ``classify=False``), 512-d, unit norm, on the
  ``face`` crop resized to ``facenet_size`` (160) with ``(x - 127.5) / 128``; only from a local
  state-dict file (``facenet_weights``, e.g. ``20180402-114759-vggface2.pt``), read with
  ``weights_only`` (:func:`dfdetect.nn.weights.load_state_dict`), ``logits.*`` dropped. Nothing is
  downloaded; a missing file is an error naming it. The crop is looser than facenet-pytorch's
  own MTCNN crop (margin 0.3 around the aligned face rather than the detector box).

``embedder: auto`` is ``facenet`` when ``facenet_weights`` is set, else ``dlib``.

Output (:func:`embed_shard`): one :class:`dfdetect.store.ShardWriter` shard per faces shard, the
same ``(video_id, frame_index)`` rows, field ``embedding`` float32 ``(n, dim)``, root attrs
``params`` and ``embedder`` (name, dim, weights file and its sha256). A face that cannot be
embedded is a failures row; a video with none left is absent (as in ``align_faces``).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import config as _cfg
from ..determinism import torch_threads
from ..failures import Failures
from ..parallel import imap
from ..store import ShardReader, ShardWriter, file_sha256
from .reader import FIELD

log = logging.getLogger("dfdetect")
STAGE = "face_embeddings"
EMBEDDERS = ("auto", "dlib", "facenet")
DLIB_NAME = "dlib_face_recognition_resnet_model_v1"

# params schema of the ``face_embeddings`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "embedder": _cfg.Choice(*EMBEDDERS),
    "facenet_weights": _cfg.Str(),
    "field": _cfg.Choice("face"),
    "facenet_size": _cfg.Int(ge=32),
    "chip_padding": _cfg.Float(ge=0, le=1),
    "num_jitters": _cfg.Int(ge=0),
    "batch_size": _cfg.Int(ge=1),
    "threads": _cfg.Int(ge=0),
})


@dataclass(frozen=True)
class EmbedConfig:
    embedder: str = "auto"
    facenet_weights: str = ""
    field: str = "face"
    facenet_size: int = 160
    chip_padding: float = 0.25
    num_jitters: int = 0
    batch_size: int = 32
    threads: int = 0

    @classmethod
    def from_params(cls, params: dict | None) -> "EmbedConfig":
        return cls(**_cfg.dataclass_kwargs(cls, params, none_is_empty=("facenet_weights",)))

    def resolved(self) -> str:
        """The embedder that runs: ``auto`` -> ``facenet`` with a weights file, else ``dlib``."""
        if self.embedder not in EMBEDDERS:
            raise ValueError(f"face_embeddings.embedder = {self.embedder!r}: choose one of {', '.join(EMBEDDERS)}")
        if self.embedder == "auto":
            return "facenet" if self.facenet_weights else "dlib"
        return self.embedder

    def to_dict(self) -> dict:
        return asdict(self)




def embedder_info(cfg: EmbedConfig) -> dict:
    """What produced the embeddings (name, dim, weights file, sha256); errors name the file."""
    kind = cfg.resolved()
    if kind == "dlib":
        from ..faces.models import dlib_model_path  # noqa: PLC0415

        path = dlib_model_path("face_recognition")
        return {"name": DLIB_NAME, "dim": 128, "package": "face-recognition-models",
                "file": path.name, "file_sha256": file_sha256(path),
                "note": "offline substitute for FaceNet InceptionResnetV1 VGGFace2 (512-d)"}
    path = facenet_weights_path(cfg.facenet_weights)
    return {"name": "facenet_inception_resnet_v1", "dim": 512, "file": str(path),
            "file_sha256": file_sha256(path), "input_size": int(cfg.facenet_size)}


def facenet_weights_path(value: str) -> Path:
    if not value:
        raise ValueError("face_embeddings.embedder = facenet needs face_embeddings.facenet_weights "
                         "(a local InceptionResnetV1 state dict, e.g. 20180402-114759-vggface2.pt); "
                         "nothing is downloaded")
    path = Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: face_embeddings.facenet_weights: missing file "
                                "(nothing is downloaded; give a local InceptionResnetV1 state dict)")
    return path


# ----------------------------------------------------------------------------- dlib
@functools.lru_cache(maxsize=None)
def _dlib_recognizer():
    import dlib  # noqa: PLC0415

    from ..faces.models import dlib_model_path  # noqa: PLC0415

    return dlib.face_recognition_model_v1(str(dlib_model_path("face_recognition")))


def dlib_descriptor(face: np.ndarray, points: np.ndarray, num_jitters: int = 0,
                    chip_padding: float = 0.25) -> np.ndarray:
    """dlib's 128-d descriptor of ``face`` (uint8 RGB crop) with its 68 ``points`` (crop coords)."""
    import dlib  # noqa: PLC0415

    face = np.ascontiguousarray(face, dtype=np.uint8)
    h, w = face.shape[:2]
    pts = np.asarray(points, np.float64)
    if pts.shape != (68, 2) or not np.isfinite(pts).all():
        raise ValueError(f"landmarks must be 68 finite points, got shape {pts.shape}")
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, w - 1, h - 1),
                                       [dlib.point(int(round(x)), int(round(y))) for x, y in pts])
    desc = _dlib_recognizer().compute_face_descriptor(face, shape, int(num_jitters), float(chip_padding))
    return np.asarray(desc, dtype=np.float32)


def crop_landmarks(landmarks68: np.ndarray, face_size: int, margin: float) -> np.ndarray:
    """The full-frame landmarks mapped into the aligned crop (the transform of ``align_face``)."""
    from ..faces.align import align_matrix, transform_points  # noqa: PLC0415

    m = align_matrix(landmarks68, int(face_size), float(margin))
    return transform_points(m, landmarks68)


def embed_video_dlib(task: tuple[str, str, dict, dict]) -> dict:
    """Unit of parallel work: (faces shard path, video_id, config, align params) -> rows.

    Returns ``frame_index``, ``embedding`` (n, 128) of the faces that could be embedded, and
    ``misses`` [(frame_index, reason)] for the others."""
    path, vid, cfg_d, align = task
    cfg = EmbedConfig(**cfg_d)
    with ShardReader(path) as reader:
        frames = reader.frame_indices(vid)
        faces = reader.read(vid, cfg.field)
        lms = reader.read(vid, "landmarks")
    size, margin = int(align.get("face_size", faces.shape[1])), float(align.get("margin", 0.3))
    keep, embs, misses = [], [], []
    for i, fi in enumerate(frames):
        try:
            if faces[i].shape[0] != size:
                raise ValueError(f"face is {faces[i].shape[0]} px, the shard's face_size is {size}")
            if lms[i].shape != (68, 2) or not np.isfinite(lms[i]).all():
                raise ValueError(f"stored landmarks must be 68 finite points (shape {lms[i].shape})")
            pts = crop_landmarks(lms[i], size, margin)
            e = dlib_descriptor(faces[i], pts, cfg.num_jitters, cfg.chip_padding)
            if not np.isfinite(e).all():
                raise ValueError("non-finite descriptor")
        except Exception as exc:  # noqa: BLE001 - one face's failure is a failures row
            misses.append((int(fi), f"face not embedded: {type(exc).__name__}: {exc}"))
            continue
        keep.append(int(fi))
        embs.append(e)
    emb = np.stack(embs).astype(np.float32) if embs else np.zeros((0, 128), np.float32)
    return {"frame_index": np.asarray(keep, np.int64), "embedding": emb, "misses": misses}


# ----------------------------------------------------------------------------- FaceNet
def load_facenet(weights: str | Path):
    """InceptionResnetV1 (classify=False, eval) with a local state dict read ``weights_only``."""
    from ..nn.compat import ensure_torchvision  # noqa: PLC0415
    from ..nn.weights import load_state_dict  # noqa: PLC0415

    path = facenet_weights_path(str(weights))
    ensure_torchvision()
    from facenet_pytorch import InceptionResnetV1  # noqa: PLC0415

    model = InceptionResnetV1(pretrained=None, classify=False).eval()
    state = load_state_dict(path)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: not an InceptionResnetV1 state dict ({str(exc).splitlines()[0]})") from None
    return model


def facenet_embed(model, faces: np.ndarray, size: int = 160, batch_size: int = 32) -> np.ndarray:
    """(n, 512) unit-norm embeddings of uint8 RGB faces resized to ``size`` (INTER_AREA)."""
    import cv2  # noqa: PLC0415
    import torch  # noqa: PLC0415

    out = []
    with torch.no_grad():
        for s in range(0, len(faces), int(batch_size)):
            chunk = [cv2.resize(np.asarray(f), (size, size), interpolation=cv2.INTER_AREA)
                     for f in faces[s:s + int(batch_size)]]
            x = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float()
            x = (x - 127.5) / 128.0
            out.append(model(x).float().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 512), np.float32)


# ----------------------------------------------------------------------------- the stage body
def embed_shard(faces_path: str | Path, out_path: str | Path, params: dict,
                failures: Failures | None = None, executor: str = "process",
                workers: int | None = None, progress: bool = True,
                address: str | None = None) -> dict:
    """Embed every face of ``faces_path`` into ``out_path`` (written atomically); counts.

    dlib runs in parallel over videos (``executor``); FaceNet runs in this process, in batches
    (``threads`` torch threads). ``failures`` receives a row per face or video that failed."""
    cfg = EmbedConfig.from_params(params)
    kind = cfg.resolved()
    info = embedder_info(cfg)          # before any work: a missing weights file stops here
    faces_path = Path(faces_path)
    failures = Failures(STAGE) if failures is None else failures
    with ShardReader(faces_path) as reader:
        videos = reader.videos()
        align = dict(reader.attrs.get("params") or {})
    failures.items = len(videos)
    counts = {"videos": len(videos), "faces": 0, "misses": 0, "videos_without_embedding": 0,
              "embedder": info["name"], "dim": info["dim"]}
    t0 = time.perf_counter()
    if kind == "dlib":
        tasks = [(str(faces_path), vid, cfg.to_dict(), align) for vid in videos]
        results = ((vid, res, err) for (_, vid, _, _), res, err in
                   imap(embed_video_dlib, tasks, executor=executor, workers=workers,
                        desc=f"{STAGE} {faces_path.name}", progress=progress,
                        **({"address": address} if address else {})))
    else:
        results = _facenet_results(faces_path, videos, cfg)
    written = cfg.to_dict()
    with ShardWriter(out_path, stage=STAGE, params=written, attrs={"embedder": info, "field": FIELD}) as w:
        for vid, res, err in results:
            if err is not None:
                failures.add_error(vid, err, path=str(faces_path))
                continue
            for fi, reason in res["misses"]:
                failures.add(vid, reason, path=str(faces_path), frame_index=fi, warn=False)
            counts["misses"] += len(res["misses"])
            if len(res["frame_index"]) == 0:
                counts["videos_without_embedding"] += 1
                failures.add(vid, "no face of the video could be embedded", path=str(faces_path))
                continue
            w.add_video(vid, res["frame_index"], **{FIELD: res["embedding"]})
            counts["faces"] += len(res["frame_index"])
    counts["seconds"] = time.perf_counter() - t0
    log.info("%s: %d faces of %d videos embedded with %s (%d-d) in %.1f s; %d faces and %d videos failed",
             STAGE, counts["faces"], counts["videos"], info["name"], info["dim"], counts["seconds"],
             counts["misses"], counts["videos_without_embedding"])
    return counts


def _facenet_results(faces_path: Path, videos: list[str], cfg: EmbedConfig):
    with torch_threads(cfg.threads):
        model = load_facenet(cfg.facenet_weights)
        with ShardReader(faces_path) as reader:
            for vid in videos:
                try:
                    frames = reader.frame_indices(vid)
                    emb = facenet_embed(model, reader.read(vid, cfg.field), cfg.facenet_size, cfg.batch_size)
                    ok = np.isfinite(emb).all(axis=1)
                    misses = [(int(fi), "face not embedded: non-finite FaceNet output")
                              for fi in frames[~ok]]
                    yield vid, {"frame_index": frames[ok], "embedding": emb[ok], "misses": misses}, None
                except Exception as exc:  # noqa: BLE001 - one video's failure is a failures row
                    yield vid, None, exc
