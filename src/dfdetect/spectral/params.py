"""Schemas of the ``train_mst`` and ``hyperfake_plots`` params sections.

Kept apart from :mod:`dfdetect.spectral.train` and :mod:`dfdetect.spectral.plots` (which import
torch) so that a stage validates its params before any heavy import.
"""

from __future__ import annotations

from .. import config as _cfg

BANDS = 31   # len(dfdetect.spectral.mst.WAVELENGTHS_NM) (tested equal)

# the ``train_mst`` section (stages/train_mst.py; dfdetect.spectral.train)
TRAIN_MST = _cfg.Section({
    "arad_root": _cfg.PathStr("dir"),
    "arad": _cfg.Section({"limit_train": _cfg.Int(ge=0), "limit_valid": _cfg.Int(ge=0), "size": _cfg.Int(ge=0)}),
    "scenes": _cfg.Section({"train": _cfg.Int(ge=1), "heldout": _cfg.Int(ge=1), "size": _cfg.Int(ge=8),
                            "holdout_fraction": _cfg.Float(gt=0, lt=1), "noise": _cfg.Float(ge=0),
                            "render": _cfg.Choice("camera", "linear"),
                            "jpeg": _cfg.List(_cfg.Int(ge=0, le=100), length=2)}),
    "init": _cfg.Choice("linear", "scratch"),
    "loss": _cfg.Choice("mrae", "l1", "mse"),
    "variants": _cfg.List(_cfg.Choice("smsa", "flexi"), min_len=1, unique=True),
    "flexi_factor": _cfg.Int(ge=1),
    "steps": _cfg.Int(ge=1),
    "batch_size": _cfg.Int(ge=1),
    "crop": _cfg.Int(ge=0),
    "lr": _cfg.Float(gt=0),
    "min_lr": _cfg.Float(ge=0),
    "mrae_eps": _cfg.Float(gt=0),
    "eval_every": _cfg.Int(ge=0),
    "flops_size": _cfg.Int(ge=8),
    "threads": _cfg.Int(ge=0),
    "device": _cfg.DEVICE,
})

# the ``hyperfake_plots`` section (stages/hyperfake_plots.py; dfdetect.spectral.plots)
HYPERFAKE_PLOTS = _cfg.Section({
    "split": _cfg.Choice("train", "val", "test"),
    "examples": _cfg.Int(ge=1),
    "bands": _cfg.List(_cfg.Int(ge=1, le=BANDS), min_len=1),
    "face_field": _cfg.Choice("face128", "face"),
    "max_faces": _cfg.Int(ge=1),
})
