"""Detection metrics shared by every detector and the ``evaluate`` stage.

Convention: ``y = 1`` means fake (the positive class), ``score`` is the probability (or any
monotone score) that the item is fake. In the vocabulary of two_branch.txt §4, a *false
acceptance* is a real item flagged as fake, so FAR = false-positive rate and TAR = true-positive
rate of the ROC.

Definitions (``binary_metrics``)

- ``accuracy``, ``precision``, ``recall``, ``f1``: at ``score >= threshold`` (scikit-learn;
  precision and F1 are 0 when nothing is flagged, recall and F1 are NaN without fakes).
- ``auc``: area under the ROC (``sklearn.metrics.roc_auc_score``; ties count one half).
- The ROC is the piecewise-linear curve through the operating points of every distinct
  threshold, starting at (0, 0); ``tar_<far>`` is that curve at FAR = ``far`` (at a vertical
  step the highest TAR reached at that FAR), the curve whose areas are AUC and pAUC.
  ``tar_<far>_threshold`` is the lowest threshold whose FAR does not exceed ``far``.
- ``eer``: the equal error rate, where FAR = FRR (= 1 - TAR) on that curve (ASVspoof style,
  linearly interpolated between the two operating points that bracket the crossing);
  ``eer_threshold`` is the threshold interpolated the same way.
- ``pauc_<far>``: standardized partial AUC up to FAR (McClish 1989, two_branch.txt §4 [42]):
  ``0.5 * (1 + (A - far^2/2) / (far - far^2/2))`` with ``A`` the area under the ROC for
  FAR in [0, far]; 0.5 = chance, 1 = perfect. Equals ``roc_auc_score(max_fpr=far)``.
- ``tauc_<far>``: truncated AUC (two_branch.txt §4): the mean TAR over the FAR grid
  ``F_tau = {0, far/K, 2 far/K, ..., far}`` (K = ``tauc_steps``, 100 by default), i.e. the area
  of TARs up to ``far`` normalised by the total area up to ``far``.
- ``logwp``: DFDC preview (Dolhansky et al. 2019, arXiv:1910.08854) log weighted precision,
  ``ln(TP / (TP + alpha FP))`` with ``alpha = 100`` (false positives weighted to mimic the low
  prevalence of fakes in organic traffic), at the operating point with recall >=
  ``recall_for_logwp`` that maximises it (two_branch.txt §4.3 "best log(wP) ... maintaining the
  desired level of recall"); ``logwp_recall`` / ``logwp_threshold`` report that point.

``abx_accuracy`` follows dada.txt §4.1.2; ``evaluate`` computes frame- and video-level metrics
from a detector's score table and the manifest.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

AGGREGATES = ("mean", "median", "max")
DISTANCES = ("cosine", "sqeuclidean")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for this input (e.g. one class only) and is reported as NaN."""


# ----------------------------------------------------------------------------- helpers
def far_key(far: float) -> str:
    """Suffix of the per-FAR keys: ``0.01 -> "0.01"`` (``pauc_0.01``, ``tar_0.01``, ...)."""
    return f"{float(far):g}"


def _check(y, score, who: str = "metrics") -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{who}: {y.size} labels but {s.size} scores")
    nan = int(np.isnan(s).sum())
    inf = int(np.isinf(s).sum())
    if nan or inf:
        raise ValueError(f"{who}: {nan} NaN and {inf} infinite scores out of {s.size}; "
                         "scores must be finite")
    if y.dtype == bool:
        y = y.astype(np.int64)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"{who}: labels must be 0 (real) / 1 (fake), got {np.unique(y)[:5].tolist()}")
    return y.astype(np.int64), s


def _check_far(far: float) -> float:
    far = float(far)
    if not 0.0 < far <= 1.0:
        raise ValueError(f"FAR must be in (0, 1], got {far}")
    return far


def _roc(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every operating point (FAR, TAR, threshold), FAR ascending, starting at (0, 0, +inf)."""
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    return fpr, tpr, thr


def _tar_at(fpr: np.ndarray, tpr: np.ndarray, far) -> np.ndarray:
    """TAR of the piecewise-linear ROC at FAR ``far`` (scalar or array); highest TAR on a step."""
    far = np.atleast_1d(np.asarray(far, dtype=float))
    stop = np.searchsorted(fpr, far, side="right")  # first point with FAR > far
    out = np.ones_like(far)
    inside = stop < fpr.size
    lo = stop[inside] - 1  # last point with FAR <= far: the highest TAR at that FAR
    hi = stop[inside]
    x0, x1, y0, y1 = fpr[lo], fpr[hi], tpr[lo], tpr[hi]
    out[inside] = y0 + (far[inside] - x0) * (y1 - y0) / (x1 - x0)
    return out


def _partial_area(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Area under the piecewise-linear ROC for FAR in [0, far] (trapezoids)."""
    stop = np.searchsorted(fpr, far, side="right")
    x = np.append(fpr[:stop], far)
    yv = np.append(tpr[:stop], _tar_at(fpr, tpr, far)[0])
    return float(np.sum(np.diff(x) * (yv[1:] + yv[:-1]) / 2.0))


def mcclish_pauc(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """Standardized partial AUC (McClish 1989) of a ROC up to ``far``."""
    far = _check_far(far)
    area = _partial_area(fpr, tpr, far)
    lo, hi = far * far / 2.0, far
    return 0.5 * (1.0 + (area - lo) / (hi - lo))


def tauc(fpr: np.ndarray, tpr: np.ndarray, far: float, steps: int = 100) -> float:
    """Truncated AUC of two_branch.txt §4: mean TAR over ``{0, far/steps, ..., far}``."""
    far = _check_far(far)
    grid = np.linspace(0.0, far, int(steps) + 1)
    return float(np.mean(_tar_at(fpr, tpr, grid)))


def _eer(fpr: np.ndarray, tpr: np.ndarray, thr: np.ndarray) -> tuple[float, float]:
    fnr = 1.0 - tpr
    diff = fnr - fpr  # non-increasing from 1 (at (0,0)) to -1 (at (1,1))
    i = int(np.nonzero(diff >= 0)[0][-1])  # last point where FRR >= FAR
    if diff[i] == 0 or i + 1 >= diff.size:
        return float(fpr[i]), float(thr[i])
    t = diff[i] / (diff[i] - diff[i + 1])
    eer = float(fpr[i] + t * (fpr[i + 1] - fpr[i]))
    t0, t1 = thr[i], thr[i + 1]
    threshold = float(t1 if not np.isfinite(t0) else t0 + t * (t1 - t0))
    return eer, threshold


def _undefined(msg: str) -> None:
    warnings.warn(msg, UndefinedMetricWarning, stacklevel=3)


# ----------------------------------------------------------------------------- public API
def eer(y, score, return_threshold: bool = False):
    """Equal error rate (FAR = FRR on the interpolated ROC); NaN with a warning for one class."""
    y, s = _check(y, score, "eer")
    if y.size == 0 or y.min() == y.max():
        _undefined(f"EER undefined: only one class among {y.size} items")
        return (math.nan, math.nan) if return_threshold else math.nan
    value, thr = _eer(*_roc(y, s))
    return (value, thr) if return_threshold else value


def logwp(y, score, recall: float = 0.9, alpha: float = 100.0) -> dict:
    """DFDC-preview log weighted precision at recall >= ``recall`` (best such operating point)."""
    y, s = _check(y, score, "logwp")
    n_pos = int(y.sum())
    if n_pos == 0:
        _undefined("log(wP) undefined: no fake items")
        return {"logwp": math.nan, "logwp_recall": math.nan, "logwp_threshold": math.nan}
    order = np.argsort(-s, kind="mergesort")
    ss, yy = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(ss))[0], ss.size - 1]  # last index of each distinct score
    tps = np.cumsum(yy)[last].astype(float)
    fps = (last + 1) - tps
    rec = tps / n_pos
    ok = rec >= float(recall) - 1e-12
    wp = tps[ok] / (tps[ok] + float(alpha) * fps[ok])
    j = int(np.argmax(wp))
    return {"logwp": float(np.log(wp[j])), "logwp_recall": float(rec[ok][j]),
            "logwp_threshold": float(ss[last][ok][j])}


def binary_metrics(y, score, threshold: float = 0.5, far_points: Sequence[float] = (0.01, 0.1),
                   recall_for_logwp: float = 0.9, alpha: float = 100.0,
                   tauc_steps: int = 100) -> dict:
    """Every scalar metric of one binary evaluation (see the module docstring)."""
    y, s = _check(y, score, "binary_metrics")
    far_points = [_check_far(f) for f in far_points]
    n_pos = int(y.sum())
    out: dict[str, Any] = {"n": int(y.size), "n_pos": n_pos, "n_neg": int(y.size - n_pos),
                           "threshold": float(threshold)}
    if y.size == 0:
        raise ValueError("binary_metrics: no items to evaluate")
    pred = (s >= threshold).astype(np.int64)
    out["accuracy"] = float(np.mean(pred == y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=1,
                                                     zero_division=0.0)
    out["precision"] = float(p)
    out["recall"] = float(r) if n_pos else math.nan
    out["f1"] = float(f) if n_pos else math.nan

    keys = ["auc", "eer", "eer_threshold"]
    for far in far_points:
        k = far_key(far)
        keys += [f"pauc_{k}", f"tauc_{k}", f"tar_{k}", f"tar_{k}_threshold"]
    if n_pos == 0 or n_pos == y.size:
        _undefined(f"ranking metrics undefined: only {'fake' if n_pos else 'real'} items "
                   f"among {y.size}; AUC, EER, pAUC, tAUC, TAR are NaN")
        out.update({k: math.nan for k in keys})
    else:
        fpr, tpr, thr = _roc(y, s)
        out["auc"] = float(roc_auc_score(y, s))
        out["eer"], out["eer_threshold"] = _eer(fpr, tpr, thr)
        for far in far_points:
            k = far_key(far)
            out[f"pauc_{k}"] = mcclish_pauc(fpr, tpr, far)
            out[f"tauc_{k}"] = tauc(fpr, tpr, far, tauc_steps)
            out[f"tar_{k}"] = float(_tar_at(fpr, tpr, far)[0])
            feasible = np.nonzero(fpr <= far)[0]
            t = thr[feasible[-1]]
            out[f"tar_{k}_threshold"] = float(t) if np.isfinite(t) else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        out.update(logwp(y, s, recall_for_logwp, alpha))
    out["logwp_alpha"] = float(alpha)
    out["logwp_at_recall"] = float(recall_for_logwp)
    return out


def roc_points(y, score, max_points: int = 200) -> pd.DataFrame:
    """ROC operating points (far, tar, threshold), FAR ascending, at most ``max_points`` rows.

    Collinear points are dropped first (scikit-learn ``drop_intermediate``); if more remain,
    evenly spaced points are kept, always including both endpoints. The threshold of the
    (0, 0) point is written as the next float above the highest score instead of +inf.
    """
    y, s = _check(y, score, "roc_points")
    cols = ["far", "tar", "threshold"]
    if y.size == 0 or y.min() == y.max():
        _undefined(f"ROC undefined: only one class among {y.size} items")
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=True)
    thr = np.where(np.isfinite(thr), thr, np.nextafter(s.max(), np.inf))
    if fpr.size > max_points:
        keep = np.unique(np.round(np.linspace(0, fpr.size - 1, max(int(max_points), 2))).astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    return pd.DataFrame({"far": fpr, "tar": tpr, "threshold": thr})


def _check_scores(df: pd.DataFrame, who: str) -> None:
    missing = {"video_id", "score"} - set(df.columns)
    if missing:
        raise ValueError(f"{who}: score table lacks columns {sorted(missing)}")
    s = pd.to_numeric(df["score"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(f"{who}: {int(bad.sum())} of {len(df)} scores are NaN or infinite "
                         f"(e.g. video {df.loc[bad, 'video_id'].iloc[0]!r})")


def aggregate_videos(frame_scores: pd.DataFrame, how: str = "mean") -> pd.DataFrame:
    """One score per video: ``how`` (mean | median | max) of its rows' scores, by video_id."""
    if how not in AGGREGATES:
        raise ValueError(f"unknown aggregate {how!r}; choose one of {', '.join(AGGREGATES)}")
    _check_scores(frame_scores, "aggregate_videos")
    df = frame_scores[["video_id", "score"]].astype({"score": float})
    out = df.groupby("video_id", sort=True)["score"].agg(how).reset_index()
    return out[["video_id", "score"]]


def labels_of(scores: pd.DataFrame, manifest: pd.DataFrame) -> np.ndarray:
    lab = manifest.set_index("video_id")["label"]
    vids = scores["video_id"]
    unknown = ~vids.isin(lab.index)
    if unknown.any():
        ex = vids[unknown].unique()
        raise ValueError(f"evaluate: {len(ex)} scored videos are not in the manifest, "
                         f"e.g. {ex[:3].tolist()}")
    return (vids.map(lab).to_numpy() == "fake").astype(np.int64)


def evaluate(frame_scores: pd.DataFrame, manifest: pd.DataFrame, aggregate: str = "mean",
             **kw) -> dict:
    """Frame- and video-level metrics of a detector's score table.

    ``frame_scores``: video_id, frame_index, score (frame_index = -1 for video/utterance-level
    scores). Labels come from the manifest (``label == "fake"`` -> 1). The frame level uses the
    rows with frame_index >= 0 and is omitted when there are none; the video level aggregates
    every row of a video with ``aggregate``. ``kw`` goes to :func:`binary_metrics`.
    """
    _check_scores(frame_scores, "evaluate")
    df = frame_scores.copy()
    if "frame_index" not in df.columns:
        df["frame_index"] = -1
    out: dict[str, dict] = {}
    frames = df[df["frame_index"].astype(int) >= 0]
    if len(frames):
        out["frame"] = binary_metrics(labels_of(frames, manifest), frames["score"].to_numpy(float), **kw)
    videos = aggregate_videos(df, aggregate)
    out["video"] = binary_metrics(labels_of(videos, manifest), videos["score"].to_numpy(float), **kw)
    out["video"]["aggregate"] = aggregate if len(frames) else "none"
    return out


def _pairwise(a: np.ndarray, b: np.ndarray, distance: str) -> np.ndarray:
    if distance == "cosine":
        na = np.linalg.norm(a, axis=1)
        nb = np.linalg.norm(b, axis=1)
        return 1.0 - np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-12)
    if distance == "sqeuclidean":
        return np.sum((a - b) ** 2, axis=1)
    raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")


def abx_accuracy(embeddings, labels, n_triplets: int = 10000, seed: int = 0,
                 distance: str = "cosine") -> float:
    """ABX accuracy (dada.txt §4.1.2) over random triplets.

    X is drawn uniformly among items whose class has another item, A uniformly among the other
    items of X's class, B uniformly among the items of other classes; a triplet is correct when
    d(X, A) < d(X, B), and ties count one half. Any number of classes.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"abx_accuracy: embeddings must be (n, d), got shape {emb.shape}")
    lab = np.asarray(labels).ravel()
    if lab.size != emb.shape[0]:
        raise ValueError(f"abx_accuracy: {emb.shape[0]} embeddings but {lab.size} labels")
    if not np.isfinite(emb).all():
        raise ValueError(f"abx_accuracy: {int((~np.isfinite(emb)).any(axis=1).sum())} embeddings "
                         "contain NaN or infinite values")
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")
    classes, codes, counts = np.unique(lab, return_inverse=True, return_counts=True)
    eligible = np.nonzero(counts[codes] >= 2)[0]
    if classes.size < 2 or eligible.size == 0:
        _undefined("ABX accuracy undefined: needs two classes and a class with two items")
        return math.nan
    rng = np.random.default_rng(seed)
    members = [np.nonzero(codes == c)[0] for c in range(classes.size)]
    x = rng.choice(eligible, size=int(n_triplets))
    a = np.empty_like(x)
    b = np.empty_like(x)
    n = lab.size
    for i, xi in enumerate(x):
        same = members[codes[xi]]
        j = rng.integers(same.size - 1)
        a[i] = same[j] if same[j] != xi else same[-1]   # uniform over same class minus X
        k = rng.integers(n - same.size)                # uniform over the other classes
        b[i] = _nth_outside(codes, codes[xi], k, members)
    dxa = _pairwise(emb[x], emb[a], distance)
    dxb = _pairwise(emb[x], emb[b], distance)
    return float(np.mean((dxa < dxb) + 0.5 * (dxa == dxb)))


def _nth_outside(codes: np.ndarray, cls: int, k: int, members: list[np.ndarray]) -> int:
    for c, m in enumerate(members):
        if c == cls:
            continue
        if k < m.size:
            return int(m[k])
        k -= m.size
    raise IndexError(k)


def json_safe(obj: Any) -> Any:
    """Nested metrics with NaN/inf floats replaced by None (strict JSON) and numpy unwrapped."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
