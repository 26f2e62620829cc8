"""The detector interface and registry shared by every model of the project.

A detector

- declares the cached inputs it consumes (``inputs``: names of stage outputs such as
  ``"faces"``, ``"hsi"``, ``"saab"``, ``"audio"``, ``"transcripts"``);
- is built from its params section (``models.<name>`` in params.yaml) as keyword arguments;
- ``fit(data)`` on the train split (and val, for early stopping / calibration) of the manifest;
- ``score(data, split)`` returns one row per scored item: ``video_id, frame_index, score``
  where ``score`` is the probability (or a monotone score) that the item is fake;
  utterance-level detectors use ``frame_index = -1``;
- ``save(directory)`` writes plain weights (safetensors / npz / json) and ``load(directory)``
  reads them back without unpickling code (torch ``weights_only=True``);
- ``init_info()`` says what initialised it (e.g. ``"imagenet:efficientnet-lite0 (offline)"``).

``train@<name>`` and ``evaluate@<name>`` stages are generic over the registry.
"""

from __future__ import annotations

import abc
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..data.manifest import is_fake

_REGISTRY: dict[str, type["Detector"]] = {}


def register(name: str) -> Callable[[type["Detector"]], type["Detector"]]:
    def deco(cls: type["Detector"]) -> type["Detector"]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"detector {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def _import_builtin() -> None:
    # importing the package registers every built-in detector
    from . import _builtin  # noqa: F401,PLC0415


def registry() -> dict[str, type["Detector"]]:
    _import_builtin()
    return dict(_REGISTRY)


def get(name: str) -> type["Detector"]:
    reg = registry()
    if name not in reg:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(sorted(reg))}")
    return reg[name]


def create(name: str, params: Mapping[str, Any] | None = None) -> "Detector":
    return get(name)(**dict(params or {}))


@dataclass
class DetectorData:
    """What a detector may read: the manifest and the cached stage outputs it declared.

    ``sources`` maps input names to paths (directories of shards, files); detectors open them
    through the library (``dfdetect.store.Store`` for shards).
    """

    manifest: pd.DataFrame
    sources: dict[str, Path] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    workers: int = 1
    progress: bool = True

    def source(self, name: str) -> Path:
        if name not in self.sources:
            raise KeyError(f"input {name!r} was not provided (have: {sorted(self.sources)})")
        return Path(self.sources[name])

    def videos(self, split: str | None = None) -> pd.DataFrame:
        df = self.manifest
        if split is not None:
            df = df[df["split"] == split]
        return df.reset_index(drop=True)

    def items(self, input_name: str, split: str | None = None) -> pd.DataFrame:
        """(video_id, frame_index, shard, row, label, y, split, ...) of every stored item."""
        from ..store import Store  # noqa: PLC0415

        index = Store(self.source(input_name)).index()
        vids = self.videos(split)
        cols = ["video_id", "label", "split", "method", "quality", "identity"]
        out = index.merge(vids[cols], on="video_id", how="inner")
        out["y"] = is_fake(out)
        return out.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)


class Detector(abc.ABC):
    name: ClassVar[str] = "detector"
    inputs: ClassVar[tuple[str, ...]] = ("faces",)
    level: ClassVar[str] = "frame"   # "frame" (aggregated to videos) or "video"/"utterance"
    manifest: ClassVar[str] = "video"  # "video" (data/manifest.csv) or "audio" (audio datasets)
    extra_sources: ClassVar[tuple[str, ...]] = ()  # inputs needed to fit only (e.g. frozen branches)
    paper: ClassVar[str] = ""
    defaults: ClassVar[Mapping[str, Any] | None] = None  # known params and their defaults
    # ranges / choices of some params (dotted names reach into nested ones); the other params
    # are typed from their default (see dfdetect.config.from_defaults)
    checks: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def param_schema(cls) -> "_cfg.Node":
        """The schema of ``models.<name>`` in params.yaml: ``defaults`` typed, plus ``checks``."""
        if cls.defaults is None:
            return _cfg.Anything()
        return _cfg.from_defaults(cls.defaults, cls.checks)

    def __init__(self, **params: Any):
        """Params are ``defaults`` updated by ``params`` (nested sections merged one level);
        they are validated against :meth:`param_schema` (a name not in ``defaults`` is an error
        with a did-you-mean, so a typo in params.yaml never goes unnoticed)."""
        if self.defaults is not None:
            self.param_schema().validate(dict(params), f"models.{self.name}")
            merged = copy.deepcopy(dict(self.defaults))
            for key, value in params.items():
                if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            params = merged
        self.params = dict(params)

    @abc.abstractmethod
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        """Train on ``data``'s train split; return a summary (losses, timings, sizes)."""

    @abc.abstractmethod
    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        """Scores of every item of ``split``: columns video_id, frame_index, score."""

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write weights and config (plain formats) into ``directory``."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: Path) -> "Detector":
        """Rebuild a fitted detector from ``save``'s directory."""

    def init_info(self) -> dict:
        return {}

    def num_parameters(self) -> dict:
        """Parameter counts by part (the papers' tables); ``{"total": n}`` at least."""
        return {}

    # helpers shared by implementations ---------------------------------------------------
    def write_config(self, directory: Path, extra: Mapping | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {"detector": self.name, "params": self.params, "init": self.init_info()}
        cfg.update(extra or {})
        (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")

    @staticmethod
    def read_config(directory: Path) -> dict:
        return json.loads((Path(directory) / "config.json").read_text())


def check_scores(df: pd.DataFrame, who: str) -> pd.DataFrame:
    """Validate a detector's score table (columns, finiteness) with a clear error."""
    missing = {"video_id", "frame_index", "score"} - set(df.columns)
    if missing:
        raise ValueError(f"{who}: score table lacks columns {sorted(missing)}")
    bad = ~np.isfinite(df["score"].to_numpy(dtype=float))
    if bad.any():
        raise ValueError(f"{who}: {int(bad.sum())} non-finite scores, e.g. "
                         f"{df.loc[bad, 'video_id'].iloc[0]!r}")
    return df


# params schema of the ``models`` section: one entry per registered detector
MODELS = _cfg.Map(lambda name: get(name).param_schema(), keys=lambda: sorted(registry()), what="detector")


# what dfdetect.nn.weights._hub_mode accepts (the timm hub download switch)
HUB_MODES = ("auto", "cache", "", "none", "true", "false", "1", "0", "yes", "no", "on", "off", "always",
             "never", "online")


def _training_checks():
    C = _cfg
    return {
        "epochs": C.Int(ge=1), "batch_size": C.Int(ge=1), "eval_batch_size": C.Int(ge=1),
        "lr": C.Float(gt=0), "weight_decay": C.Float(ge=0), "optimizer": C.Choice("adam", "adamw"),
        "scheduler": C.Choice("cosine", "none"), "min_lr_ratio": C.Float(ge=0, le=1),
        "pos_weight": C.AnyOf(C.Choice("auto", "none"), C.Float(gt=0), nullable=True),
        "patience": C.Int(ge=0), "monitor": C.Choice("val_auc", "val_loss"), "grad_clip": C.Float(ge=0),
        "hflip": C.Float(ge=0, le=1), "drop_rate": C.Float(ge=0, lt=1),
        "hub": C.AnyOf(C.Choice(*HUB_MODES), C.Bool(), C.Int(choices=(0, 1)), nullable=True),
        "max_train_frames": C.Int(ge=0),
        "max_val_frames": C.Int(ge=0), "num_workers": C.Int(ge=0), "num_threads": C.Int(ge=0),
        "device": C.DEVICE, "image_size": C.Int(ge=0), "deterministic": C.Bool(), "pretrained": C.Str(),
    }


# ranges / choices shared by the torch image detectors (``checks`` of rgb_cnn and hyperfake)
TRAINING_CHECKS = _training_checks()
