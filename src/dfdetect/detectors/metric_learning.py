"""metric_learning.txt (Kumar & Bhavsar, "Detecting Deepfakes with Metric Learning"): triplets + RF / SGD.

Every aligned face is embedded once by a frozen face-recognition network (the cached
``face_embeddings`` stage, ``data/face_emb``: FaceNet 512-d in the paper, dlib's 128-d ResNet
offline, see :mod:`dfdetect.faceid.embed`). This detector learns a small triplet network on top
of those embeddings and classifies the learned embeddings with a Random Forest
(``triplet_rf``) or an SGD linear classifier (``triplet_sgd``), the two rows of the paper's
Table III:

- input: at most ``frames_per_video`` (25, paper section V) faces per video, uniform over the
  stored ones, L2-normalised;
- head (the paper gives no layers; the recommended reading of the spec): ``Linear(d, hidden) ->
  BatchNorm1d -> ReLU -> Dropout -> Linear(hidden, embedding_dim) -> L2-normalise``;
- loss: Eq. 1, ``max(||f(A)-f(P)||^2 - ||f(A)-f(N)||^2 + alpha, 0)`` (``distance: sqeuclidean``),
  positives share the label (real / fake, or the manipulation method with
  ``triplet_classes: method``);
- mining: online semi-hard (section III-E: ``d(a,p) < d(a,n) < d(a,p) + alpha``, every such
  triplet of the batch; all valid triplets when none is) or ``all`` (the paper's "randomly pick"
  comparison), on P x K batches (``classes_per_batch`` x ``per_class`` faces);
- Adam; after every epoch the chosen classifier is fitted on the train embeddings and scored on
  val; the epoch with the best val AUC is kept;
- classifiers: scikit-learn with ``class_weight: balanced``; a frame's score is
  ``predict_proba[:, fake]`` (RF) or ``sigmoid(decision_function)`` (SGD, so 0.5 is the linear
  decision boundary). Videos are scored by the evaluate stage's aggregation (mean).

Saved without pickles: ``head.safetensors`` (the MLP), ``classifier.npz`` (SGD ``coef``,
``intercept``, ``classes``; RF every tree's ``children_left``/``children_right``/``feature``/
``threshold``/``value`` concatenated, with ``offsets``), ``config.json``. ``load`` rebuilds the MLP
and a numpy predictor equal to scikit-learn's (RF: mean of the leaves' class fractions, inputs
compared as float32 like sklearn's trees).

``extra_metrics`` adds to ``metrics/<name>.json``: the other classifier on the same learned
embeddings (Table III has both), the raw-embedding ablation (the same classifier without the
triplet head, Fig. 6b) and the ABX accuracy of raw vs learned test embeddings (Figs. 6a/6c as a
number). :func:`tsne_table` / :func:`tsne_plot` draw Figs. 5-6 (stage ``triplet_plots``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from .base import Detector, DetectorData, check_scores, register

log = logging.getLogger(__name__)

CLASSIFIERS = ("sgd", "rf")

DEFAULTS: dict[str, Any] = {
    "classifier": "sgd",        # sgd | rf (Table III rows)
    "frames_per_video": 25,     # paper section V; the demo stores 8
    "hidden": 256,
    "embedding_dim": 128,
    "dropout": 0.1,
    "margin": 0.2,              # alpha of Eq. 1 (not given; FaceNet's value)
    "distance": "sqeuclidean",  # Eq. 1: squared L2
    "mining": "semihard",       # semihard (the paper) | all (random triplets) | hard | batch_hard
    "triplet_classes": "label",  # label (real / fake) | method (real + each manipulation)
    "classes_per_batch": 2,
    "per_class": 32,
    "epochs": 30,
    "lr": 1.0e-3,
    "weight_decay": 1.0e-4,
    "class_weight": "balanced",  # balanced | none
    "sgd": {"loss": "hinge", "alpha": 1.0e-4, "max_iter": 1000, "tol": 1.0e-3},
    "rf": {"n_estimators": 100, "max_depth": 0, "min_samples_leaf": 1},   # max_depth 0: unlimited
    "abx_triplets": 10000,
    "num_threads": 0,
}


def _checks():
    from ..nn.losses import DISTANCES, MINING  # noqa: PLC0415

    C = _cfg
    return {
        "classifier": C.Choice(*CLASSIFIERS), "frames_per_video": C.Int(ge=1), "hidden": C.Int(ge=1),
        "embedding_dim": C.Int(ge=2), "dropout": C.Float(ge=0, lt=1), "margin": C.Float(gt=0),
        "distance": C.Choice(*DISTANCES), "mining": C.Choice(*MINING),
        "triplet_classes": C.Choice("label", "method"), "classes_per_batch": C.Int(ge=2),
        "per_class": C.Int(ge=2), "epochs": C.Int(ge=1), "lr": C.Float(gt=0),
        "weight_decay": C.Float(ge=0), "class_weight": C.Choice("balanced", "none"),
        "sgd.loss": C.Choice("hinge", "log_loss", "modified_huber", "squared_hinge", "perceptron"),
        "sgd.alpha": C.Float(gt=0), "sgd.max_iter": C.Int(ge=1), "sgd.tol": C.Float(ge=0),
        "rf.n_estimators": C.Int(ge=1), "rf.max_depth": C.Int(ge=0), "rf.min_samples_leaf": C.Int(ge=1),
        "abx_triplets": C.Int(ge=1), "num_threads": C.Int(ge=0),
    }


# ----------------------------------------------------------------------------- pieces
def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pick_frames(items: pd.DataFrame, per_video: int) -> pd.DataFrame:
    """At most ``per_video`` rows of each video, uniform over its stored rows (round(linspace))."""
    keep = []
    for _, grp in items.groupby("video_id", sort=False):
        idx = grp.index.to_numpy()
        if len(idx) > per_video:
            idx = idx[np.unique(np.round(np.linspace(0, len(idx) - 1, per_video)).astype(int))]
        keep.append(idx)
    if not keep:
        return items.iloc[0:0]
    return items.loc[np.concatenate(keep)].reset_index(drop=True)


def make_head(d_in: int, hidden: int, dim: int, dropout: float):
    import torch  # noqa: PLC0415

    class TripletHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.BatchNorm1d(hidden),
                                           torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                           torch.nn.Linear(hidden, dim))

        def forward(self, x):
            return torch.nn.functional.normalize(self.net(x), dim=1)

    return TripletHead()


def fit_classifier(kind: str, x: np.ndarray, y: np.ndarray, params: dict, seed: int):
    """scikit-learn's SGD or RF (the detector's params) fitted on ``x``, ``y`` (0 real / 1 fake)."""
    cw = None if params["class_weight"] == "none" else "balanced"
    if kind == "sgd":
        from sklearn.linear_model import SGDClassifier  # noqa: PLC0415

        s = params["sgd"]
        clf = SGDClassifier(loss=s["loss"], alpha=float(s["alpha"]), max_iter=int(s["max_iter"]),
                            tol=float(s["tol"]), random_state=int(seed) % (2**32), class_weight=cw)
    elif kind == "rf":
        from sklearn.ensemble import RandomForestClassifier  # noqa: PLC0415

        r = params["rf"]
        clf = RandomForestClassifier(n_estimators=int(r["n_estimators"]),
                                     max_depth=int(r["max_depth"]) or None,
                                     min_samples_leaf=int(r["min_samples_leaf"]),
                                     random_state=int(seed) % (2**32), n_jobs=1, class_weight=cw)
    else:
        raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {kind!r}")
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # SGD's ConvergenceWarning on tiny demos
        clf.fit(np.asarray(x, np.float32), np.asarray(y, np.int64))
    return clf


class NumpyClassifier:
    """A fitted SGD or RF as plain arrays: P(fake) of float inputs, no scikit-learn object."""

    def __init__(self, kind: str, arrays: dict[str, np.ndarray]):
        self.kind = kind
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        classes = self.arrays["classes"].astype(np.int64).tolist()
        if classes != [0, 1]:
            raise ValueError(f"classifier classes must be [0, 1], got {classes}")

    @classmethod
    def from_sklearn(cls, kind: str, clf) -> "NumpyClassifier":
        classes = np.asarray(clf.classes_, np.int64)
        if kind == "sgd":
            # kept in their fitted dtype (float32 inputs give float32 coefficients), so that
            # ``decision`` is sklearn's own ``X @ coef.T + intercept``, bit for bit
            return cls(kind, {"coef": np.asarray(clf.coef_), "intercept": np.asarray(clf.intercept_),
                              "classes": classes})
        parts: dict[str, list] = {k: [] for k in ("children_left", "children_right", "feature",
                                                  "threshold", "value")}
        offsets = [0]
        for est in clf.estimators_:
            t = est.tree_
            parts["children_left"].append(t.children_left.astype(np.int64))
            parts["children_right"].append(t.children_right.astype(np.int64))
            parts["feature"].append(t.feature.astype(np.int64))
            parts["threshold"].append(t.threshold.astype(np.float64))
            parts["value"].append(t.value[:, 0, :].astype(np.float64))
            offsets.append(offsets[-1] + t.node_count)
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        arrays["offsets"] = np.asarray(offsets, np.int64)
        arrays["classes"] = classes
        return cls(kind, arrays)

    def decision(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        return (np.asarray(x, a["coef"].dtype) @ a["coef"].T + a["intercept"])[:, 0].astype(np.float64)

    def proba(self, x: np.ndarray) -> np.ndarray:
        """(n, 2) class probabilities of the forest (sklearn's ``predict_proba``)."""
        a = self.arrays
        x = np.asarray(x, np.float32)       # sklearn's trees compare float32 inputs
        n = x.shape[0]
        total = np.zeros((n, a["value"].shape[1]), np.float64)
        off = a["offsets"]
        rows = np.arange(n)
        for t in range(len(off) - 1):
            lo = int(off[t])
            left, right = a["children_left"][lo:off[t + 1]], a["children_right"][lo:off[t + 1]]
            feat, thr = a["feature"][lo:off[t + 1]], a["threshold"][lo:off[t + 1]]
            node = np.zeros(n, np.int64)
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                f = np.where(inner, feat[node], 0)
                go_left = x[rows, f] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            v = a["value"][lo + node]
            total += v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
        return total / (len(off) - 1)

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(fake) per row."""
        if self.kind == "sgd":
            z = self.decision(x)
            return 1.0 / (1.0 + np.exp(-z))
        return self.proba(x)[:, 1]

    def size(self) -> int:
        a = self.arrays
        return int(a["coef"].size + a["intercept"].size) if self.kind == "sgd" else int(a["feature"].size)


def _auc(y, s) -> float:
    from ..nn.train import roc_auc  # noqa: PLC0415

    return roc_auc(y, s)


# params schema of the ``triplet_plots`` section (stages/triplet_plots.py)
PLOTS = _cfg.Section({
    "detector": _cfg.Choice("triplet_sgd", "triplet_rf"),
    "split": _cfg.Choice("train", "val", "test"),
    "max_faces": _cfg.Int(ge=3),
    "perplexity": _cfg.Float(gt=0),
})


# ----------------------------------------------------------------------------- the detector
class TripletDetector(Detector):
    """Triplet head on frozen face embeddings + RF / SGD (metric_learning.txt Table III)."""

    inputs: ClassVar[tuple[str, ...]] = ("face_emb",)
    level: ClassVar[str] = "frame"
    paper: ClassVar[str] = "metric_learning.txt (Table III)"
    defaults: ClassVar[dict] = DEFAULTS

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.head = None
        self.clf: NumpyClassifier | None = None
        self.d_in = 0
        self.embedder: dict = {}
        self._fit: dict = {}

    @classmethod
    def param_schema(cls):
        if not cls.checks:
            cls.checks = _checks()
        return super().param_schema()

    # ------------------------------------------------------------------ data
    def _items(self, data: DetectorData, split: str) -> pd.DataFrame:
        items = data.usable_items("face_emb", split, ("embedding",), who=self.name)
        return pick_frames(items, int(self.params["frames_per_video"]))

    def _raw(self, data: DetectorData, items: pd.DataFrame) -> np.ndarray:
        from ..faceid.reader import read_embeddings  # noqa: PLC0415

        x, attrs = read_embeddings(data.source("face_emb"), items)
        if not self.embedder:
            emb = attrs.get("embedder")
            self.embedder = emb if isinstance(emb, dict) else ({} if emb is None else _json(emb))
        return l2_normalise(x) if len(x) else x

    def _triplet_labels(self, items: pd.DataFrame) -> np.ndarray:
        if self.params["triplet_classes"] == "label":
            return items["y"].to_numpy(np.int64)
        kind = np.where(items["y"].to_numpy() == 1, "fake:" + items["method"].astype(str), "real")
        return pd.factorize(pd.Series(kind), sort=True)[0].astype(np.int64)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """The learned embedding of raw (L2-normalised) face embeddings."""
        import torch  # noqa: PLC0415

        if self.head is None:
            raise RuntimeError(f"{self.name}: fit or load the detector first")
        if len(x) == 0:
            return np.zeros((0, int(self.params["embedding_dim"])), np.float32)
        self.head.eval()
        with torch.no_grad():
            return self.head(torch.from_numpy(np.asarray(x, np.float32))).numpy()

    # ------------------------------------------------------------------ interface
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        import copy  # noqa: PLC0415
        import time  # noqa: PLC0415

        import torch  # noqa: PLC0415

        from ..nn.losses import mine_triplets, pk_batches, triplet_loss  # noqa: PLC0415
        from ..nn.train import deterministic  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        tr, va = self._items(data, "train"), self._items(data, "val")
        if len(tr) == 0 or tr["y"].nunique() < 2:
            raise ValueError(f"{self.name}: the train split of {data.source('face_emb')} needs real and "
                             f"fake faces (got {len(tr)} faces, labels {sorted(set(tr['y']))})")
        x_tr, x_va = self._raw(data, tr), self._raw(data, va)
        y_tr, y_va = tr["y"].to_numpy(np.int64), va["y"].to_numpy(np.int64)
        lab = self._triplet_labels(tr)
        self.d_in = int(x_tr.shape[1])
        kind, margin, dist = p["classifier"], float(p["margin"]), p["distance"]
        log.info("%s: %d train faces (%d fake) of %d videos, %d val faces; %d-d %s embeddings", self.name,
                 len(tr), int(y_tr.sum()), tr["video_id"].nunique(), len(va), self.d_in,
                 self.embedder.get("name", "?"))
        history, best, best_state = [], None, None
        t0 = time.perf_counter()
        with deterministic(seed, int(p["num_threads"])):
            self.head = make_head(self.d_in, int(p["hidden"]), int(p["embedding_dim"]), float(p["dropout"]))
            opt = torch.optim.Adam(self.head.parameters(), lr=float(p["lr"]),
                                   weight_decay=float(p["weight_decay"]))
            xt = torch.from_numpy(np.array(x_tr, np.float32))
            lt = torch.from_numpy(np.array(lab, np.int64))
            for epoch in range(int(p["epochs"])):
                self.head.train()
                losses, triplets = [], 0
                for batch in pk_batches(lab, int(p["classes_per_batch"]), int(p["per_class"]), seed, epoch):
                    if len(batch) < 3:
                        continue
                    idx = torch.as_tensor(batch)
                    e = self.head(xt[idx])
                    a, pp, n = mine_triplets(e, lt[idx], p["mining"], margin, dist)
                    if a.numel() == 0:
                        continue
                    loss = triplet_loss(e[a], e[pp], e[n], margin, dist)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                    triplets += int(a.numel())
                e_tr = self.embed(x_tr)
                clf = NumpyClassifier.from_sklearn(kind, fit_classifier(kind, e_tr, y_tr, p, seed))
                rec = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                       "triplets": triplets,
                       "train_auc": _auc(y_tr, clf.score(e_tr)),
                       "val_auc": _auc(y_va, clf.score(self.embed(x_va))) if len(va) else float("nan")}
                history.append(rec)
                if logger is not None:
                    for k, v in rec.items():
                        if k != "epoch" and math.isfinite(float(v)):
                            logger.log_metric(k.replace("_", "/", 1), v)
                    logger.next_step()
                score = rec["val_auc"] if math.isfinite(rec["val_auc"]) else rec["train_auc"]
                score = score if math.isfinite(score) else -math.inf
                if best is None or score > best[0]:
                    best = (score, epoch)
                    best_state = (copy.deepcopy(self.head.state_dict()), clf)
            self.head.load_state_dict(best_state[0])
            self.head.eval()
            self.clf = best_state[1]
        self._fit = {"train_faces": len(tr), "train_fake": int(y_tr.sum()), "val_faces": len(va),
                     "best_epoch": int(best[1]), "history": history, "d_in": self.d_in}
        return {**self._fit, "train_seconds": time.perf_counter() - t0}

    def _score_items(self, data: DetectorData, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        items = self._items(data, split)
        return items, (self._raw(data, items) if len(items) else np.zeros((0, self.d_in), np.float32))

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        if self.head is None or self.clf is None:
            raise RuntimeError(f"{self.name}: fit or load the detector before scoring")
        items, x = self._score_items(data, split)
        s = self.clf.score(self.embed(x)) if len(items) else np.zeros(0)
        out = pd.DataFrame({"video_id": items["video_id"].astype(str).to_numpy(),
                            "frame_index": items["frame_index"].to_numpy(np.int64),
                            "score": np.asarray(s, np.float64)})
        return check_scores(out, self.name)

    def extra_metrics(self, data: DetectorData, test_scores: pd.DataFrame) -> dict:
        """The other classifier, the raw-embedding ablation and ABX (see the module docstring)."""
        from ..metrics import abx_accuracy, evaluate  # noqa: PLC0415

        p = self.params
        seed = int(data.seed)
        tr, te = self._items(data, "train"), self._items(data, "test")
        if len(te) == 0:
            return {}
        if len(tr) == 0 or tr["y"].nunique() < 2:
            # a test set of another dataset (evaluate --set) has no train split to refit on
            return {"note": "no train split of both classes in this manifest: the classifier "
                            "comparison and the raw-embedding ablation are in-dataset only",
                    "abx_raw": abx_accuracy(self._raw(data, te), te["y"].to_numpy(np.int64),
                                            int(p["abx_triplets"]), seed, "sqeuclidean"),
                    "embedder": self.embedder}
        x_tr, x_te = self._raw(data, tr), self._raw(data, te)
        y_tr = tr["y"].to_numpy(np.int64)
        e_tr, e_te = self.embed(x_tr), self.embed(x_te)
        other = "rf" if p["classifier"] == "sgd" else "sgd"

        def measure(kind, a_tr, a_te) -> dict:
            clf = NumpyClassifier.from_sklearn(kind, fit_classifier(kind, a_tr, y_tr, p, seed))
            sc = pd.DataFrame({"video_id": te["video_id"].astype(str).to_numpy(),
                               "frame_index": te["frame_index"].to_numpy(np.int64),
                               "score": clf.score(a_te)})
            res = evaluate(sc, data.manifest, aggregate="mean", threshold=0.5)
            keys = ("auc", "eer", "accuracy", "precision", "recall", "f1", "tnr",
                    "precision_real", "recall_real", "f1_real")
            return {lvl: {k: res[lvl].get(k) for k in keys} for lvl in ("frame", "video")}

        labels = te["y"].to_numpy(np.int64)
        n = int(p["abx_triplets"])
        return {
            "threshold_note": "extra entries use the fixed threshold 0.5",
            f"triplets_{other}": measure(other, e_tr, e_te),
            f"raw_{p['classifier']}": measure(p["classifier"], x_tr, x_te),
            "abx_raw": abx_accuracy(x_te, labels, n, seed, "sqeuclidean"),
            "abx_learned": abx_accuracy(e_te, labels, n, seed, "sqeuclidean"),
            "embedder": self.embedder,
        }

    def save(self, directory: Path) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        from ..saab.pixelhop import write_npz  # noqa: PLC0415

        if self.head is None or self.clf is None:
            raise RuntimeError(f"{self.name}: nothing to save (fit or load first)")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(directory / "head.safetensors"), metadata={"format": "pt"})
        write_npz(directory / "classifier.npz", self.clf.arrays)
        self.write_config(directory, extra={"classifier_kind": self.clf.kind, "d_in": self.d_in,
                                            "embedder": self.embedder, "fit": self._fit,
                                            "parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "TripletDetector":
        from ..model_files import ModelLoadError, fit_state_dict, load_npz, load_safetensors, require  # noqa: PLC0415

        directory = Path(directory)
        obj, cfg = cls.from_config(directory)
        obj.d_in = int(require(cfg, "d_in", directory / "config.json"))
        obj.embedder = dict(cfg.get("embedder") or {})
        obj._fit = dict(cfg.get("fit") or {})
        p = obj.params
        obj.head = make_head(obj.d_in, int(p["hidden"]), int(p["embedding_dim"]), float(p["dropout"]))
        path = directory / "head.safetensors"
        fit_state_dict(obj.head, load_safetensors(path), path)
        obj.head.eval()
        kind = str(cfg.get("classifier_kind", p["classifier"]))
        names = ("coef", "intercept", "classes") if kind == "sgd" else (
            "children_left", "children_right", "feature", "threshold", "value", "offsets", "classes")
        npz = directory / "classifier.npz"
        try:
            obj.clf = NumpyClassifier(kind, load_npz(npz, names))
        except ValueError as exc:
            if isinstance(exc, ModelLoadError):
                raise
            raise ModelLoadError(npz, str(exc)) from None
        return obj

    def init_info(self) -> dict:
        emb = self.embedder or {}
        if emb.get("name") == "dlib_face_recognition_resnet_model_v1":
            what = ("frozen dlib_face_recognition_resnet_model_v1 (face-recognition-models, offline, "
                    f"128-d; substitute for FaceNet VGGFace2 512-d, sha256 {str(emb.get('file_sha256', ''))[:12]})")
        elif emb:
            what = f"frozen {emb.get('name')} ({emb.get('dim')}-d, {emb.get('file')}, sha256 {str(emb.get('file_sha256', ''))[:12]})"
        else:
            what = "frozen face embeddings (data/face_emb; embedder not read yet)"
        return {"init": f"{what} + triplet head (random, seeded)", "embedder": emb}

    def num_parameters(self) -> dict:
        head = sum(int(t.numel()) for t in self.head.parameters()) if self.head is not None else 0
        clf = self.clf.size() if self.clf is not None else 0
        return {"total": head + clf, "head": head, "classifier": clf}


def _json(value) -> dict:
    import json  # noqa: PLC0415

    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {"name": str(value)}
    return out if isinstance(out, dict) else {"name": str(out)}


@register("triplet_sgd")
class TripletSGD(TripletDetector):
    """metric_learning.txt Table III "Triplets + SGD"."""
    defaults = {**DEFAULTS, "classifier": "sgd"}


@register("triplet_rf")
class TripletRF(TripletDetector):
    """metric_learning.txt Table III "Triplets + RF"."""
    defaults = {**DEFAULTS, "classifier": "rf"}


# ----------------------------------------------------------------------------- t-SNE (Figs. 5-6)
def tsne_table(detector: TripletDetector, data: DetectorData, split: str = "test", max_faces: int = 400,
               perplexity: float = 30.0, seed: int = 0) -> pd.DataFrame:
    """Seeded 2-d t-SNE of ``split``'s raw and learned embeddings: columns embedding (raw |
    learned), x, y, label, video_id, frame_index. At most ``max_faces`` faces (seeded draw)."""
    from sklearn.manifold import TSNE  # noqa: PLC0415

    items = detector._items(data, split)
    if len(items) > max_faces:
        keep = np.sort(np.random.default_rng(seed).choice(len(items), max_faces, replace=False))
        items = items.iloc[keep].reset_index(drop=True)
    if len(items) < 3:
        raise ValueError(f"t-SNE needs at least 3 {split} faces, got {len(items)}")
    raw = detector._raw(data, items)
    parts = []
    for name, x in (("raw", raw), ("learned", detector.embed(raw))):
        ts = TSNE(n_components=2, perplexity=min(float(perplexity), (len(items) - 1) / 3.0),
                  init="pca", random_state=int(seed) % (2**32), n_jobs=1)
        xy = ts.fit_transform(np.asarray(x, np.float64))
        parts.append(pd.DataFrame({"embedding": name, "x": np.round(xy[:, 0], 4), "y": np.round(xy[:, 1], 4),
                                   "label": np.where(items["y"].to_numpy() == 1, "fake", "real"),
                                   "video_id": items["video_id"].astype(str).to_numpy(),
                                   "frame_index": items["frame_index"].to_numpy(np.int64)}))
    return pd.concat(parts, ignore_index=True)


def tsne_plot(table: pd.DataFrame, path: str | Path, title: str = "") -> None:
    """Two panels (raw, learned), real vs fake colours; written atomically, no timestamps."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from ..store import atomic_path  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, name, what in zip(axes, ("raw", "learned"), ("face embeddings (before)", "triplet embeddings (after)")):
        sub = table[table["embedding"] == name]
        for label, colour in (("real", "tab:blue"), ("fake", "tab:red")):
            s = sub[sub["label"] == label]
            ax.scatter(s["x"], s["y"], s=8, c=colour, label=label, alpha=0.7)
        ax.set_title(what)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
