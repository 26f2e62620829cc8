"""Frozen MST++ over every aligned face of a face shard -> one HSI cache shard.

Faces are read from the face store (``face128``, the 128 x 128 alignment, or ``face``), resized
to ``size`` when needed, min-max normalised per face to [0, 1] exactly as MST++'s training
inputs are, and reconstructed in batches (``batch_size`` faces, across videos) under
``torch.inference_mode`` on the GPU when one is present. Cubes are written per video as soon as
all of its faces are done, through :class:`~dfdetect.spectral.cache.HSIWriter`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import config as _cfg
from ..failures import Failures
from ..resume import ResumableShard
from ..store import COMPRESSION, ShardReader
from .cache import HSIWriter

# params schema of the ``hyperspectral`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "variant": _cfg.Choice("smsa", "flexi"),
    "checkpoint": _cfg.Str(),
    "field": _cfg.Choice("face128", "face"),
    "size": _cfg.Int(ge=8),
    "batch_size": _cfg.Int(ge=1),
    "device": _cfg.DEVICE,
    "threads": _cfg.Int(ge=0),
    "codec": COMPRESSION,
})

log = logging.getLogger(__name__)


def prepare_faces(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 (n, H, W, 3) RGB -> float32 (n, 3, size, size), min-max normalised per face."""
    import cv2  # noqa: PLC0415

    out = np.empty((len(faces), 3, size, size), dtype=np.float32)
    for i, f in enumerate(faces):
        if f.shape[0] != size or f.shape[1] != size:
            f = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA)
        x = f.astype(np.float32)
        lo, hi = float(x.min()), float(x.max())
        out[i] = ((x - lo) / max(hi - lo, 1e-6)).transpose(2, 0, 1)
    return out


def pick_field(reader: ShardReader, video_id: str, preferred: str) -> str:
    fields = reader.fields(video_id)
    if preferred in fields:
        return preferred
    for alt in ("face128", "face"):
        if alt in fields:
            return alt
    raise KeyError(f"{reader.path}: video {video_id!r} has no face field (have {fields})")


def reconstruct_shard(faces_path: str | Path, out_path: str | Path, model, *, size: int = 128,
                      batch_size: int = 8, field: str = "face128", device: str = "cpu",
                      params: Mapping[str, Any] | None = None,
                      model_info: Mapping[str, Any] | None = None, codec=None,
                      failures: Failures | None = None, progress: bool = True) -> dict:
    """Write ``out_path`` (HSI shard) for every face of ``faces_path``; returns a summary."""
    import torch  # noqa: PLC0415
    from tqdm.auto import tqdm  # noqa: PLC0415

    failures = failures or Failures("hyperspectral")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    reader = ShardReader(faces_path)
    videos = reader.videos()
    failures.items = len(videos)
    total = len(reader.index()) if videos else 0
    t0 = time.perf_counter()
    n_faces = 0
    # queue of (video_id, frame_indices, prepared faces); flushed through the model in batches
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []
    results: dict[str, list[np.ndarray]] = {}

    def run_batch(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            xt = torch.from_numpy(x).to(device)
            return model(xt).float().cpu().numpy()

    # an interrupted run's finished batches are reused (dfdetect.resume): the batches are the
    # same in every run (videos in shard order, batch_size faces each), so a batch is recorded
    # under its number and faces, keyed by the params, model, device and the faces shard
    batches = [0]
    resume = ResumableShard(out_path, "hyperspectral",
                            {"params": dict(params or {}), "model": dict(model_info or {}),
                             "size": size, "batch_size": batch_size, "field": field,
                             "device": str(device), "codec": codec},
                            inputs=[faces_path])
    with resume as rs, HSIWriter(out_path, params=params, codec=codec, model_info=model_info) as writer, \
            tqdm(total=total, desc=f"hyperspectral {Path(faces_path).name}", unit="face",
                 disable=not progress) as bar:
        def flush(force: bool) -> None:
            nonlocal n_faces
            while pending and (force or sum(len(p[2]) for p in pending) >= batch_size):
                # gather up to batch_size faces from the queue head
                take, xs = [], []
                need = batch_size
                while pending and need > 0:
                    vid, fr, x = pending[0]
                    k = min(need, len(x))
                    xs.append(x[:k])
                    take.append((vid, k))
                    if k == len(x):
                        pending.pop(0)
                    else:
                        pending[0] = (vid, fr, x[k:])
                    need -= k
                batch_key = [batches[0], take]
                batches[0] += 1
                ok, cubes = rs.load(batch_key)
                if ok:
                    rs.reused += 1
                else:
                    try:
                        cubes = run_batch(np.concatenate(xs))
                    except Exception as exc:  # noqa: BLE001  (recorded per video, never fatal)
                        for vid, _ in take:
                            failures.add_error(vid, exc, path=str(faces_path))
                            results.pop(vid, None)
                        continue
                    rs.save(batch_key, cubes)
                    rs.computed += 1
                pos = 0
                for vid, k in take:
                    if vid in results:
                        results[vid].append(cubes[pos:pos + k])
                    pos += k
                bar.update(len(cubes))
                n_faces += len(cubes)
                finish()

        order: list[tuple[str, np.ndarray]] = []
        field_of: dict[str, int] = {}

        def finish() -> None:
            # write every queued video whose faces are all reconstructed, in input order
            while order:
                vid, fr = order[0]
                got = sum(len(c) for c in results.get(vid, []))
                if vid in results and got < len(fr):
                    return
                order.pop(0)
                if vid in results:
                    writer.add(vid, fr, np.concatenate(results.pop(vid)) if len(fr) else
                               np.zeros((0, 31, size, size), np.float32),
                               attrs={"size": int(size), "field": field_of.get(vid, "")})

        for vid in videos:
            try:
                fr = reader.frame_indices(vid)
                if len(fr) == 0:
                    failures.add(vid, "no aligned faces in this video", path=str(faces_path))
                    continue
                fname = pick_field(reader, vid, field)
                x = prepare_faces(reader.read(vid, fname), size)
            except Exception as exc:  # noqa: BLE001
                failures.add_error(vid, exc, path=str(faces_path))
                continue
            results[vid] = []
            field_of[vid] = fname
            order.append((vid, fr))
            pending.append((vid, fr, x))
            flush(False)
        flush(True)
        finish()
    seconds = time.perf_counter() - t0
    reader.close()
    if rs.reused:
        log.info("resume: %s: %d batches reused, %d computed", out_path, rs.reused, rs.computed)
    return {"reused_batches": rs.reused, "computed_batches": rs.computed, "faces": n_faces, "videos": len(videos), "seconds": seconds,
            "faces_per_s": n_faces / seconds if seconds > 0 else float("nan"), "device": str(device)}
