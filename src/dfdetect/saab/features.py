"""The ``saab_features`` stage's library: fit one PixelHop++ per facial region on train patches,
then transform every face shard into a Saab feature shard.

Face store field ``patches``: uint8 ``(n, R, 32, 32, 3)`` with regions in the order of
:data:`PATCH_REGIONS` (left eye, right eye, mouth). The Saab store has, per (video, frame), one
float field per region and hop, ``<region>_hop<h>`` shaped ``(H_h, W_h, K_h)``; its root
attributes record the fitted trees' summaries and kernel counts (``saab_parameters``).
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


def train_items(faces_dir: str | Path, manifest: pd.DataFrame, max_items: int, seed: int) -> pd.DataFrame:
    """The train frames of the face store, subsampled (seeded, sorted) to ``max_items``."""
    index = Store(faces_dir).index()
    train = manifest.loc[manifest["split"] == "train", ["video_id"]]
    items = index.merge(train, on="video_id", how="inner")
    items = items.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
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
    malformed is recorded in the returned failures and left out.
    """
    regions = list(regions)
    models = load_models(model_dir, regions)
    failures = Failures("saab_features")
    reader = ShardReader(faces_shard)
    expected = models[regions[0]].input_shape_
    attrs = {"saab_parameters": kernel_counts(models),
             "pixelhop": {r: m.summary() for r, m in models.items()},
             "regions": regions}
    with ShardWriter(out_path, stage="saab_features", params=dict(stage_params or {}),
                     default_compression="none" if compression is None else compression,
                     attrs=attrs) as writer:
        pending: list[tuple[str, np.ndarray, np.ndarray]] = []
        n_pending = 0

        def flush():
            nonlocal pending, n_pending
            if not pending:
                return
            feats = transform_patches(models, np.concatenate([p for _, _, p in pending]))
            start = 0
            for vid, frames, p in pending:
                sl = slice(start, start + len(p))
                writer.add_video(vid, frames, **{k: v[sl] for k, v in feats.items()})
                start += len(p)
            pending, n_pending = [], 0

        failures.items = len(reader.videos())
        for vid in sorted(reader.videos()):
            try:
                frames = reader.frame_indices(vid)
                if "patches" not in reader.fields(vid):
                    raise ValueError("no 'patches' field")
                p = reader.read(vid, "patches")
                if p.ndim != 5 or tuple(p.shape[2:]) != tuple(expected) or p.shape[1] < len(PATCH_REGIONS):
                    raise ValueError(f"patches shaped {p.shape}, expected (n, 3, {expected})")
            except Exception as err:  # noqa: BLE001  (recorded, never fatal)
                failures.add(vid, f"unreadable patches: {type(err).__name__}: {err}", path=str(faces_shard))
                continue
            if len(frames) == 0:
                continue
            pending.append((vid, frames, p))
            n_pending += len(p)
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
    items = train_items(faces_dir, manifest, int(cfg.get("fit_max_images", 10000)), seed)
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
