"""Frozen MST++ over every aligned face of a face shard -> one HSI cache shard.

Faces are read from the face store (``face128``, the 128 x 128 alignment, or ``face``), resized
to ``size`` when needed, min-max normalised per face to [0, 1] exactly as MST++'s training
inputs are, and reconstructed in batches (``batch_size`` faces, across videos) by an inference
engine (:func:`make_engine`: torch under ``torch.inference_mode``, on the GPU when one is
present, or OpenVINO on the CPU; fp32, or bf16 when asked). Cubes are clipped to [0, 1] as the
authors' test code does, and written per video as soon as all of its faces are done, through
:class:`~dfdetect.spectral.cache.HSIWriter`; the cache's ``model`` attribute records the engine.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import config as _cfg
from ..determinism import torch_threads
from ..failures import Failures
from ..resume import ResumableShard
from ..store import COMPRESSION, ShardReader
from .cache import HSIWriter

# params schema of the ``hyperspectral`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "variant": _cfg.Choice("smsa", "flexi"),
    "checkpoint": _cfg.PathStr("any"),
    "engine": _cfg.Choice("torch", "openvino"),
    "precision": _cfg.Choice("fp32", "bf16"),
    "field": _cfg.Choice("face128", "face"),
    "size": _cfg.Int(ge=8),
    "batch_size": _cfg.Int(ge=1),
    "device": _cfg.DEVICE,
    "threads": _cfg.Int(ge=0),
    "codec": COMPRESSION,
})

log = logging.getLogger(__name__)


ENGINES = ("torch", "openvino")
PRECISIONS = ("fp32", "bf16")
CHECKPOINT_SUFFIXES = (".pth", ".pt")


def resolve_checkpoint(path: str | Path) -> Path | None:
    """The official MST++ checkpoint named by ``hyperspectral.checkpoint``: a file, or a folder
    holding exactly one ``.pth``/``.pt`` file; None for ``""`` or a folder without one (the
    repository's ``data/mst_checkpoint`` placeholder holds only its README)."""
    if not str(path):
        return None
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: hyperspectral.checkpoint is neither a file nor a folder")
    found = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
    if len(found) > 1:
        raise ValueError(f"{path}: {len(found)} checkpoints ({', '.join(p.name for p in found)}); "
                         "name one in hyperspectral.checkpoint")
    return found[0] if found else None


class BF16Unavailable(RuntimeError):
    """bf16 inference was asked for on a CPU (or under an ISA pin) that cannot run it."""


def make_engine(model, engine: str = "torch", precision: str = "fp32", device: str = "cpu",
                batch_size: int = 8, size: int = 64):
    """``run(x float32 (n, 3, size, size)) -> float32 (n, 31, size, size)`` for frozen MST++.

    - ``torch``: ``torch.inference_mode``; ``bf16`` = ``torch.autocast`` in bfloat16;
    - ``openvino``: the model converted by ``openvino.convert_model`` (traced, no ONNX file) at a
      fixed ``(batch_size, 3, size, size)`` input and compiled for the CPU with
      ``INFERENCE_PRECISION_HINT`` f32 or bf16; a short last batch is zero-padded to
      ``batch_size`` and cut back (every face is computed at the same shape).
    Outputs are not yet clipped (the caller clips)."""
    import torch  # noqa: PLC0415

    if engine not in ENGINES:
        raise ValueError(f"hyperspectral.engine must be one of {ENGINES}, got {engine!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"hyperspectral.precision must be one of {PRECISIONS}, got {precision!r}")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if engine == "torch":
        dev_type = torch.device(device).type

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.autocast(dev_type, dtype=torch.bfloat16,
                                                        enabled=precision == "bf16"):
                return model(torch.from_numpy(x).to(device)).float().cpu().numpy()
        return run
    if str(device) != "cpu":
        raise ValueError(f"hyperspectral.engine openvino runs on the CPU, not {device!r}")
    try:
        import openvino as ov  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("hyperspectral.engine: openvino needs the 'openvino' package "
                          "(requirements/base.txt)") from exc
    example = torch.zeros(int(batch_size), 3, int(size), int(size))
    with torch.no_grad():
        ov_model = ov.convert_model(model, example_input=example)
    try:
        compiled = ov.Core().compile_model(ov_model, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32" if precision == "fp32" else "bf16"})
    except RuntimeError as err:
        if precision == "fp32":
            raise
        import os  # noqa: PLC0415

        pin = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
        raise BF16Unavailable(
            "OpenVINO bf16 could not be compiled on this CPU"
            + (f" (oneDNN ISA pinned to {pin} by dfdetect.determinism: bf16 needs AVX-512 BF16/AMX)"
               if pin else " (it needs AVX-512 BF16 or AMX)")
            + f"; use hyperspectral.precision: fp32 ({str(err).splitlines()[-1][:200]})") from err
    request = compiled.create_infer_request()

    def run_ov(x: np.ndarray) -> np.ndarray:
        n = len(x)
        outs = []
        for i in range(0, n, int(batch_size)):
            chunk = x[i:i + int(batch_size)]
            k = len(chunk)
            if k < int(batch_size):
                chunk = np.concatenate([chunk, np.zeros((int(batch_size) - k, *chunk.shape[1:]),
                                                        np.float32)])
            res = request.infer({0: np.ascontiguousarray(chunk, dtype=np.float32)})
            outs.append(np.asarray(next(iter(res.values())), dtype=np.float32)[:k])
        return np.concatenate(outs) if outs else np.zeros((0, 31, int(size), int(size)), np.float32)
    return run_ov


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
                      failures: Failures | None = None, progress: bool = True,
                      engine: str = "torch", precision: str = "fp32", threads: int = 0) -> dict:
    """Write ``out_path`` (HSI shard) for every face of ``faces_path``; returns a summary.
    ``threads``: torch's thread count while MST++ runs (0: the caller's). MST++'s bytes depend
    on it (1, 2, 4 and 8 threads give four different outputs), so the shared cache needs a
    fixed count to be the same on machines with different core counts."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    failures = failures or Failures("hyperspectral")
    infer = make_engine(model, engine, precision, device, batch_size, size)
    model_info = {**dict(model_info or {}), "engine": engine, "precision": precision}
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
        # clipped to [0, 1] as the authors' test code does (NaN stays NaN: caught downstream)
        return np.clip(infer(x), 0.0, 1.0)

    # an interrupted run's finished batches are reused (dfdetect.resume): the batches are the
    # same in every run (videos in shard order, batch_size faces each), so a batch is recorded
    # under its number and faces, keyed by the params, model, device and the faces shard
    batches = [0]
    resume = ResumableShard(out_path, "hyperspectral",
                            {"params": dict(params or {}), "model": dict(model_info or {}),
                             "size": size, "batch_size": batch_size, "field": field,
                             "device": str(device), "codec": codec},
                            inputs=[faces_path])
    with torch_threads(threads), resume as rs, \
            HSIWriter(out_path, params=params, codec=codec, model_info=model_info) as writer, \
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
    return {"reused_batches": rs.reused, "computed_batches": rs.computed, "faces": n_faces,
            "videos": len(videos), "seconds": seconds,
            "faces_per_s": n_faces / seconds if seconds > 0 else float("nan"), "device": str(device),
            "engine": engine, "precision": precision}
