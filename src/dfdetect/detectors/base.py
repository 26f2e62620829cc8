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
  reads them back without unpickling code (torch ``weights_only=True``), through
  :mod:`dfdetect.model_files`: any unusable file is a :class:`ModelLoadError` naming the file
  and the reason;
- ``init_info()`` says what initialised it (e.g. ``"imagenet:efficientnet-lite0 (offline)"``).

Cached inputs with non-finite values (NaN/inf in float features, cubes, waves) are found as a
detector reads them (:class:`InputChecks`, ``DetectorData.checks``): each bad row is recorded
(video_id, frame_index, shard path, reason) and left out of fitting and scoring; a video with no
usable row is unscored. A train split whose rows are mostly non-finite is an error
(:class:`NonFiniteInputError`), never fitted on the rest. Integer inputs (uint8 images) are never
scanned.

``train@<name>`` and ``evaluate@<name>`` stages are generic over the registry.
"""

from __future__ import annotations

import abc
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import config as _cfg
from ..data.manifest import is_fake
from ..failures import Failures
from ..model_files import ModelLoadError, model_file, read_config

__all__ = ["Detector", "DetectorData", "InputChecks", "ModelLoadError", "NonFiniteInputError",
           "check_scores", "create", "get", "register", "registry"]

#: a split whose non-finite rows exceed this share cannot be fitted ("most rows")
MAX_NONFINITE_FRACTION = 0.5

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


class NonFiniteInputError(ValueError):
    """Most rows of a split that a detector must fit on hold non-finite values."""


class InputChecks:
    """Rows of cached inputs found unusable (non-finite values) while a detector read them.

    :meth:`check` takes the array just read for a table of items (one row per item) and returns
    the mask of bad rows, recording each with the counts of NaN and inf and what was read
    (``"non-finite features: 12 NaN, 1 inf in saab left_eye_hop2"``); a row bad in several
    fields is one failure row listing each. Integer arrays cannot hold NaN: they are not scanned.
    """

    PREFIX = "non-finite features: "

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], dict] = {}

    def check(self, items: pd.DataFrame, values: np.ndarray, what: str, paths: Any = None) -> np.ndarray:
        """Bad-row mask of ``values`` (``len(items)`` rows, any trailing shape). ``paths``: the
        file each row was read from (one path, or one per row)."""
        values = np.asarray(values)
        n = len(items)
        if values.shape[:1] != (n,):
            raise ValueError(f"{what}: {values.shape[0] if values.ndim else 0} rows read for {n} items")
        if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.complexfloating)):
            return np.zeros(n, dtype=bool)
        flat = values.reshape(n, -1)
        bad = ~np.isfinite(flat).all(axis=1)
        if bad.any():
            where = np.flatnonzero(bad)
            sub = flat[where]
            nan = np.isnan(sub).sum(axis=1)
            inf = np.isinf(sub).sum(axis=1)
            vids = items["video_id"].to_numpy()
            frames = items["frame_index"].to_numpy() if "frame_index" in items else np.full(n, -1)
            splits = items["split"].to_numpy() if "split" in items else np.full(n, "")
            per_row = not isinstance(paths, (str, Path)) and paths is not None
            for k, i in enumerate(where):
                path = paths[i] if per_row else paths
                self.add(str(vids[i]), int(frames[i]), str(splits[i]), path,
                         f"{int(nan[k])} NaN, {int(inf[k])} inf in {what}")
        return bad

    def check_item(self, items: pd.DataFrame, i: int, values: np.ndarray, what: str, path: Any = None) -> bool:
        """True when ``values`` (the array just read for row ``i`` of ``items``, e.g. one wave)
        holds NaN/inf, recording it."""
        values = np.asarray(values)
        if not np.issubdtype(values.dtype, np.inexact) or np.isfinite(values).all():
            return False
        return bool(self.check(items.iloc[[int(i)]], values[None], what, path)[0])

    def add(self, video_id: str, frame_index: int, split: str, path: Any, part: str) -> None:
        row = self._rows.setdefault((video_id, int(frame_index)), {
            "split": split, "path": "" if path is None else str(path), "parts": []})
        if part not in row["parts"]:
            row["parts"].append(part)

    def bad(self, split: str | None = None) -> list[tuple[str, int]]:
        """``(video_id, frame_index)`` of every recorded row (of ``split``)."""
        return [k for k, r in self._rows.items() if split is None or r["split"] == split]

    def __len__(self) -> int:
        return len(self._rows)

    def require_usable(self, items: pd.DataFrame, bad: np.ndarray, who: str, source: Any = "") -> None:
        """Raise :class:`NonFiniteInputError` when most of ``items`` are ``bad``."""
        bad = np.asarray(bad, dtype=bool)
        n, n_bad = len(items), int(bad.sum())
        if n == 0 or n_bad <= MAX_NONFINITE_FRACTION * n:
            return
        split = ",".join(sorted(set(items["split"].astype(str)))) if "split" in items else "?"
        vids = items.loc[bad, "video_id"]
        first = (str(vids.iloc[0]), int(items.loc[bad, "frame_index"].iloc[0]))
        reason = self.reason(*first)
        raise NonFiniteInputError(
            f"{who}: {n_bad} of {n} {split} rows ({vids.nunique()} of {items['video_id'].nunique()} "
            f"videos) of {source} hold non-finite values (e.g. {first[0]} frame {first[1]}: {reason}); "
            "refusing to fit on the rest (see the failures table)")

    def reason(self, video_id: str, frame_index: int) -> str:
        row = self._rows.get((video_id, int(frame_index)))
        return self.PREFIX + "; ".join(row["parts"]) if row else ""

    def failures(self, stage: str) -> Failures:
        out = Failures(stage)
        for (vid, frame), row in self._rows.items():
            out.add(vid, self.PREFIX + "; ".join(row["parts"]), row["path"] or None, frame, warn=False)
        return out

    def unscored(self, split: str, scored_videos) -> dict:
        """Rows of ``split`` left unscored for non-finite inputs, and the videos they emptied."""
        keys = self.bad(split)
        scored = set(scored_videos)
        return {"frames": len(keys), "videos": len({v for v, _ in keys} - scored)}


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
    checks: InputChecks = field(default_factory=InputChecks)

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

    def usable_items(self, input_name: str, split: str | None, fields: Sequence[str],
                     require: bool | None = None, who: str = "detector",
                     labels: Mapping[str, str] | None = None) -> pd.DataFrame:
        """:meth:`items` without the rows whose float ``fields`` hold NaN/inf (recorded in
        :attr:`checks`; ``labels`` names a field in the reason, default ``"<input> <field>"``).
        Each field is read once per video (the chunks of its items); integer fields are never
        read. ``require`` (default: ``split == "train"``) makes a split of mostly bad rows an
        error."""
        from ..store import Store  # noqa: PLC0415

        items = self.items(input_name, split)
        if items.empty or not fields:
            return items
        store = Store(self.source(input_name))
        bad = np.zeros(len(items), dtype=bool)
        integer: set[tuple[int, str]] = set()        # (shard, field) stored as integers: skipped
        for (shard, vid), grp in items.groupby(["shard", "video_id"], sort=False):
            names = [n for n in fields if (int(shard), n) not in integer]
            if not names:
                continue
            reader = store.shards[int(shard)]
            group = reader.group(vid)
            rows = grp["row"].to_numpy()
            for name in names:
                ds = group[name]
                if not np.issubdtype(ds.dtype, np.inexact):
                    integer.add((int(shard), name))
                    continue
                values = ds[()][rows] if len(rows) > 1 else ds[int(rows[0])][None]
                what = (labels or {}).get(name, f"{input_name} {name}")
                bad[grp.index.to_numpy()] |= self.checks.check(grp, values, what, reader.path)
        store.close()
        if require if require is not None else split == "train":
            self.checks.require_usable(items, bad, who, self.source(input_name))
        return items[~bad].reset_index(drop=True)


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

    @classmethod
    def read_config(cls, directory: Path) -> dict:
        """``config.json`` of a saved detector of this class (:class:`ModelLoadError` if absent,
        unreadable or written by another detector)."""
        return read_config(directory, expected=cls.name)

    @classmethod
    def from_config(cls, directory: Path) -> tuple["Detector", dict]:
        """An unfitted detector built from a saved ``config.json``'s params, and that config."""
        cfg = cls.read_config(directory)
        with model_file(Path(directory) / "config.json", f"params that {cls.name} does not accept"):
            return cls(**dict(cfg.get("params") or {})), cfg


class TorchDetector(Detector):
    """A detector whose fitted state is one torch module: ``model.safetensors`` (its state dict)
    beside ``config.json``. Subclasses build the module with ``_build(pretrained, seed, ...)``
    (returning the module and its init record) and pass how to rebuild it to :meth:`_load_torch`."""

    model: Any = None
    _init: dict
    _fit: dict

    def _save_torch(self, directory: Path, extra: Mapping) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        if self.model is None:
            raise RuntimeError(f"{self.name}: nothing to save (fit or load first)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
        self.write_config(directory, extra=extra)

    @classmethod
    def _load_torch(cls, directory: Path, build: Callable[["TorchDetector", dict], Any]):
        """The saved detector in ``directory``: config, then ``build(obj, cfg)``'s module with the
        saved weights (a mismatch is a :class:`ModelLoadError`), in eval mode; returns
        ``(obj, cfg)``."""
        from ..model_files import fit_state_dict, load_safetensors  # noqa: PLC0415

        directory = Path(directory)
        obj, cfg = cls.from_config(directory)
        path = directory / "model.safetensors"
        state = load_safetensors(path)
        obj.model = build(obj, cfg)
        fit_state_dict(obj.model, state, path)
        obj.model.eval()
        obj._init = dict(cfg.get("init", {}))
        obj._fit = dict(cfg.get("fit", {}))
        return obj, cfg

    def init_info(self) -> dict:
        if self._init:
            return dict(self._init)
        return {"init": f"not built yet (pretrained: {self.params['pretrained']})"}

    def _require_model(self) -> None:
        if self.model is None:
            raise RuntimeError(f"{self.name}: fit or load the detector before scoring")

    def _predict(self, data: "DetectorData", dataset) -> tuple[np.ndarray, np.ndarray]:
        """(model outputs, their sample indices) over ``dataset``, in eval batches on the
        detector's device, under its deterministic settings (seed, threads)."""
        from ..nn import train as T  # noqa: PLC0415

        p = self.params
        device = T.resolve_device(p["device"])
        loader = T.make_loader(dataset, p["eval_batch_size"], num_workers=p["num_workers"], device=device)
        with T.deterministic(int(data.seed), int(p["num_threads"]), enabled=bool(p["deterministic"])):
            self.model.to(device)
            out, _, idx = T.predict(self.model, loader, device)
            self.model.to("cpu")
        return out, idx

    def _score_faces(self, data: "DetectorData", items: pd.DataFrame, dataset) -> pd.DataFrame:
        """P(fake) = sigmoid(logit) of the one-logit model for every face of ``items``, read through
        ``dataset`` (one sample per row of ``items``, in order), under the detector's deterministic
        settings; the score table in ``items``' order."""
        logits, idx = self._predict(data, dataset)
        logits = logits[np.argsort(idx, kind="stable")].astype(np.float64)
        out = pd.DataFrame({"video_id": items["video_id"].to_numpy(),
                            "frame_index": items["frame_index"].to_numpy(np.int64),
                            "score": 1.0 / (1.0 + np.exp(-logits))})
        return check_scores(out, self.name)


def empty_scores() -> pd.DataFrame:
    """A score table without rows, typed as every detector's (``video_id``, ``frame_index``, ``score``)."""
    return pd.DataFrame({"video_id": pd.Series(dtype=str), "frame_index": pd.Series(dtype=np.int64),
                         "score": pd.Series(dtype=float)})


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
        "lr": C.Float(gt=0), "weight_decay": C.Float(ge=0), "optimizer": C.Choice("adam", "adamw", "nadam"),
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
