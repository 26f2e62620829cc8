"""Two-branch recurrent network (two_branch.txt: Masi et al., "Two-branch Recurrent Network for
Isolating Deepfakes in Videos", ECCV 2020), on the face store.

Sequences of ``seq_len`` aligned faces, ``frame_stride`` source frames apart (paper: 10 faces,
1 in 7), go through :class:`dfdetect.nn.two_branch.TwoBranchNet` (RGB + Deep LoG DenseNet-121
branches, grouped point-wise fusion, the remaining DenseBlocks with dropout 0.2, GAP, a
bidirectional LSTM) trained end to end with the hypersphere loss (Eq. 2) around a centre fixed
before training as the mean descriptor of the real training sequences; radii 0.042 / 1.638 with
the LSTM (2D = 256), 2.5 / 97.5 without (D = 1024). Per-DenseBlock learning rates ``lr / 2^L``;
Adam 1e-3, weight decay 1e-6; the learning rate divided by 10 on val-loss plateaus, at most
three times; stratified epochs (one random window per video, reals oversampled, fakes
undersampled per method).

Score: the distance ``d`` to the centre mapped monotonically to (0, 1),
``sigmoid((d - (r_in + r_out) / 2) / ((r_out - r_in) / 8))`` (0.5 in the middle of the margin),
so every ranking metric is that of ``d`` and a 0.5 threshold means something. A stored frame's
score is the mean of the windows covering it; the evaluate stage averages frames into videos.
``loss: bce`` replaces the loss by a linear head + BCE (the paper's Fig. 4c comparison).

The ablations of Table 1 are params: ``branches`` 1|2, ``temporal`` bilstm|none, ``lr_decay``
per_block|none, ``loss`` hypersphere|bce, ``lstm_hidden``, ``lstm_merge`` cat|sum,
``fusion_groups`` 1|2, ``drop_rate``. No package ships DenseNet-121 ImageNet weights: offline the
network starts from a seeded random initialisation, and ``init_info()`` says so.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from .base import TRAINING_CHECKS, DetectorData, TorchDetector, check_scores, empty_scores, register

log = logging.getLogger(__name__)

#: the paper's radii per descriptor size (two_branch.txt §4 and §4.1)
PAPER_RADII = {256: (0.042, 1.638), 1024: (2.5, 97.5)}

DEFAULTS: dict[str, Any] = {
    "field": "face",
    "image_size": 128,          # demo; 224 in the paper (28 x 28 x 128 after transition1)
    "seq_len": 8,               # F (paper 10)
    "frame_stride": 7,          # source-video frames between consecutive faces (paper 1 in 7)
    "max_windows_per_video": 16,  # scoring windows per video (evenly spaced); 0 = all
    "branches": 2,
    "log_scales": 3,
    "fusion_groups": 2,
    "fusion_init": "rgb_identity",
    "temporal": "bilstm",
    "lstm_hidden": 128,
    "lstm_merge": "cat",
    "drop_rate": 0.2,           # dropout after every DenseLayer (timm proj_drop_rate)
    "loss": "hypersphere",
    "r_in": "auto",
    "r_out": "auto",
    "optimizer": "adam",
    "lr": 1.0e-3,
    "lr_decay": "per_block",
    "lr_decay_base": 2.0,
    "weight_decay": 1.0e-6,
    "scheduler": "plateau",
    "plateau_factor": 0.1,
    "plateau_patience": 50,
    "max_reductions": 3,
    "min_lr_ratio": 0.01,       # scheduler: cosine only
    "pos_weight": "auto",       # loss: bce only
    "patience": 0,
    "monitor": "val_loss",
    "grad_clip": 0.0,
    "epochs": 3,
    "batch_size": 4,            # sequences
    "eval_batch_size": 8,
    "real_oversample": 1,       # paper: 2
    "fake_undersample": 2,      # paper: 2
    "hflip": 0.0,               # paper: no augmentation
    "pretrained": "imagenet",
    "hub": "auto",
    "num_workers": 0,
    "num_threads": 0,
    "device": "auto",
    "deterministic": True,
}

_RADIUS = _cfg.AnyOf(_cfg.Choice("auto"), _cfg.Float(ge=0))


def resolve_radii(params: dict, out_dim: int) -> tuple[float, float]:
    """``(r_in, r_out)``: explicit values, or ``auto`` = the paper's pair for ``out_dim``."""
    auto = PAPER_RADII.get(int(out_dim))
    vals = []
    for key, k in (("r_in", 0), ("r_out", 1)):
        v = params[key]
        if str(v) == "auto":
            if auto is None:
                raise ValueError(f"models.two_branch.{key} = auto: the paper gives radii only for a "
                                 f"256-d (LSTM) or 1024-d (no LSTM) descriptor, this one is {out_dim}-d; "
                                 "set r_in and r_out explicitly")
            v = auto[k]
        vals.append(float(v))
    if not 0.0 <= vals[0] < vals[1]:
        raise ValueError(f"models.two_branch: need 0 <= r_in < r_out, got {vals[0]} and {vals[1]}")
    return vals[0], vals[1]


def out_dim_of(params: dict) -> int:
    if params["temporal"] == "none":
        return 1024
    h = int(params["lstm_hidden"])
    return 2 * h if params["lstm_merge"] == "cat" else h


def distance_score(d: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """Monotone map of the distance to the centre into (0, 1): 0.5 in the middle of the margin."""
    z = (np.asarray(d, dtype=np.float64) - (r_in + r_out) / 2.0) / ((r_out - r_in) / 8.0)
    return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))


@register("two_branch")
class TwoBranch(TorchDetector):
    """Two-branch (RGB + Deep LoG) DenseNet-121 + BiLSTM, hypersphere loss (two_branch.txt)."""

    inputs: ClassVar[tuple[str, ...]] = ("faces",)
    level: ClassVar[str] = "frame"
    paper: ClassVar[str] = "two_branch.txt"
    defaults: ClassVar[dict] = DEFAULTS
    checks: ClassVar[dict] = {
        **{k: v for k, v in TRAINING_CHECKS.items() if k not in ("max_train_frames", "max_val_frames")},
        "field": _cfg.Choice("face", "face128"), "image_size": _cfg.Int(ge=16),
        "seq_len": _cfg.Int(ge=1), "frame_stride": _cfg.Int(ge=1), "max_windows_per_video": _cfg.Int(ge=0),
        "branches": _cfg.Int(choices=(1, 2)), "log_scales": _cfg.Int(ge=1, le=6),
        "fusion_groups": _cfg.Int(choices=(1, 2)),
        "fusion_init": _cfg.Choice("rgb_identity", "average", "random"),
        "temporal": _cfg.Choice("bilstm", "none"), "lstm_hidden": _cfg.Int(ge=1),
        "lstm_merge": _cfg.Choice("cat", "sum"), "loss": _cfg.Choice("hypersphere", "bce"),
        "r_in": _RADIUS, "r_out": _RADIUS, "lr_decay": _cfg.Choice("per_block", "none"),
        "lr_decay_base": _cfg.Float(ge=1), "scheduler": _cfg.Choice("plateau", "cosine", "none"),
        "plateau_factor": _cfg.Float(gt=0, lt=1), "plateau_patience": _cfg.Int(ge=0),
        "max_reductions": _cfg.Int(ge=0), "real_oversample": _cfg.Int(ge=1),
        "fake_undersample": _cfg.Int(ge=1),
    }

    @classmethod
    def param_schema(cls) -> "_cfg.Node":
        """The typed keys, plus the radii rule between keys (checked before any work)."""
        schema = super().param_schema()

        def radii(value, where: str) -> None:
            merged = {**cls.defaults, **dict(value)}
            if merged["loss"] != "hypersphere":
                return
            try:
                resolve_radii(merged, out_dim_of(merged))
            except ValueError as exc:
                raise _cfg.ParamError(f"{where}.r_in", merged["r_in"],
                                      str(exc).split(": ", 1)[-1]) from None

        schema.check = radii
        return schema

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.radii = (resolve_radii(self.params, out_dim_of(self.params))
                      if self.params["loss"] == "hypersphere" else None)
        self.model = None
        self._init: dict = {}
        self._fit: dict = {}
        self._last_windows: tuple | None = None   # (data, split, dataset, outputs) of the last score()

    # ------------------------------------------------------------------ pieces
    def _build(self, pretrained: Any, seed: int):
        from ..nn.two_branch import build  # noqa: PLC0415

        return build(self.params, pretrained, seed)

    def _dataset(self, data: DetectorData, items: pd.DataFrame, mode: str, seed: int, train: bool = False):
        from ..nn.data import IMAGENET_MEAN, IMAGENET_STD, FaceTransform, SequenceDataset  # noqa: PLC0415

        p = self.params
        tf = FaceTransform(int(p["image_size"]), IMAGENET_MEAN, IMAGENET_STD,
                           hflip=float(p["hflip"]) if train else 0.0)
        return SequenceDataset(data.source("faces"), items, int(p["seq_len"]), int(p["frame_stride"]),
                               mode=mode, field=p["field"], transform=tf, seed=seed,
                               real_oversample=int(p["real_oversample"]),
                               fake_undersample=int(p["fake_undersample"]),
                               max_windows=int(p["max_windows_per_video"]))

    def _items(self, data: DetectorData, split: str) -> pd.DataFrame:
        return data.usable_items("faces", split, (self.params["field"],), who=self.name)

    def criterion(self):
        import torch  # noqa: PLC0415

        from ..nn.losses import hypersphere_loss  # noqa: PLC0415

        if self.params["loss"] == "bce":
            return None                    # the shared loop's BCE (with pos_weight)
        r_in, r_out = self.radii

        def loss(d: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
            return hypersphere_loss(d, y, r_in, r_out)
        return loss

    def to_score(self, out: np.ndarray) -> np.ndarray:
        if self.params["loss"] == "bce":
            return 1.0 / (1.0 + np.exp(-np.asarray(out, dtype=np.float64)))
        return distance_score(out, *self.radii)

    # ------------------------------------------------------------------ interface
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        from ..nn import train as T  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        train_items, val_items = self._items(data, "train"), self._items(data, "val")
        if len(train_items) == 0:
            raise ValueError(f"{self.name}: no training faces in {data.source('faces')} "
                             "for the manifest's train split")
        device = T.resolve_device(p["device"])
        ds_tr = self._dataset(data, train_items, "epoch", seed, train=True)
        if ds_tr.labels.min() == ds_tr.labels.max():
            raise ValueError(f"{self.name}: the train split of {data.source('faces')} holds one class only")
        dl_tr = T.make_loader(ds_tr, p["batch_size"], shuffle=True, seed=seed,
                              num_workers=p["num_workers"], device=device)
        dl_va = None
        if len(val_items):
            ds_va = self._dataset(data, val_items, "middle", seed)
            dl_va = T.make_loader(ds_va, p["eval_batch_size"], num_workers=p["num_workers"], device=device)
        log.info("%s: %d train videos (%d windows per stratified epoch, %d padded), %d val windows",
                 self.name, len(ds_tr.video_ids), len(ds_tr), ds_tr.padded_videos,
                 0 if dl_va is None else len(dl_va.dataset))
        cfg = T.TrainConfig.from_params(p, seed=seed, device=device)
        summary: dict[str, Any] = {}
        with T.deterministic(seed, int(p["num_threads"]), enabled=bool(p["deterministic"])):
            self.model, self._init = self._build(p["pretrained"], seed)
            log.info("%s init: %s", self.name, self._init.get("init"))
            self.model.to(device)
            if p["loss"] == "hypersphere":
                real = train_items[train_items["y"] < 0.5]
                ds_c = self._dataset(data, real, "disjoint", seed)
                dl_c = T.make_loader(ds_c, p["eval_batch_size"], num_workers=p["num_workers"], device=device)
                summary["center_sequences"] = self.model.set_center(dl_c, device)
                summary["center_norm"] = float(self.model.center.norm())
        if logger is not None and hasattr(logger, "log_params"):
            logger.log_params({"detector": self.name, "init": self._init.get("init", ""),
                               "train_videos": len(ds_tr.video_ids), "windows_per_epoch": len(ds_tr),
                               "parameters": self.num_parameters()["total"]})
        lr_decay, base = p["lr_decay"], float(p["lr_decay_base"])
        groups = lambda m: m.param_groups(float(p["lr"]), lr_decay, base)  # noqa: E731
        result = T.fit(self.model, dl_tr, dl_va, cfg, logger=logger, desc=self.name,
                       criterion=self.criterion(), param_groups=groups)
        self.model.to("cpu").eval()
        self._fit = {"train_videos": len(ds_tr.video_ids), "windows_per_epoch": len(ds_tr),
                     "padded_videos": ds_tr.padded_videos, "val_windows": 0 if dl_va is None else len(dl_va.dataset),
                     "device": device, "radii": list(self.radii) if self.radii else None,
                     **summary, **result.summary(timings=False)}
        return {**self._fit, "train_seconds": result.train_seconds,
                "epoch_seconds": [h["epoch_time_s"] for h in result.history], "init": self._init}

    def window_outputs(self, data: DetectorData, items: pd.DataFrame):
        """(dataset, raw outputs per scoring window): distances d (hypersphere) or logits."""
        ds = self._dataset(data, items, "all", int(data.seed))
        out, idx = self._predict(data, ds)
        res = np.full(len(ds), np.nan, dtype=np.float64)
        res[idx] = out.astype(np.float64)
        return ds, res

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        self._require_model()
        items = self._items(data, split)
        if len(items) == 0:
            return empty_scores()
        ds, out = self.window_outputs(data, items)
        self._last_windows = (data, split, ds, out)     # extra_metrics reuses the test windows
        win_score = self.to_score(out)
        total = np.zeros(len(ds.items))
        count = np.zeros(len(ds.items))
        for (_, rows), s in zip(ds.windows, win_score):
            u = np.unique(rows)              # a padded window counts its repeated face once
            total[u] += s
            count[u] += 1
        keep = count > 0
        df = ds.items[keep]
        out_df = pd.DataFrame({"video_id": df["video_id"].astype(str).to_numpy(),
                               "frame_index": df["frame_index"].to_numpy(np.int64),
                               "score": total[keep] / count[keep]})
        return check_scores(out_df, self.name)

    def extra_metrics(self, data: DetectorData, test_scores: pd.DataFrame) -> dict:
        """Median distance to the centre of the real and fake test windows (hypersphere only)."""
        if self.params["loss"] != "hypersphere" or self.model is None:
            return {}
        last = self._last_windows
        if last is not None and last[0] is data and last[1] == "test":
            ds, d = last[2], last[3]       # score(data, "test") just computed these windows
        else:
            items = self._items(data, "test")
            if len(items) == 0:
                return {}
            ds, d = self.window_outputs(data, items)
        y = ds.labels
        med = (lambda a: float(np.median(a)) if len(a) else math.nan)
        return {"median_distance_real": med(d[y < 0.5]), "median_distance_fake": med(d[y > 0.5]),
                "r_in": self.radii[0], "r_out": self.radii[1]}

    def save(self, directory: Path) -> None:
        self._save_torch(directory, {"arch": "two_branch_densenet121", "fit": self._fit,
                                     "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "TwoBranch":
        from ..model_files import ModelLoadError  # noqa: PLC0415

        obj, _ = cls._load_torch(directory, lambda o, c: o._build("none", seed=0)[0])
        if obj.params["loss"] == "hypersphere" and not bool(obj.model.center_set):
            raise ModelLoadError(Path(directory) / "model.safetensors",
                                 "the hypersphere centre was never set (not a fitted model)")
        return obj

    def num_parameters(self) -> dict:
        model = self.model
        if model is None:
            model, _ = self._build("none", seed=0)
        parts = {name: sum(p.numel() for p in getattr(model, name).parameters())
                 for name in ("rgb", "log", "fuse", "trunk", "lstm", "classifier") if hasattr(model, name)}
        return {"total": int(sum(p.numel() for p in model.parameters())), **{k: int(v) for k, v in parts.items()}}
