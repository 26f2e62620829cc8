"""DADA's text branch: an authorship-attribution embedding trained with a triplet loss.

dada.txt §3.1: a pretrained encoder (:mod:`dfdetect.text.encoder`, last three hidden states,
attention-masked mean pooling) followed by fully connected layers, trained so that texts of one
author lie close together: triplet loss (Eq. 1) with the squared Euclidean or the cosine
distance and margin ``margin``, on P x K batches (``authors_per_batch`` authors,
``per_author`` texts each) with ``mining`` (all | semihard | hard | batch_hard) triplets.

``finetune: false`` (the CPU default) freezes the encoder: its pooled features are computed once
per text and only the head is trained. ``finetune: true`` trains the encoder too (the paper's
fine-tuning; needs a GPU for a real corpus).

Evaluation (dada.txt Table 2): ABX accuracy of the test embeddings (``dfdetect.metrics.
abx_accuracy`` with the training distance) and macro F1 of closed-set author classification
by the nearest author centroid (centroids of the train embeddings).

:meth:`TextAuthorModel.author_probs` gives ``p(A = a | T = t)`` over enrolled authors as a
softmax of ``-d(f(t), c_a) / temperature`` (the quantity dada.txt §7 needs);
:meth:`fit` picks the temperature by the likelihood of the true author on the held-out val
texts (:meth:`heldout_temperature`; centroids of the train texts), and only without usable
val texts by leave-one-out on the train texts (:meth:`fit_temperature`). The head is trained
on the train texts, so their leave-one-out attribution is often perfect and the likelihood
then grows without bound as the temperature falls: the fit stops at the grid's lower end
(0.001), and whether one text is misattributed decides between that and ~0.05, a jump that
float differences between machines (thread count) were enough to trigger.

Saved as ``model.safetensors`` (head, plus encoder weights when fine-tuned) and
``config.json``; the packaged encoder is re-located at load time, never copied.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import config as _cfg
from ..nn.losses import mine_triplets, pairwise_distance, pk_batches, triplet_loss
from .params import DEFAULTS, PARAMS  # noqa: F401  (defaults and schema: light, no torch)

log = logging.getLogger(__name__)


_ENCODERS: dict[tuple, Any] = {}


def _new_encoder(p: dict):
    from .encoder import TextEncoder  # noqa: PLC0415

    return TextEncoder(p["backbone"], int(p["layers"]), p["combine"], int(p["max_length"]))


def _frozen_encoder(p: dict):
    """Frozen encoders are shared within a process (the mid and late detectors, tests)."""
    key = (str(p["backbone"]), int(p["layers"]), str(p["combine"]), int(p["max_length"]))
    if key not in _ENCODERS:
        _ENCODERS[key] = _new_encoder(p).eval()
    return _ENCODERS[key]


class Head(nn.Module):
    """Fully connected head: Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def nearest_centroid(emb: np.ndarray, centroids: np.ndarray, distance: str) -> np.ndarray:
    with torch.no_grad():
        d = pairwise_distance(torch.from_numpy(emb).double(), torch.from_numpy(centroids).double(), distance)
    return d.numpy()


def centroids_of(emb: np.ndarray, labels: Sequence) -> tuple[list, np.ndarray]:
    labels = np.asarray(labels)
    names = sorted(set(labels.tolist()))
    return names, np.stack([emb[labels == n].mean(0) for n in names]).astype(np.float32)


class TextAuthorModel:
    """Encoder + head; :meth:`fit` on an ``author, text, split`` table."""

    def __init__(self, **params: Any):
        _cfg.check_unknown(params, DEFAULTS, "text_model")
        self.params = {**DEFAULTS, **params}
        self._encoder = None
        self.head: Head | None = None
        self.history: list[dict] = []
        self.authors: list[str] = []
        self.centroids = np.zeros((0, 0), dtype=np.float32)
        self.temperature = 0.1
        self.temperature_source = ""
        self.finetuned = False

    # ------------------------------------------------------------------ parts
    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = _frozen_encoder(self.params) if not self.params["finetune"] else \
                _new_encoder(self.params)
        return self._encoder

    def _build_head(self, in_dim: int, seed: int) -> None:
        torch.manual_seed(int(seed))
        p = self.params
        self.head = Head(in_dim, int(p["hidden"]), int(p["embedding_dim"]), float(p["dropout"]))

    def features(self, texts: Sequence[str]) -> np.ndarray:
        """Pooled encoder features (frozen; a fine-tuned encoder's own)."""
        return self.encoder.features(list(texts), int(self.params["batch_size"]))

    @torch.no_grad()
    def embed_features(self, feats: np.ndarray) -> np.ndarray:
        """The head on each row of ``feats`` alone: a row's embedding does not depend on the
        other rows (MKL's GEMM gives a row other bits when the row count changes)."""
        assert self.head is not None, "model not fitted"
        self.head.eval()
        x = torch.from_numpy(np.asarray(feats, dtype=np.float32))
        return (torch.cat([self.head(row[None]) for row in x]) if len(x) else self.head(x)).numpy()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Author embeddings of ``texts`` (float32, one row each), each text encoded alone: no
        padding to its batch's longest text and no batch-shaped GEMM, so a text's embedding (and
        DADA's score of its utterance) is the same in any batch (about 2x the encoder time of
        batches of 32)."""
        return self.embed_features(self.encoder.features(list(texts), 1))

    # ------------------------------------------------------------------ training
    def fit(self, corpus: pd.DataFrame, seed: int = 0, logger: Any | None = None,
            features: np.ndarray | None = None) -> dict:
        """Train on ``corpus[split == "train"]``; ``features`` (pooled encoder features of every
        corpus row, in order) may be given to skip the encoder (tests, caching). Runs with
        torch's deterministic algorithms (the backward of the triplet gathers is otherwise not
        reproducible across processes with several threads)."""
        from ..nn.train import deterministic  # noqa: PLC0415

        with deterministic(int(seed), int(self.params["num_threads"] or 0)):
            return self._fit(corpus, seed, logger, features)

    def _fit(self, corpus: pd.DataFrame, seed: int, logger: Any | None,
             features: np.ndarray | None) -> dict:
        p = self.params
        corpus = corpus.reset_index(drop=True)
        train = np.nonzero((corpus["split"] == "train").to_numpy())[0]
        if corpus.loc[train, "author"].nunique() < 2:
            raise ValueError("text model: the train split needs at least two authors")
        t0 = time.perf_counter()
        finetune = bool(p["finetune"]) and features is None
        if features is None and not finetune:
            features = self.features(corpus["text"].tolist())
        feat_seconds = time.perf_counter() - t0
        in_dim = features.shape[1] if features is not None else self.encoder.out_dim
        self._build_head(in_dim, seed)
        params = [{"params": self.head.parameters(), "lr": float(p["lr"])}]
        if finetune:
            params.append({"params": self.encoder.model.parameters(), "lr": float(p["encoder_lr"])})
        opt = torch.optim.AdamW(params, weight_decay=float(p["weight_decay"]))
        codes, names = pd.factorize(corpus["author"])
        codes_t = torch.from_numpy(codes.astype(np.int64))
        feats_t = torch.from_numpy(features) if features is not None else None
        texts = corpus["text"].tolist()
        self.history = []
        torch.manual_seed(int(seed))
        for epoch in range(int(p["epochs"])):
            t1 = time.perf_counter()
            self.head.train()
            if finetune:
                self.encoder.train()
            losses, n_trip = [], 0
            for batch in pk_batches(codes[train], int(p["authors_per_batch"]), int(p["per_author"]),
                                    seed, epoch):
                idx = torch.as_tensor(train[batch])
                x = self.encoder([texts[i] for i in idx.tolist()]) if finetune else feats_t[idx]
                emb = self.head(x)
                a, pp, n = mine_triplets(emb, codes_t[idx], p["mining"], float(p["margin"]), p["distance"])
                if a.numel() == 0:
                    continue
                loss = triplet_loss(emb[a], emb[pp], emb[n], float(p["margin"]), p["distance"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                n_trip += int(a.numel())
            rec = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
                   "triplets": n_trip, "seconds": time.perf_counter() - t1}
            self.history.append(rec)
            if logger is not None:
                logger.log_metric("text/loss", rec["loss"])
                logger.next_step()
        self.finetuned = finetune
        if finetune:
            self.encoder.eval()
        emb_all = self.embed_features(features) if features is not None else self.embed(texts)
        self.authors, self.centroids = centroids_of(emb_all[train], corpus.loc[train, "author"])
        val = np.nonzero(((corpus["split"] == "val") & corpus["author"].isin(self.authors)).to_numpy())[0]
        if val.size >= 4 and corpus.loc[val, "author"].nunique() >= 2:
            self.temperature = self.heldout_temperature(emb_all[val], corpus.loc[val, "author"].to_numpy())
            self.temperature_source = "val"
        else:
            self.temperature = self.fit_temperature(emb_all[train], corpus.loc[train, "author"].to_numpy())
            self.temperature_source = "train leave-one-out"
        return {"feature_seconds": feat_seconds, "epochs": len(self.history),
                "epoch_seconds": [h["seconds"] for h in self.history],
                "final_loss": self.history[-1]["loss"] if self.history else None,
                "authors": len(self.authors), "train_texts": int(train.size),
                "embeddings": emb_all}

    # ------------------------------------------------------------------ probabilities
    GRID = tuple(float(t) for t in np.geomspace(1e-3, 10.0, 41))

    def heldout_temperature(self, emb: np.ndarray, labels: np.ndarray,
                            grid: Sequence[float] | None = None, centroids: np.ndarray | None = None,
                            authors: Sequence[str] | None = None) -> float:
        """Temperature of :meth:`author_probs` maximising the mean log-likelihood of the true
        author of held-out texts ``emb`` (authors ``labels``, each among ``authors``) with
        ``centroids`` (default: the model's own authors and centroids)."""
        authors = list(self.authors if authors is None else authors)
        cents = self.centroids if centroids is None else centroids
        idx = {str(a): k for k, a in enumerate(authors)}
        code = np.array([idx[str(a)] for a in labels])
        dists = nearest_centroid(np.asarray(emb, np.float32), np.asarray(cents, np.float32),
                                 self.params["distance"])
        best, best_ll = float(self.temperature), -np.inf
        for t in grid or self.GRID:
            z = -dists / t
            z -= z.max(1, keepdims=True)
            ll = (z[np.arange(len(code)), code] - np.log(np.exp(z).sum(1))).mean()
            if ll > best_ll:
                best, best_ll = float(t), ll
        return best

    def fit_temperature(self, emb: np.ndarray, labels: np.ndarray,
                        grid: Sequence[float] | None = None) -> float:
        """Temperature of :meth:`author_probs` maximising the leave-one-out log-likelihood of
        the true author (centroids recomputed without the held-out text)."""
        labels = np.asarray(labels)
        names = sorted(set(labels.tolist()))
        if len(names) < 2:
            return float(self.temperature)
        code = np.array([names.index(l) for l in labels])
        sums = np.stack([emb[code == k].sum(0) for k in range(len(names))])
        counts = np.bincount(code, minlength=len(names)).astype(float)
        dists = np.empty((len(emb), len(names)))
        for i in range(len(emb)):
            cents = sums / np.maximum(counts, 1)[:, None]
            if counts[code[i]] > 1:
                cents = cents.copy()
                cents[code[i]] = (sums[code[i]] - emb[i]) / (counts[code[i]] - 1)
            dists[i] = nearest_centroid(emb[i:i + 1], cents.astype(np.float32), self.params["distance"])[0]
        ok = counts[code] > 1
        if not ok.any():
            return float(self.temperature)
        grid = grid or self.GRID
        best, best_ll = float(self.temperature), -np.inf
        for t in grid:
            z = -dists[ok] / t
            z -= z.max(1, keepdims=True)
            ll = (z[np.arange(ok.sum()), code[ok]] - np.log(np.exp(z).sum(1))).mean()
            if ll > best_ll:
                best, best_ll = float(t), ll
        return best

    def author_probs(self, emb: np.ndarray, centroids: np.ndarray | None = None,
                     temperature: float | None = None) -> np.ndarray:
        """``p(A = a | T = t)``: softmax over authors of ``-d(emb, centroid_a) / temperature``."""
        cents = self.centroids if centroids is None else centroids
        t = float(self.temperature if temperature is None else temperature)
        z = -nearest_centroid(np.asarray(emb, dtype=np.float32), np.asarray(cents, dtype=np.float32),
                              self.params["distance"]) / t
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, corpus: pd.DataFrame, emb: np.ndarray | None = None, seed: int = 0) -> dict:
        """ABX accuracy and nearest-centroid macro F1 / accuracy per split (Table 2)."""
        from sklearn.metrics import accuracy_score, f1_score  # noqa: PLC0415

        from ..metrics import abx_accuracy  # noqa: PLC0415

        corpus = corpus.reset_index(drop=True)
        if emb is None:
            emb = self.embed(corpus["text"].tolist())
        out: dict[str, Any] = {"authors": len(self.authors), "distance": self.params["distance"],
                               "temperature": self.temperature,
                               "temperature_source": self.temperature_source}
        for split in ("train", "val", "test"):
            m = (corpus["split"] == split).to_numpy()
            if m.sum() < 2:
                continue
            labels = corpus.loc[m, "author"].to_numpy()
            pred = np.asarray(self.authors)[nearest_centroid(emb[m], self.centroids,
                                                             self.params["distance"]).argmin(1)]
            out[split] = {
                "n": int(m.sum()),
                "abx": abx_accuracy(emb[m], labels, int(self.params["abx_triplets"]), seed,
                                    self.params["distance"]),
                "f1_macro": float(f1_score(labels, pred, average="macro", zero_division=0)),
                "accuracy": float(accuracy_score(labels, pred)),
                "chance_accuracy": 1.0 / max(1, len(self.authors)),
            }
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        if self.finetuned:
            tensors.update({f"encoder.{k}": v.detach().cpu().contiguous()
                            for k, v in self.encoder.model.state_dict().items()})
        tensors["centroids"] = torch.from_numpy(np.ascontiguousarray(self.centroids))
        save_file(tensors, str(directory / "model.safetensors"))
        cfg = {"kind": "dada_text", "params": self.params, "authors": self.authors,
               "temperature": self.temperature, "finetuned": self.finetuned,
               "in_dim": int(self.head.net[0].in_features),
               "history": [{k: v for k, v in h.items() if k != "seconds"} for h in self.history]}
        (directory / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "TextAuthorModel":
        from ..model_files import fit_state_dict, load_safetensors, model_file, read_config, require  # noqa: PLC0415

        directory = Path(directory)
        cfg_path = directory / "config.json"
        cfg = read_config(directory, expected="dada_text", key="kind")
        with model_file(cfg_path, "params the text model does not accept"):
            model = cls(**cfg["params"])
            model._build_head(int(cfg["in_dim"]), 0)
        path = directory / "model.safetensors"
        sd = load_safetensors(path)
        fit_state_dict(model.head, {k[5:]: v for k, v in sd.items() if k.startswith("head.")}, path)
        model.head.eval()
        if cfg.get("finetuned"):
            fit_state_dict(model.encoder.model,
                           {k[8:]: v for k, v in sd.items() if k.startswith("encoder.")}, path)
            model.finetuned = True
        model.centroids = require(sd, "centroids", path).numpy()
        with model_file(cfg_path, "authors/temperature unreadable"):
            model.authors = list(cfg["authors"])
            model.temperature = float(cfg["temperature"])
        model.history = cfg.get("history", [])
        return model

    def init_info(self) -> str:
        from .encoder import resolve_backbone  # noqa: PLC0415

        try:
            label = resolve_backbone(self.params["backbone"])[1]
        except RuntimeError:
            label = str(self.params["backbone"])
        return f"{label}{' (fine-tuned)' if self.finetuned else ' (frozen) + trained head'}"

    def num_parameters(self) -> dict:
        head = sum(p.numel() for p in self.head.parameters()) if self.head is not None else 0
        out = {"head": int(head)}
        if self._encoder is not None:
            out["encoder"] = int(sum(p.numel() for p in self._encoder.model.parameters()))
        return out


def train_text_model(corpus_cfg: dict, params: dict, seed: int = 0, logger: Any | None = None
                     ) -> tuple[TextAuthorModel, dict]:
    """Load the corpus (:func:`dfdetect.text.corpus.load_corpus` with ``corpus_cfg``), train a
    :class:`TextAuthorModel` and evaluate it: what ``stages/train_text_model.py`` runs."""
    from .corpus import load_corpus  # noqa: PLC0415

    cfg = dict(corpus_cfg or {})
    cfg.setdefault("seed", seed)
    corpus = load_corpus(**cfg)
    model = TextAuthorModel(**params)
    t0 = time.perf_counter()
    summary = model.fit(corpus, seed=seed, logger=logger)
    emb = summary.pop("embeddings")
    metrics = model.evaluate(corpus, emb, seed=seed)
    metrics.update(corpus={"texts": int(len(corpus)), "authors": int(corpus["author"].nunique()),
                           "by_split": {str(k): int(v) for k, v in corpus["split"].value_counts().items()},
                           **{k: v for k, v in cfg.items() if k != "seed"}},
                   training={k: v for k, v in summary.items()},
                   seconds=time.perf_counter() - t0, init=model.init_info(),
                   parameters=model.num_parameters())
    return model, metrics
