"""HyperFake (Shekar, Soni, Kanhangad): hyperspectral reconstruction + spectral attention + EfficientNet-B0.

Input: the HSI cache (``data/hsi``; 31-band MST++ cubes of every aligned face, written by the
``hyperspectral`` stage, frozen and never retrained here). The classifier is

1. per-band standardisation with per-band statistics of the TRAIN faces only (the cubes the
   classifier trains on; validation and test faces never enter them);
2. the spectral attention module (paper §IV-C): each band i is a token X_i (its map average-
   pooled to ``pool`` x ``pool`` features); ``SA(X) = softmax((X W_Q)(X W_K)^T / sqrt(d)) (X W_V)``
   (Eq. 2) over the 31 bands. The 31 x 31 attention mixes the band maps (a residual
   recalibration of the cube, ``H'_i = H_i + sum_j A_ij H_j``) and SA(X) scores each band for
   each output channel; the weights ``alpha = softmax_i(w_c,i + score_c,i)`` (a learned prior
   plus the per-face attention score) give the 3-channel input ``F_c = sum_i alpha_c,i H'_i``
   (Eq. 3);
3. EfficientNet-B0 (timm) with one logit, ImageNet-initialised where weights can be had
   (offline: EfficientNet-Lite0's ImageNet weights mapped into B0 by :mod:`dfdetect.nn.weights`;
   ``init_info()`` says which);
4. BCEWithLogitsLoss, Adam with cosine decay (paper §IV-D, §IV-F), via :mod:`dfdetect.nn.train`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..nn.augment import CHECKS as AUGMENT_CHECKS
from .base import TRAINING_CHECKS, DetectorData, TorchDetector, empty_scores, register
from .rgb_cnn import LITE_ARCHS

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "arch": "efficientnet_b0",
    "image_size": 0,            # 0 = the cached cube's size; else resize the 3-channel map
    "attn_dim": 32,             # d of Eq. 2
    "pool": 8,                  # band token = band map average-pooled to pool x pool
    "out_channels": 3,          # Eq. 3 reduces 31 bands to this many channels
    "epochs": 40,               # recipe: up to 40 epochs, early stopping after 5 (the demo: 3)
    "batch_size": 16,
    "eval_batch_size": 64,
    "lr": 3.0e-4,
    "weight_decay": 0.0,
    "optimizer": "adam",        # paper: Adam
    "scheduler": "cosine",      # paper: cosine decay
    "min_lr_ratio": 0.01,
    "pos_weight": "auto",
    "patience": 5,
    "monitor": "val_auc",
    "grad_clip": 0.0,
    "hflip": 0.5,
    # training recipe of the shared loop (see rgb_cnn / README "Training recipes"): on 31-band
    # cubes only the spatial augmentations apply (resize, blur; JPEG, colour and the video codec
    # act on RGB pixels, before MST++, and are refused here), self-blended fakes are not offered
    "augment": {"resize": 0.3, "resize_scale": [0.5, 1.0], "blur": 0.3, "blur_sigma": [0.2, 1.5]},
    "sampling": "balanced",     # balanced | shuffle
    "drop_rate": 0.2,
    "pretrained": "imagenet",   # imagenet | none | <path>
    "standin": "efficientnet_lite0",  # offline ImageNet stand-in of arch ("" = partial Lite0 tensors)
    "hub": "auto",
    "max_train_frames": 0,      # recipe: all (the demo: 256)
    "max_val_frames": 0,
    "num_workers": 0,
    "num_threads": 0,
    "device": "auto",
    "deterministic": True,
}


def _finite_band_stats(shard) -> dict:
    """Band statistics of one HSI shard over its finite cubes only, accumulated video by video
    in the shard's index order, as :class:`~dfdetect.spectral.cache.HSIWriter` does."""
    from ..spectral.cache import FIELD, BandStats  # noqa: PLC0415

    index = shard.index()
    stats = None
    for vid in pd.unique(index["video_id"]):
        cubes = shard.group(vid)[FIELD][()]
        if stats is None:
            stats = BandStats(cubes.shape[1])
        finite = np.isfinite(cubes.reshape(len(cubes), -1)).all(axis=1)
        stats.update(cubes[finite])
    return stats.to_dict() if stats is not None else {"count": 0}


def _torch_modules():
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    class SpectralAttention(nn.Module):
        """Eq. 2 attention over the bands and Eq. 3 weighted reduction to ``out_channels``."""

        def __init__(self, bands: int = 31, d: int = 32, pool: int = 8, out_channels: int = 3):
            super().__init__()
            self.bands, self.d, self.pool, self.out_channels = bands, d, pool, out_channels
            f = pool * pool
            self.w_q = nn.Linear(f, d, bias=False)
            self.w_k = nn.Linear(f, d, bias=False)
            self.w_v = nn.Linear(f, d, bias=False)
            self.score = nn.Linear(d, out_channels)
            self.mix_gate = nn.Parameter(torch.zeros(1))      # residual recalibration strength
            # prior weights: channel c starts centred on the blue / green / red thirds of 400-700 nm
            centre = torch.linspace(0, bands - 1, out_channels + 2)[1:-1].flip(0)
            idx = torch.arange(bands, dtype=torch.float32)
            self.alpha_logits = nn.Parameter(-((idx[None] - centre[:, None]) / (bands / 6)) ** 2)
            self.norm_mean = nn.Parameter(torch.zeros(bands), requires_grad=False)
            self.norm_std = nn.Parameter(torch.ones(bands), requires_grad=False)

        def attention(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """(A (b, bands, bands), alpha (b, out, bands)) for standardised cubes ``h``."""
            x = F.adaptive_avg_pool2d(h, self.pool).flatten(2)                # b, bands, f
            q, k, v = self.w_q(x), self.w_k(x), self.w_v(x)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.d), dim=-1)
            sa = a @ v                                                        # Eq. 2
            alpha = torch.softmax(self.alpha_logits[None] + self.score(sa).transpose(1, 2), dim=-1)
            return a, alpha

        def forward(self, cube: torch.Tensor) -> torch.Tensor:
            h = (cube - self.norm_mean[:, None, None]) / self.norm_std[:, None, None]
            b, c, hh, ww = h.shape
            a, alpha = self.attention(h)
            flat = h.reshape(b, c, hh * ww)
            refined = flat + self.mix_gate * (a @ flat)                       # recalibrated bands
            return (alpha @ refined).reshape(b, self.out_channels, hh, ww)   # Eq. 3

    class HyperFakeNet(nn.Module):
        def __init__(self, attn: SpectralAttention, backbone: nn.Module, image_size: int = 0):
            super().__init__()
            self.spectral = attn
            self.backbone = backbone
            self.image_size = int(image_size)
            self.bn = nn.BatchNorm2d(attn.out_channels)                      # scale for the CNN

        def forward(self, cube: torch.Tensor) -> torch.Tensor:
            x = self.bn(self.spectral(cube))
            if self.image_size and x.shape[-1] != self.image_size:
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                  align_corners=False)
            return self.backbone(x)

    return SpectralAttention, HyperFakeNet


class HSIDataset:
    """``(cube float32 (31, H, W), y, i)`` of HSI-cache items (one chunk read each)."""

    def __init__(self, hsi_dir: str | Path, items: pd.DataFrame, hflip: float = 0.0, seed: int = 0,
                 augment: dict | None = None):
        from ..spectral.cache import HSICache  # noqa: PLC0415

        self.cache = HSICache(hsi_dir)
        df = items.reset_index(drop=True)
        self.video_ids = df["video_id"].astype(str).tolist()
        self.shards = df["shard"].astype(np.int64).to_numpy()
        self.rows = df["row"].astype(np.int64).to_numpy()
        self.labels = (df["y"].astype(np.float32).to_numpy() if "y" in df.columns
                       else np.full(len(df), np.nan, np.float32))
        self.hflip, self.seed, self.epoch = float(hflip), int(seed), 0
        from ..nn.augment import Augment  # noqa: PLC0415

        self.augment = Augment(augment)

    def __len__(self) -> int:
        return len(self.video_ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int):
        import torch  # noqa: PLC0415

        i = int(i)
        if i < 0 or i >= len(self):
            raise IndexError(i)
        x = self.cache.read(self.video_ids[i], int(self.rows[i]), shard=int(self.shards[i]))
        if not bool(torch.isfinite(x).all()):
            # items come from HyperFake._items (finite band means): a cube that is not finite
            # here contradicts its stored band mean
            raise ValueError(f"{self.cache.store.shards[int(self.shards[i])].path}: cube of "
                             f"{self.video_ids[i]!r} row {int(self.rows[i])} holds NaN/inf but its "
                             "stored band mean is finite (inconsistent HSI cache)")
        rng = np.random.default_rng([self.seed, self.epoch, i])
        if self.hflip > 0 and rng.random() < self.hflip:
            x = x.flip(-1).contiguous()
        if self.augment.active:                 # spatial ones only (resize, blur), band by band
            x = torch.from_numpy(np.ascontiguousarray(
                self.augment(x.numpy().transpose(1, 2, 0), rng).transpose(2, 0, 1)))
        return x, self.labels[i], i


@register("hyperfake")
class HyperFake(TorchDetector):
    inputs: ClassVar[tuple[str, ...]] = ("hsi",)
    level: ClassVar[str] = "frame"
    paper: ClassVar[str] = "hyperfake.txt"
    defaults: ClassVar[dict] = DEFAULTS
    checks: ClassVar[dict] = {**TRAINING_CHECKS, "attn_dim": _cfg.Int(ge=1), "pool": _cfg.Int(ge=1),
                              "out_channels": _cfg.Int(ge=1),
                              **{k: v for k, v in AUGMENT_CHECKS.items()
                                 if k.split(".")[1] in DEFAULTS["augment"]},
                              "sampling": _cfg.Choice("balanced", "shuffle"),
                              "standin": _cfg.Choice("", "none", *LITE_ARCHS)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.model = None
        self.backbone = str(self.params.get("arch", ""))   # the network built (offline stand-in)
        self._init: dict = {}
        self._fit: dict = {}
        self._cache_info: dict = {}

    # ------------------------------------------------------------------ model
    def _build(self, pretrained: Any, seed: int | None, bands: int = 31, arch: str | None = None):
        from ..nn.weights import create_model  # noqa: PLC0415

        SpectralAttention, HyperFakeNet = _torch_modules()
        p = self.params
        backbone, info = create_model(arch or p["arch"], pretrained, num_classes=1, hub=p["hub"],
                                      seed=seed, drop_rate=float(p["drop_rate"]),
                                      in_chans=int(p["out_channels"]),
                                      standin=None if arch else p.get("standin"))
        self.backbone = info.get("arch", arch or p["arch"])
        attn = SpectralAttention(bands, int(p["attn_dim"]), int(p["pool"]), int(p["out_channels"]))
        return HyperFakeNet(attn, backbone, int(p["image_size"])), info

    @staticmethod
    def _train_band_norm(hsi_dir: Path, items: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean / std over the cubes of ``items`` (the training faces), read from the
        cache in ``items`` order with float64 accumulators: no val/test face contributes."""
        from ..spectral.cache import BandStats  # noqa: PLC0415

        ds = HSIDataset(hsi_dir, items)
        stats = None
        for i in range(len(ds)):
            cube = ds.cache.read_numpy(ds.video_ids[i], int(ds.rows[i]), shard=int(ds.shards[i]))
            if stats is None:
                stats = BandStats(cube.shape[0])
            stats.update(cube[None])
        ds.cache.close()
        if stats is None or stats.n == 0:
            raise ValueError(f"{hsi_dir}: no training cubes for the band statistics")
        d = stats.to_dict()
        return np.asarray(d["mean"]), np.maximum(np.asarray(d["std"]), 1e-6)

    @staticmethod
    def _band_norm(hsi_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
        """Pooled per-band mean / std from the cache shards' stored statistics.

        A shard whose stored statistics are not finite (some cube in it holds NaN) has them
        recomputed from its finite cubes, as the hyperspectral stage would have without the bad
        faces; the bad faces themselves are recorded and left out by :meth:`_items`."""
        from ..spectral.cache import HSICache  # noqa: PLC0415

        cache = HSICache(hsi_dir)
        stats = []
        for shard, s in zip(cache.store.shards, cache.band_stats()):
            if s.get("count") and not all(np.isfinite(s.get(k, [0])).all() for k in ("mean", "std")):
                log.warning("hyperfake: %s: band statistics are not finite; recomputed from its "
                            "finite cubes", shard.path)
                s = _finite_band_stats(shard)
            if s.get("count"):
                stats.append(s)
        if not stats:
            raise ValueError(f"{hsi_dir}: HSI cache has no band statistics")
        n = np.array([s["count"] for s in stats], dtype=np.float64)[:, None]
        mean = np.array([s["mean"] for s in stats])
        sq = np.array([s["std"] for s in stats]) ** 2 + mean ** 2
        m = (n * mean).sum(0) / n.sum()
        std = np.sqrt(np.maximum((n * sq).sum(0) / n.sum() - m ** 2, 1e-12))
        model = json.loads(cache.store.shards[0].file.attrs.get("model", "{}"))
        cache.close()
        return m, std, model

    def _items(self, data: DetectorData, split: str) -> pd.DataFrame:
        """Cached faces of ``split`` whose cubes are finite. A cube with NaN/inf has a non-finite
        stored band mean (the cache's per-face ``band_mean``), so that small field is what is
        scanned, not the cubes; bad faces are recorded in ``data.checks``."""
        from ..spectral.cache import MEAN_FIELD  # noqa: PLC0415

        return data.usable_items("hsi", split, (MEAN_FIELD,), who=self.name,
                                 labels={MEAN_FIELD: f"hsi {MEAN_FIELD} (bands of the cube)"})

    # ------------------------------------------------------------------ interface
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        import torch  # noqa: PLC0415

        from ..nn import train as T  # noqa: PLC0415
        from ..nn.data import BalancedSampler, subsample  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        hsi = data.source("hsi")
        train_items = subsample(self._items(data, "train"), p["max_train_frames"], seed)
        val_items = subsample(self._items(data, "val"), p["max_val_frames"], seed + 1)
        if len(train_items) == 0:
            raise ValueError(f"hyperfake: no cached cubes in {hsi} for the manifest's train split")
        _, _, mst_info = self._band_norm(hsi)       # the cache's MST++ identity
        mean, std = self._train_band_norm(hsi, train_items)
        self._cache_info = {"mst": mst_info, "band_stats_from": f"{len(train_items)} train faces"}
        self.model, self._init = self._build(p["pretrained"], seed)
        with torch.no_grad():
            self.model.spectral.norm_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.model.spectral.norm_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        log.info("hyperfake init: %s", self._init.get("init"))
        device = T.resolve_device(p["device"])
        ds_tr = HSIDataset(hsi, train_items, hflip=float(p["hflip"]), seed=seed, augment=p["augment"])
        balanced = p["sampling"] == "balanced"
        dl_tr = T.make_loader(ds_tr, p["batch_size"], shuffle=True, seed=seed,
                              num_workers=p["num_workers"], device=device,
                              sampler=BalancedSampler(ds_tr, seed) if balanced else None)
        dl_va = None
        if len(val_items):
            dl_va = T.make_loader(HSIDataset(hsi, val_items, seed=seed), p["eval_batch_size"],
                                  num_workers=p["num_workers"], device=device)
        pw = None if balanced and p["pos_weight"] == "auto" else p["pos_weight"]
        cfg = T.TrainConfig.from_params(p, seed=seed, device=device, pos_weight=pw)
        if logger is not None and hasattr(logger, "log_params"):
            logger.log_params({"detector": self.name, "arch": self.backbone,
                               "init": self._init.get("init", ""), "train_frames": len(train_items),
                               "val_frames": len(val_items),
                               "parameters": self.num_parameters()["total"]})
        result = T.fit(self.model, dl_tr, dl_va, cfg, logger=logger, desc=self.name)
        self.model.to("cpu").eval()
        self._fit = {"train_frames": len(train_items), "train_fake": int(train_items["y"].sum()),
                     "val_frames": len(val_items), "device": device,
                     "band_weights": self.band_weights().tolist(),
                     **result.summary(timings=False)}
        return {**self._fit, "train_seconds": result.train_seconds, "init": self._init}

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        self._require_model()
        items = self._items(data, split)
        if len(items) == 0:
            return empty_scores()
        return self._score_faces(data, items, HSIDataset(data.source("hsi"), items, seed=int(data.seed)))

    def band_weights(self, cubes=None) -> np.ndarray:
        """alpha (out_channels, 31): the learned prior softmax(w), or the mean over ``cubes``."""
        import torch  # noqa: PLC0415

        sa = self.model.spectral
        with torch.no_grad():
            if cubes is None:
                return torch.softmax(sa.alpha_logits, -1).numpy()
            h = (cubes - sa.norm_mean[:, None, None]) / sa.norm_std[:, None, None]
            return sa.attention(h)[1].mean(0).numpy()

    def save(self, directory: Path) -> None:
        self._save_torch(directory, {"fit": self._fit, "cache": self._cache_info,
                                     "backbone": self.backbone, "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "HyperFake":
        obj, cfg = cls._load_torch(directory, lambda o, c: o._build(
            "none", seed=0, arch=str(c.get("backbone") or o.params["arch"]))[0])
        obj._cache_info = dict(cfg.get("cache", {}))
        return obj

    def init_info(self) -> dict:
        return {**self._init, "hsi": self._cache_info.get("mst", {})}

    def num_parameters(self) -> dict:
        if self.model is None:
            return {}
        count = lambda m: int(sum(p.numel() for p in m.parameters() if p.requires_grad))  # noqa: E731
        sa, bb = count(self.model.spectral), count(self.model.backbone)
        return {"spectral_attention": sa, "backbone": bb, "total": count(self.model),
                "mst_frozen": int(self._cache_info.get("mst", {}).get("parameters", 0))}
