"""Params of the audio branch (``audio_model`` section of params.yaml): defaults and schema.

Kept apart from :mod:`dfdetect.audio.model` (which imports torch) so that a stage validates its
params before any heavy import.
"""

from __future__ import annotations

from typing import Any

from .. import config as _C

BACKBONES = ("whisper", "wav2vec2", "lfcc", "logmel")

DEFAULTS: dict[str, Any] = {
    "backbone": "whisper",
    "whisper_model": "tiny.en",        # tiny.en (packaged CT2) | CT2 folder | .pt checkpoint
    "whisper_pad": False,              # true: pad to 30 s like Whisper
    "wav2vec2_model": "facebook/wav2vec2-base",
    "frame_stride": 2,                 # average this many backbone frames
    "max_seconds": 10.0,
    "n_filters": 20,                   # lfcc/logmel filterbank size
    "conv_channels": 64,               # lfcc/logmel encoder width
    "conv_blocks": 3,
    "attention_hidden": 64,
    "bottleneck": 128,
    "embedding_dim": 64,
    "dropout": 0.1,
    "triplet_classes": "label",        # label | method
    "lambda_0": 0.2,
    "fixed_epochs": 4,
    "ada_epochs": 4,
    "final_epochs": 4,
    "k_delta": 2.0,
    "k_an": 2.0,
    "lambda_n": 1.0,
    "beta_0": 0.0,
    "reduction": "nonzero",            # mean over the triplets with a positive loss
    "classes_per_batch": 8,
    "per_class": 8,
    "lr": 1.0e-3,
    "weight_decay": 1.0e-4,
    "head_c": 10.0,                    # logistic regression inverse regularisation
    "num_threads": 0,
    "abx_triplets": 10000,
}


def _check_section(value: Any, where: str) -> None:
    """The backbone's model must be had (checked only for the backbone in use)."""
    backbone = value.get("backbone", DEFAULTS["backbone"])
    if backbone == "whisper":
        from .whisper_engine import check_model  # noqa: PLC0415  (numpy only; no torch)

        check_model(value.get("whisper_model", DEFAULTS["whisper_model"]), f"{where}.whisper_model",
                    "openai-whisper")
    elif backbone == "wav2vec2":
        _C.check_hub_model(value.get("wav2vec2_model", DEFAULTS["wav2vec2_model"]),
                           f"{where}.wav2vec2_model")


# params schema of the ``audio_model`` section (train_audio_model)
PARAMS = _C.from_defaults(DEFAULTS, {
    "backbone": _C.Choice(*BACKBONES), "frame_stride": _C.Int(ge=1), "max_seconds": _C.Float(gt=0),
    "n_filters": _C.Int(ge=1), "conv_channels": _C.Int(ge=1), "conv_blocks": _C.Int(ge=1),
    "attention_hidden": _C.Int(ge=1), "bottleneck": _C.Int(ge=1), "embedding_dim": _C.Int(ge=1),
    "dropout": _C.Float(ge=0, lt=1), "triplet_classes": _C.Choice("label", "method"),
    "lambda_0": _C.Float(ge=0), "fixed_epochs": _C.Int(ge=0), "ada_epochs": _C.Int(ge=0),
    "final_epochs": _C.Int(ge=0), "reduction": _C.Choice("nonzero", "mean", "sum"),
    "classes_per_batch": _C.Int(ge=2), "per_class": _C.Int(ge=2), "lr": _C.Float(gt=0),
    "weight_decay": _C.Float(ge=0), "head_c": _C.Float(gt=0), "num_threads": _C.Int(ge=0),
    "abx_triplets": _C.Int(ge=1)}, check=_check_section)
