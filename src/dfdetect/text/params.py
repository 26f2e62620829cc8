"""Params of the text branch (``text_model`` section of params.yaml): defaults and schema.

Kept apart from :mod:`dfdetect.text.model` (which imports torch) so that a stage validates its
params before any heavy import.
"""

from __future__ import annotations

from typing import Any

from .. import config as _C

DISTANCES = ("cosine", "sqeuclidean")            # dfdetect.nn.losses.DISTANCES (tested equal)
MINING = ("all", "hard", "semihard", "batch_hard")  # dfdetect.nn.losses.MINING (tested equal)

DEFAULTS: dict[str, Any] = {
    "backbone": "packaged",       # packaged MiniLM | HF name | local dir
    "layers": 3,                  # last hidden states pooled (§3.1)
    "combine": "concat",          # mean | concat of the per-layer masked means
    "max_length": 128,
    "finetune": False,            # false: frozen encoder, cached features, head trained
    "hidden": 256,
    "embedding_dim": 128,
    "dropout": 0.1,
    "distance": "cosine",         # cosine | sqeuclidean
    "margin": 0.2,
    "mining": "semihard",
    "epochs": 30,
    "authors_per_batch": 8,
    "per_author": 4,
    "lr": 1.0e-3,
    "encoder_lr": 2.0e-5,
    "weight_decay": 1.0e-4,
    "batch_size": 64,             # feature extraction batch
    "num_threads": 0,
    "abx_triplets": 10000,
}

# the packaged MiniLM's names (dfdetect.text.encoder.PACKAGED, tested equal; that module imports torch)
PACKAGED = ("packaged", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "")


def _check_backbone(value: Any, where: str) -> None:
    _C.check_hub_model(value, where, PACKAGED)


def _check_corpus(value: Any, where: str) -> None:
    """fortunes: ``corpus.path`` "" (Debian's) or a folder; jsonl: an existing file."""
    if not isinstance(value.get("corpus"), dict):
        return
    corpus, where = value["corpus"], f"{where}.corpus"
    source, path = corpus.get("source", "fortunes"), corpus.get("path") or ""
    if source == "jsonl" and not _C.path_exists(path, "file"):
        raise _C.ParamError(f"{where}.path", path, "must be an existing JSONL file (corpus.source jsonl)")
    if source == "fortunes" and path and not _C.path_exists(path, "dir"):
        raise _C.ParamError(f"{where}.path", path, "must be '' (Debian's fortunes) or an existing "
                            "folder of fortune files (corpus.source fortunes)")


# params schema of the ``text_model`` section (train_text_model; ``corpus`` goes to load_corpus)
PARAMS = _C.from_defaults({**DEFAULTS, "corpus": {
    "source": "fortunes", "path": "", "min_quotes": 10, "max_authors": 0, "max_per_author": 0,
    "min_chars": 20, "max_chars": 600, "fractions": [0.6, 0.2, 0.2]}}, {
    "backbone": _C.Str(check=_check_backbone), "layers": _C.Int(ge=1), "combine": _C.Choice("concat", "mean"),
    "max_length": _C.Int(ge=8), "hidden": _C.Int(ge=1), "embedding_dim": _C.Int(ge=1),
    "dropout": _C.Float(ge=0, lt=1), "distance": _C.Choice(*DISTANCES), "margin": _C.Float(ge=0),
    "mining": _C.Choice(*MINING), "epochs": _C.Int(ge=1), "authors_per_batch": _C.Int(ge=2),
    "per_author": _C.Int(ge=2), "lr": _C.Float(gt=0), "encoder_lr": _C.Float(ge=0),
    "weight_decay": _C.Float(ge=0), "batch_size": _C.Int(ge=1), "num_threads": _C.Int(ge=0),
    "abx_triplets": _C.Int(ge=1),
    "corpus.source": _C.Choice("fortunes", "jsonl"), "corpus.path": _C.Str(),
    "corpus.min_quotes": _C.Int(ge=2), "corpus.max_authors": _C.Int(ge=0),
    "corpus.max_per_author": _C.Int(ge=0), "corpus.min_chars": _C.Int(ge=0),
    "corpus.max_chars": _C.Int(ge=1), "corpus.fractions": _C.fractions(3)}, check=_check_corpus)
