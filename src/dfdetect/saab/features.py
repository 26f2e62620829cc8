"""The ``saab_features`` stage's library: fit one PixelHop++ per facial region on train patches,
then transform every face shard into a Saab feature shard.

Face store field ``patches``: uint8 ``(n, R, 32, 32, 3)`` with regions in the order of
:data:`PATCH_REGIONS` (left eye, right eye, mouth). The Saab store has, per (video, frame), one
float field per region and hop, ``<region>_hop<h>`` shaped ``(H_h, W_h, K_h)``; its root
attributes record the fitted trees' summaries and kernel counts (``saab_parameters``).

Frames whose patches reach outside the video frame are dropped, as the authors drop them
(their patch crop fails): ``align_faces`` fills what lies outside the frame with zeros, and a
frame cut through one eye gave a 47 % black patch. Which frames: recomputed from the stored
68 landmarks, the frame size and the same DefakeHop alignment (:func:`patch_outside_fraction`),
so the face store is not rebuilt. A dropped frame is a row of the failures table (frame index
and how much of which patch was outside) and counts in the Saab store (each video's
``dropped_outside_frame`` attribute; videos left with no frame are in the root attribute
``videos_dropped_outside_frame``, video -> frames); neither the PixelHop fit nor the detector
sees it (``dfdetect.detectors.defakehop.dropped_outside_frame`` sums them per split).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..failures import Failures
from ..parallel import EXECUTOR, imap
from ..store import COMPRESSION, ShardReader, ShardWriter, Store, shard_files
from .pixelhop import PixelHop

log = logging.getLogger(__name__)

PATCH_REGIONS = ("left_eye", "right_eye", "mouth")
PIXELHOP_KEYS = ("num_hops", "kernel_size", "split_thr", "keep_thr", "max_channels", "pool",
                 "bias", "fit_max_images", "batch_images", "dtype")

_PER_HOP = _cfg.AnyOf(_cfg.Int(ge=1), _cfg.List(_cfg.Int(ge=1), min_len=1))
# params schema of the ``saab`` section (saab_features; checked by the stage before any work)
PARAMS = _cfg.Section({
    "regions": _cfg.List(_cfg.Choice(*PATCH_REGIONS), min_len=1, unique=True),
    "num_hops": _cfg.Int(ge=1, le=5),
    "kernel_size": _PER_HOP,
    "max_channels": _PER_HOP,
    "split_thr": _cfg.Float(ge=0),
    "keep_thr": _cfg.Float(ge=0),
    "pool": _cfg.Int(ge=1),
    "bias": _cfg.Bool(),
    "fit_max_images": _cfg.Int(ge=1),
    "batch_images": _cfg.Int(ge=1),
    "batch_frames": _cfg.Int(ge=1),
    "dtype": _cfg.Choice("float32", "float64"),
    "compression": COMPRESSION,
    "executor": EXECUTOR,
})


def pixelhop_kwargs(cfg: Mapping, seed: int) -> dict:
    kw = {k: cfg[k] for k in PIXELHOP_KEYS if k in cfg}
    kw["seed"] = int(seed)
    return kw


def region_index(region: str) -> int:
    if region not in PATCH_REGIONS:
        raise ValueError(f"unknown region {region!r}; the face store has {PATCH_REGIONS}")
    return PATCH_REGIONS.index(region)


# a patch pixel whose sampling point lies more than this (pixels) outside the frame is outside
# (bilinear sampling then takes more than half of it from the zero border)
OUTSIDE_TOLERANCE = 0.5


def patch_outside_fraction(landmarks: np.ndarray, width: float, height: float, face_size: int,
                           patch_size: int) -> np.ndarray:
    """``(n, R)``: the share of each DefakeHop patch's pixels sampled outside a ``width`` x
    ``height`` frame (``align_faces`` zero-fills them), regions in :data:`PATCH_REGIONS` order.

    Recomputes ``dfdetect.faces.align.defakehop_align``'s patch transforms from the 68
    landmarks: patch pixel ``q`` samples the frame at ``M_p^-1 q`` (``M_p`` the eyes-level
    similarity shifted to the patch's landmark-group centre)."""
    from ..faces.align import PATCH_GROUPS, eyes_level_matrix, transform_points  # noqa: PLC0415

    lms = np.asarray(landmarks, dtype=np.float64).reshape(-1, 68, 2)
    p = int(patch_size)
    v, u = np.mgrid[0:p, 0:p]
    grid = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)      # (p*p, 2) x, y
    half = (p - 1) / 2.0
    out = np.zeros((len(lms), len(PATCH_GROUPS)))
    lo, hi_x, hi_y = -OUTSIDE_TOLERANCE, width - 1 + OUTSIDE_TOLERANCE, height - 1 + OUTSIDE_TOLERANCE
    for i, lm in enumerate(lms):
        m = eyes_level_matrix(lm, int(face_size))
        pts = transform_points(m, lm)
        a_inv = np.linalg.inv(m[:, :2])
        for r, (_, group) in enumerate(PATCH_GROUPS):
            # patch pixel q = A x + t - (c - half)  =>  x = A^-1 (q + c - half - t)
            src = (grid + (pts[group].mean(0) - half) - m[:, 2]) @ a_inv.T
            outside = ((src[:, 0] < lo) | (src[:, 0] > hi_x) | (src[:, 1] < lo) | (src[:, 1] > hi_y))
            out[i, r] = outside.mean()
    return out


def _face_size(reader: ShardReader, vid: str, default: int = 128) -> int:
    """align_faces' ``defakehop_size`` (its params in the shard), else the face128 field's size."""
    params = reader.attrs.get("params")
    size = params.get("defakehop_size") if isinstance(params, dict) else None
    if size:
        return int(size)
    group = reader.group(vid)
    return int(group["face128"].shape[1]) if "face128" in group else default


def frames_inside(reader: ShardReader, vid: str, regions: Iterable[str], patch_size: int
                  ) -> tuple[np.ndarray, list[str]] | None:
    """``(keep mask, reasons)`` of a video's frames: a frame is kept when every patch of
    ``regions`` lies inside the frame; ``reasons`` says, per dropped frame, which patches were
    how much outside. None when the face store cannot tell (no ``landmarks`` field or no frame
    size), as in hand-made stores.

    The frame size is the ``frame_width``/``frame_height`` video attribute when the face store
    has it, else ``width``/``height`` (the stored frame's size unless ``sample_frames.max_side``
    downscaled the frames)."""
    attrs = reader.video_attrs(vid)
    width = attrs.get("frame_width", attrs.get("width"))
    height = attrs.get("frame_height", attrs.get("height"))
    if "landmarks" not in reader.fields(vid) or not width or not height or int(width) <= 0:
        return None
    lms = reader.read(vid, "landmarks")
    frac = patch_outside_fraction(lms, float(width), float(height), _face_size(reader, vid), patch_size)
    cols = [region_index(r) for r in regions]
    frac = frac[:, cols]
    keep = ~(frac > 0).any(axis=1)
    reasons = []
    for row in np.flatnonzero(~keep):
        parts = [f"{r} {frac[row, j]:.0%}" for j, r in enumerate(regions) if frac[row, j] > 0]
        reasons.append(f"patch outside the frame ({', '.join(parts)} of its pixels, zero-filled "
                       f"by align_faces; frame {int(width)}x{int(height)}): frame dropped")
    return keep, reasons


def train_items(faces_dir: str | Path, manifest: pd.DataFrame, max_items: int, seed: int,
                regions: Iterable[str] = PATCH_REGIONS) -> pd.DataFrame:
    """The train frames of the face store whose patches of ``regions`` lie inside the frame
    (:func:`frames_inside`), subsampled (seeded, sorted) to ``max_items``."""
    store = Store(faces_dir)
    index = store.index()
    train = manifest.loc[manifest["split"] == "train", ["video_id"]]
    items = index.merge(train, on="video_id", how="inner")
    items = items.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    keep = np.ones(len(items), dtype=bool)
    regions = list(regions)
    for vid, grp in items.groupby("video_id", sort=False):
        reader = store.shard_for(vid)
        if "patches" not in reader.fields(vid):
            continue
        res = frames_inside(reader, vid, regions, int(reader.group(vid)["patches"].shape[2]))
        if res is not None:
            keep[grp.index.to_numpy()] = res[0][grp["row"].to_numpy()]
    store.close()
    items = items[keep].reset_index(drop=True)
    if max_items and len(items) > max_items:
        rng = np.random.default_rng(seed)
        items = items.iloc[np.sort(rng.choice(len(items), int(max_items), replace=False))]
    return items.reset_index(drop=True)


def read_patches(faces_dir: str | Path, items: pd.DataFrame) -> np.ndarray:
    """uint8 (n, R, H, W, 3) patches of ``items`` (video_id, row), in order."""
    store = Store(faces_dir)
    parts = []
    for vid, grp in items.groupby("video_id", sort=False):
        # one read per video (its chunks in order) is far cheaper than one read per row
        parts.append(store.read(vid, "patches")[grp["row"].to_numpy()])
    store.close()
    if not parts:
        raise ValueError(f"{faces_dir}: no train patches to fit the Saab transforms on")
    return np.concatenate(parts, axis=0)


def _fit_one(task: tuple[np.ndarray, dict]) -> PixelHop:
    x, kwargs = task
    return PixelHop(**kwargs).fit(x)


def fit_region_models(patches: np.ndarray, regions: Iterable[str], cfg: Mapping, seed: int,
                      executor: str = "serial", workers: int | None = None) -> dict[str, PixelHop]:
    """One PixelHop per region, fitted on that region's train patches (regions in parallel
    over ``executor``; the fitted trees come back in memory, nothing is written)."""
    from ..parallel import imap  # noqa: PLC0415

    regions = list(regions)
    kwargs = pixelhop_kwargs(cfg, seed)
    tasks = [(np.ascontiguousarray(patches[:, region_index(r)]), kwargs) for r in regions]
    models = {}
    results = imap(_fit_one, tasks, executor=executor, workers=workers, desc="saab fit",
                   progress=False)
    for region, (task, model, err) in zip(regions, results):
        if err is not None:
            raise RuntimeError(f"fitting the PixelHop of {region} failed: {err}") from err
        models[region] = model
        log.info("saab: %s fitted on %d patches: %s", region, len(task[0]),
                 [(s["hop"], s["output_channels"]) for s in model.summary()])
    return models


def save_models(models: Mapping[str, PixelHop], directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for region, model in models.items():
        model.save(directory / region)


def load_models(directory: str | Path, regions: Iterable[str]) -> dict[str, PixelHop]:
    return {r: PixelHop.load(Path(directory) / r) for r in regions}


def kernel_counts(models: Mapping[str, PixelHop]) -> dict[str, int]:
    return {f"{r}_{hop}": n for r, m in models.items() for hop, n in m.num_parameters().items()}


def transform_patches(models: Mapping[str, PixelHop], patches: np.ndarray) -> dict[str, np.ndarray]:
    """``{"<region>_hop<h>": (n, H_h, W_h, K_h)}`` for a batch of (n, R, H, W, 3) patches."""
    out = {}
    for region, model in models.items():
        for h, arr in enumerate(model.transform(patches[:, region_index(region)]), start=1):
            out[f"{region}_hop{h}"] = arr
    return out


def transform_shard(faces_shard: str | Path, out_path: str | Path, model_dir: str | Path,
                    regions: Iterable[str], stage_params: Mapping | None = None,
                    batch_frames: int = 2048, compression=None) -> Failures:
    """Transform every video of one face shard; write the Saab shard atomically.

    Videos are transformed in batches of about ``batch_frames`` frames (the matrix products are
    large enough to be efficient, memory stays bounded). A video whose patches are unreadable or
    malformed is recorded in the returned failures and left out; so is each frame with a patch
    outside the video frame (:func:`frames_inside`), and a video left with no frame.
    """
    regions = list(regions)
    models = load_models(model_dir, regions)
    failures = Failures("saab_features")
    reader = ShardReader(faces_shard)
    expected = models[regions[0]].input_shape_
    # first pass (landmarks and attributes only): which videos and frames are written
    todo: list[tuple[str, np.ndarray, np.ndarray, int]] = []
    emptied: dict[str, int] = {}
    dropped = 0
    failures.items = len(reader.videos())
    for vid in sorted(reader.videos()):
        try:
            frames = reader.frame_indices(vid)
            if "patches" not in reader.fields(vid):
                raise ValueError("no 'patches' field")
            shape = reader.group(vid)["patches"].shape
            if len(shape) != 5 or tuple(shape[2:]) != tuple(expected) or shape[1] < len(PATCH_REGIONS):
                raise ValueError(f"patches shaped {shape}, expected (n, 3, {expected})")
            inside = frames_inside(reader, vid, regions, int(shape[2])) if len(frames) else None
        except Exception as err:  # noqa: BLE001  (recorded, never fatal)
            failures.add(vid, f"unreadable patches: {type(err).__name__}: {err}", path=str(faces_shard))
            continue
        if len(frames) == 0:
            continue
        keep = np.ones(len(frames), dtype=bool) if inside is None else inside[0]
        dropped += int((~keep).sum())
        if inside is not None:
            for fi, reason in zip(frames[~keep], inside[1]):
                failures.add(vid, reason, path=str(faces_shard), frame_index=int(fi), warn=False)
        if not keep.any():
            failures.add(vid, f"every one of its {len(frames)} frames has a patch outside the video "
                              "frame (dropped)", path=str(faces_shard))
            emptied[vid] = len(frames)
            continue
        todo.append((vid, frames, keep, int((~keep).sum())))
    if dropped:
        log.info("saab_features: %s: %d frames dropped (a patch outside the frame), %d videos emptied",
                 Path(faces_shard).name, dropped, len(emptied))
    attrs = {"saab_parameters": kernel_counts(models),
             "pixelhop": {r: m.summary() for r, m in models.items()},
             "regions": regions,
             "frames_dropped_outside_frame": int(dropped),
             "videos_dropped_outside_frame": emptied}
    with ShardWriter(out_path, stage="saab_features", params=dict(stage_params or {}),
                     default_compression="none" if compression is None else compression,
                     attrs=attrs) as writer:
        pending: list[tuple[str, np.ndarray, np.ndarray, int]] = []
        n_pending = 0

        def flush():
            nonlocal pending, n_pending
            if not pending:
                return
            feats = transform_patches(models, np.concatenate([p for _, _, p, _ in pending]))
            start = 0
            for vid, frames, p, n_dropped in pending:
                sl = slice(start, start + len(p))
                writer.add_video(vid, frames, attrs={"dropped_outside_frame": n_dropped},
                                 **{k: v[sl] for k, v in feats.items()})
                start += len(p)
            pending, n_pending = [], 0

        for vid, frames, keep, n_dropped in todo:
            try:
                p = reader.read(vid, "patches")
                if p.ndim != 5 or tuple(p.shape[2:]) != tuple(expected) or p.shape[1] < len(PATCH_REGIONS):
                    raise ValueError(f"patches shaped {p.shape}, expected (n, 3, {expected})")
            except Exception as err:  # noqa: BLE001  (recorded, never fatal)
                failures.add(vid, f"unreadable patches: {type(err).__name__}: {err}", path=str(faces_shard))
                continue
            pending.append((vid, frames[keep], p[keep], n_dropped))
            n_pending += int(keep.sum())
            if n_pending >= batch_frames:
                flush()
        flush()
    reader.close()
    return failures


def fit(faces_dir: str | Path, manifest: pd.DataFrame, model_dir: str | Path, cfg: Mapping, seed: int,
        executor: str = "process", workers: int | None = None) -> dict:
    """Fit one PixelHop++ per region on train patches (at most ``fit_max_images`` frames,
    seeded) and save the trees to ``model_dir``; returns a summary."""
    regions = list(cfg.get("regions", PATCH_REGIONS))
    items = train_items(faces_dir, manifest, int(cfg.get("fit_max_images", 10000)), seed, regions)
    patches = read_patches(faces_dir, items)
    models = fit_region_models(patches, regions, cfg, seed, executor=executor, workers=workers)
    del patches
    save_models(models, model_dir)
    return {"regions": regions, "train_frames": len(items)}


def _transform_task(shard: Path, out_dir: Path, model_dir: Path, regions, params, batch_frames,
                    compression) -> tuple[list[dict], int]:
    failures = transform_shard(shard, out_dir / shard.name, model_dir, regions, stage_params=params,
                               batch_frames=batch_frames, compression=compression)
    return failures.rows, int(failures.items or 0)


def transform_store(faces_dir: str | Path, out_dir: str | Path, model_dir: str | Path, cfg: Mapping,
                    executor: str = "process", workers: int | None = None) -> tuple[Failures, int]:
    """Transform every face shard of ``faces_dir`` with the trees fitted in ``model_dir`` into
    ``out_dir`` (same shard names; stale shards there removed). Returns the failures (a shard
    that failed whole has video_id ``*``) and the number of shards."""
    from functools import partial  # noqa: PLC0415

    regions = list(cfg.get("regions", PATCH_REGIONS))
    missing = [r for r in regions if not (Path(model_dir) / f"{r}.json").exists()]
    if missing:
        raise FileNotFoundError(f"{model_dir}: no fitted PixelHop for regions {missing} "
                                "(run the saab_features stage on the training DAG first)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_files(out_dir):
        stale.unlink()
    shards = shard_files(faces_dir)
    fn = partial(_transform_task, out_dir=out_dir, model_dir=Path(model_dir), regions=regions,
                 params=dict(cfg), batch_frames=int(cfg.get("batch_frames", 2048)),
                 compression=cfg.get("compression", "none"))
    failures = Failures("saab_features", items=0)
    for shard, result, err in imap(fn, shards, executor=executor, workers=workers, desc="saab_features"):
        if err is not None:
            failures.add("*", f"shard failed: {type(err).__name__}: {err}", path=str(shard))
        else:
            rows, n_items = result
            failures.rows.extend(rows)
            failures.items += n_items
    return failures, len(shards)
