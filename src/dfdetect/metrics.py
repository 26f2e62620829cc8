"""Detection metrics shared by every detector and the ``evaluate`` stage.

Convention: ``y = 1`` means fake (the positive class), ``score`` is the probability (or any
monotone score) that the item is fake. In the vocabulary of two_branch.txt §4, a *false
acceptance* is a real item flagged as fake, so FAR = false-positive rate and TAR = true-positive
rate of the ROC.

Definitions (``binary_metrics``)

- ``accuracy``, ``precision``, ``recall``, ``f1``: at ``score >= threshold`` (scikit-learn;
  precision and F1 are 0 when nothing is flagged, recall and F1 are NaN without fakes);
  ``precision_real``, ``recall_real`` (= TNR), ``f1_real``: the same with *real* as the positive
  class (metric_learning.txt Table III's convention), NaN recall/F1 without reals.
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
- ``tauc_pts_<far>``: the literal formula of two_branch.txt §4, ``sum TAR_i / |F_tau|`` with
  ``F_tau`` the ROC's operating points (one per distinct threshold, the (0, 0) start included)
  with FAR <= ``far``; for comparison with that paper's tables only: it depends on the number of
  thresholds (ties, sample size) and weights the vertical run at FAR = 0 heavily.
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


def tauc_points(fpr: np.ndarray, tpr: np.ndarray, far: float) -> float:
    """two_branch.txt's tAUC read literally: mean TAR over the operating points with FAR <= far
    (``fpr``/``tpr`` from ``roc_curve(drop_intermediate=False)``, starting at (0, 0))."""
    far = _check_far(far)
    return float(np.mean(tpr[fpr <= far]))


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
    # real as the positive class (metric_learning.txt Table III): recall_real = TNR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p0, r0, f0, _ = precision_recall_fscore_support(y, pred, average="binary", pos_label=0,
                                                        zero_division=0.0)
    n_neg = int(y.size - n_pos)
    out["precision_real"] = float(p0)
    out["recall_real"] = float(r0) if n_neg else math.nan
    out["f1_real"] = float(f0) if n_neg else math.nan

    keys = ["auc", "eer", "eer_threshold"]
    for far in far_points:
        k = far_key(far)
        keys += [f"pauc_{k}", f"tauc_{k}", f"tauc_pts_{k}", f"tar_{k}", f"tar_{k}_threshold"]
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
            out[f"tauc_pts_{k}"] = tauc_points(fpr, tpr, far)
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


def _manifest_column(manifest: pd.DataFrame, vids: pd.Series, col: str) -> np.ndarray:
    if col not in manifest.columns:
        return np.full(len(vids), "", dtype=object)
    values = manifest.set_index("video_id")[col].fillna("").astype(str)
    return vids.map(values).fillna("").to_numpy(dtype=object)


def _groups_of(manifest: pd.DataFrame, vids: pd.Series) -> tuple[np.ndarray, str]:
    """Bootstrap group of each row: its video's identity; a video without one is its own group."""
    ident = _manifest_column(manifest, vids, "identity")
    missing = ident == ""
    groups = np.where(missing, "video:" + vids.astype(str).to_numpy(dtype=object), "id:" + ident)
    if not missing.any():
        how = "identity"
    elif missing.all():
        how = "video (the manifest has no identity)"
    else:
        how = f"identity ({int(pd.Series(vids[missing]).nunique())} videos without one: their own group)"
    return groups, how


def _logwp_thresholds(thresholds: Mapping | None, level: str) -> dict[float, float]:
    table = ((thresholds or {}).get("logwp") or {}).get(level) or {}
    return {float(k[1:]): float(v) if v is not None else math.nan for k, v in table.items()}


def _breakdowns(y: np.ndarray, s: np.ndarray, groups: np.ndarray, methods: np.ndarray,
                qualities: np.ndarray, mkw: dict) -> dict:
    """Video-level breakdowns: each method's fakes against the reals of the same quality(ies),
    and each quality (both classes); method x quality when there are several qualities."""
    fake = y == 1
    fake_methods = sorted({m for m in methods[fake] if m})
    quals = sorted({q for q in qualities if q})

    def entry(mask):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            m = level_metrics(y[mask], s[mask], groups[mask], **mkw)
        return {k: v for k, v in m.items()
                if k in BREAKDOWN_KEYS or (k.startswith("logwp_r") and k[7:8].isdigit())}

    out: dict[str, dict] = {}
    if fake_methods:
        by = {}
        for method in fake_methods:
            mine = fake & (methods == method)
            q_of = {q for q in qualities[mine]}
            reals = ~fake & (np.isin(qualities, sorted(q_of)) if quals else True)
            by[method] = entry(mine | reals)
        out["by_method"] = by
    if quals:
        out["by_quality"] = {q: entry(qualities == q) for q in quals}
    if fake_methods and len(quals) > 1:
        out["by_method_quality"] = {
            f"{m}/{q}": entry((fake & (methods == m) & (qualities == q)) | (~fake & (qualities == q)))
            for m in fake_methods for q in quals if np.any(fake & (methods == m) & (qualities == q))}
    return out


def evaluate(frame_scores: pd.DataFrame, manifest: pd.DataFrame, aggregate: str = "mean", *,
             thresholds: Mapping | None = None, bootstrap: int = 0, seed: int = 0,
             ci_level: float = 0.95, breakdowns: bool = False, **kw) -> dict:
    """Frame- and video-level metrics of a detector's score table.

    ``frame_scores``: video_id, frame_index, score (frame_index = -1 for video/utterance-level
    scores). Labels come from the manifest (``label == "fake"`` -> 1). The frame level uses the
    rows with frame_index >= 0 and is omitted when there are none; the video level aggregates
    every row of a video with ``aggregate``. ``kw`` goes to :func:`binary_metrics`.

    ``thresholds`` (from :func:`choose_thresholds`) gives each level its operating threshold
    and the val thresholds of log(wP) at each recall; without it both levels use
    ``kw["threshold"]``. ``bootstrap`` draws (seeded by ``seed``) give every AUC/EER a
    ``ci_level`` interval, resampling the manifest's identities (:func:`level_metrics`).
    ``breakdowns`` adds the video level's per-method / per-quality entries.
    """
    _check_scores(frame_scores, "evaluate")
    df = frame_scores.copy()
    if "frame_index" not in df.columns:
        df["frame_index"] = -1
    base = dict(kw)
    fixed = float(base.pop("threshold", 0.5))
    mkw = dict(base, bootstrap=int(bootstrap), seed=int(seed), ci_level=float(ci_level))
    out: dict[str, dict] = {}
    frames = df[df["frame_index"].astype(int) >= 0]
    levels = []
    if len(frames):
        levels.append(("frame", frames))
    videos = aggregate_videos(df, aggregate)
    levels.append(("video", videos))
    for level, table in levels:
        y = labels_of(table, manifest)
        s = table["score"].to_numpy(float)
        groups, how = _groups_of(manifest, table["video_id"])
        thr = float(thresholds[level]) if thresholds is not None else fixed
        m = level_metrics(y, s, groups, table["video_id"].to_numpy(), threshold=thr,
                          logwp_thresholds=_logwp_thresholds(thresholds, level), **mkw)
        m["threshold_source"] = (thresholds.get("source") or {}).get(level, "fixed") \
            if thresholds is not None else "fixed"
        m["bootstrap"]["groups"] = how
        out[level] = m
        if level == "video" and breakdowns:
            bd = _breakdowns(y, s, groups, _manifest_column(manifest, table["video_id"], "method"),
                             _manifest_column(manifest, table["video_id"], "quality"),
                             dict(mkw, threshold=thr, logwp_thresholds=_logwp_thresholds(thresholds, level)))
            if bd:
                out["breakdowns"] = bd
    out["video"]["aggregate"] = aggregate if len(frames) else "none"
    return out


def pool_sets(sets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One score table and manifest over several named sets: ``video_id`` and ``identity``
    prefixed with ``<name>::`` so that ids of different datasets never merge."""
    scores, manifests = [], []
    for name, (sc, man) in sets.items():
        sc = sc.copy()
        sc["video_id"] = f"{name}::" + sc["video_id"].astype(str)
        man = man.copy()
        if "identity" not in man.columns:
            man["identity"] = ""
        ident = man["identity"].fillna("").astype(str)
        man["identity"] = np.where(ident == "", "", f"{name}::" + ident)
        man["video_id"] = f"{name}::" + man["video_id"].astype(str)
        scores.append(sc)
        manifests.append(man)
    return pd.concat(scores, ignore_index=True), pd.concat(manifests, ignore_index=True)


def evaluate_sets(test_scores: pd.DataFrame, manifest: pd.DataFrame,
                  val_scores: pd.DataFrame | None = None,
                  sets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None, *,
                  aggregate: str = "mean", threshold: float = 0.5, threshold_from: str = "val",
                  logwp_recalls: Sequence[float] = (0.1, 0.5, 0.9), bootstrap: int = 1000,
                  seed: int = 0, ci_level: float = 0.95, **kw) -> dict:
    """The cross-dataset protocol: in-dataset test, any number of named extra sets, pooled.

    Thresholds are chosen on ``val_scores`` (the training dataset's val split,
    :func:`choose_thresholds`) and applied to the test split and to every set. ``sets`` maps a
    name to ``(scores, manifest)`` of another dataset (any labels: two classes, only reals or
    only fakes). Returns ``{"thresholds", "test", "val" (when given), "sets": {name: ...},
    "pooled" (all fakes vs all reals of the sets, when there are sets)}``; each entry is an
    :func:`evaluate` result with breakdowns. ``kw`` goes to :func:`binary_metrics`.
    """
    alpha = float(kw.get("alpha", 100.0))
    thr = choose_thresholds(val_scores, manifest, aggregate, threshold, threshold_from,
                            logwp_recalls, alpha)
    ekw = dict(kw, aggregate=aggregate, thresholds=thr, bootstrap=bootstrap, seed=seed,
               ci_level=ci_level, breakdowns=True)
    out: dict[str, Any] = {"thresholds": thr, "test": evaluate(test_scores, manifest, **ekw)}
    if val_scores is not None and len(val_scores):
        out["val"] = evaluate(val_scores, manifest, **ekw)
    out.update(evaluate_extra_sets(sets or {}, **ekw))
    return out


def _with_notes(fn, *args, **kwargs) -> dict:
    """``fn(...)`` with its UndefinedMetricWarning messages listed under ``warnings``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UndefinedMetricWarning)
        entry = fn(*args, **kwargs)
    notes = sorted({str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)})
    if notes:
        entry["warnings"] = notes
    return entry


def evaluate_extra_sets(sets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], **ekw) -> dict:
    """``{"sets": {name: entry}, "pooled": entry}`` of named extra sets (``{}`` without any).

    Each set's entry is :func:`evaluate` (``ekw``: thresholds chosen on the training dataset's
    val split, bootstrap, ...) with ``coverage`` (its manifest's videos vs the scored ones) and
    ``warnings``; a set whose table is bad (unknown videos, NaN scores, missing columns) gets
    ``{"error": reason}`` and stays out of the pool. ``pooled``: all fakes against all reals of
    the good sets (ids prefixed by set name, :func:`pool_sets`), ``sets`` naming them.
    """
    if not sets:
        return {}
    out: dict[str, Any] = {"sets": {}}
    good = {}
    for name, (sc, man) in sets.items():
        try:
            entry = _with_notes(evaluate, sc, man, **ekw)
        except (ValueError, KeyError) as err:   # a bad set: say why, go on with the rest
            out["sets"][str(name)] = {"error": f"set {name!r}: {err}"}
            continue
        videos = set(man["video_id"].astype(str))
        scored = set(sc["video_id"].astype(str))
        missing = sorted(videos - scored)
        entry["coverage"] = {"videos": len(videos), "scored": len(scored), "unscored": len(missing),
                             "unscored_examples": missing[:5]}
        out["sets"][str(name)] = entry
        good[name] = (sc, man)
    if good:
        out["pooled"] = _with_notes(evaluate, *pool_sets(good), **dict(ekw, breakdowns=False))
        out["pooled"]["sets"] = [str(n) for n in good]
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


# ----------------------------------------------------------------------------- bootstrap intervals
# Weighted metrics: ``w`` is a (draws, n) matrix of non-negative weights (how many times each
# row was drawn), the same rows for every draw; each returns one value per draw, NaN where the
# metric is undefined for that draw (a class absent). With unit weights they equal the
# unweighted metrics above (``weighted_auc`` = roc_auc_score, ``weighted_eer`` = ``eer``).
# ``prepare(y, s, codes)`` does the sorting once and returns ``f(counts_t)`` taking the
# (groups, draws) counts of a bootstrap block directly: row i weighs ``counts_t[codes[i]]``
# (rows of that layout are contiguous, so gathering a row's weights for every draw is a copy).
_BOOT_BLOCK = 100           # draws per RNG call: the draws never depend on the data's size
_BOOT_CELLS = 1_000_000     # weights held at once (draws x rows), bounds the memory


class _WeightedMetric:
    name = ""

    def __call__(self, y, s, w) -> np.ndarray:
        y, s = _check(y, s, f"weighted_{self.name}")
        w = np.atleast_2d(np.asarray(w))
        if w.shape[1] != y.size:
            raise ValueError(f"weighted_{self.name}: {y.size} items but weights of shape {w.shape}")
        return self.prepare(y, s, np.arange(y.size))(np.ascontiguousarray(w.T))

    def prepare(self, y: np.ndarray, s: np.ndarray, codes: np.ndarray):
        """``f(counts_t)``: one value per draw from the (groups, draws) weight of each group."""
        raise NotImplementedError


class _Auc(_WeightedMetric):
    """AUC (ties count one half) as the weighted Mann-Whitney statistic: each fake scores the
    real weight below it plus half the real weight tied with it (positions found once)."""

    name = "auc"

    def prepare(self, y, s, codes):
        real, fake = y == 0, y == 1
        order = np.argsort(s[real], kind="mergesort")
        s_real, c_real = s[real][order], codes[real][order]
        lo = np.searchsorted(s_real, s[fake], side="left")    # reals strictly below
        hi = np.searchsorted(s_real, s[fake], side="right")   # reals below or tied
        c_fake = codes[fake]

        def f(counts_t):
            ct = np.asarray(counts_t, dtype=float)
            cum = np.zeros((c_real.size + 1, ct.shape[1]))
            np.cumsum(ct[c_real], axis=0, out=cum[1:])    # real weight up to each real score
            wp = ct[c_fake]
            num = np.einsum("ij,ij->j", wp, cum[lo] + cum[hi]) / 2.0
            pos, neg = wp.sum(axis=0), cum[-1]
            with np.errstate(invalid="ignore", divide="ignore"):
                out = num / (pos * neg)
            out[(pos <= 0) | (neg <= 0)] = np.nan
            return out

        return f


class _Eer(_WeightedMetric):
    """EER on the weighted ROC through every distinct threshold, interpolated like :func:`eer`."""

    name = "eer"

    def prepare(self, y, s, codes):
        order = np.argsort(-s, kind="mergesort")
        ss = s[order]
        ends = np.r_[np.nonzero(np.diff(ss))[0], ss.size - 1]   # last row of each tie group
        c_sorted, fake = codes[order], y[order].astype(bool)[:, None]

        def f(counts_t):
            ct = np.asarray(counts_t)
            exact = np.issubdtype(ct.dtype, np.integer)   # bootstrap counts: integer sums
            with np.errstate(invalid="ignore", divide="ignore"):
                return _eer_cols(ct.astype(np.int32 if exact else float, copy=False))

        def _eer_cols(ct):
            w = ct[c_sorted]                             # (rows by descending score, draws)
            all_ = np.cumsum(w, axis=0, dtype=w.dtype)   # rows flagged at each threshold
            w *= fake
            tp = np.cumsum(w, axis=0, dtype=w.dtype)     # fakes flagged
            del w
            if ends.size < ss.size:
                tp, all_ = tp[ends], all_[ends]
            pos = tp[-1].astype(float)
            neg = all_[-1].astype(float) - pos
            bad = (pos <= 0) | (neg <= 0)
            # FRR >= FAR  <=>  1 - tp/P >= (all - tp)/N  <=>  (P - N) tp - P all >= -P N: with
            # integer weights every term is an exact integer in float64 (no rounding at equality)
            crit = tp * (pos - neg)
            crit -= all_ * pos
            # i: the last ROC point (0 = the origin, k = row k - 1) with FRR >= FAR
            i = np.sum(crit >= -(pos * neg), axis=0)
            del crit
            i = np.clip(i, 0, tp.shape[0] - 1)
            cols = np.arange(tp.shape[1])
            jj = np.maximum(i - 1, 0)
            at0 = i == 0
            tp0 = np.where(at0, 0.0, tp[jj, cols])
            fp0 = np.where(at0, 0.0, all_[jj, cols] - tp[jj, cols])
            tp1 = tp[i, cols].astype(float)
            fp1 = all_[i, cols] - tp1
            f0, f1 = fp0 / neg, fp1 / neg
            d0 = 1.0 - tp0 / pos - f0                     # FRR - FAR at both ends
            d1 = 1.0 - tp1 / pos - f1
            t = np.where(d0 == 0, 0.0, d0 / (d0 - d1))
            out = f0 + t * (f1 - f0)
            out[bad] = np.nan
            return out

        return f


weighted_auc = _Auc()
weighted_eer = _Eer()


def flag_rate_fn(threshold: float):
    """Weighted fraction of items flagged fake (score >= ``threshold``): the false-alarm rate
    of a real-only set, the detection rate of a fake-only set."""
    threshold = float(threshold)

    def flag_rate(y, s, w) -> np.ndarray:
        _, s = _check(y, s, "flag_rate")
        w = np.atleast_2d(np.asarray(w, dtype=float))
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = (w @ (s >= threshold).astype(float)) / total
        out[total <= 0] = np.nan
        return out

    flag_rate.__name__ = f"flag_rate@{threshold:g}"
    return flag_rate


BOOTSTRAP_METRICS = {"auc": weighted_auc, "eer": weighted_eer}


def _group_codes(groups, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups).ravel()
    if g.size != n:
        raise ValueError(f"bootstrap_ci: {n} items but {g.size} group labels")
    _, codes = np.unique(g.astype(str), return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1 if n else 0


def bootstrap_ci(y, s, groups, metric_fn, draws: int = 1000, seed: int = 0, level: float = 0.95,
                 units=None) -> dict:
    """Cluster-bootstrap percentile interval of ``metric_fn`` on ``(y, s)``.

    Each draw resamples the groups (a video's group is its identity) with replacement and keeps
    every row of a drawn group as many times as it was drawn: one row per video for video-level
    metrics, all of an identity's frames for frame-level ones. ``metric_fn`` is a name of
    ``BOOTSTRAP_METRICS`` ("auc", "eer") or a vectorised ``f(y, s, w) -> (draws,)`` taking a
    (draws, n) weight matrix (see :func:`weighted_auc`, :func:`flag_rate_fn`). Draws where the
    metric is undefined (one class absent for AUC/EER) are skipped and counted. The interval is
    the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles of the used draws (NaN when none
    or ``draws == 0``). ``groups=None`` resamples rows. ``units`` (e.g. the video of each frame)
    only sets the reported ``n``. Same inputs and seed, same interval.

    Returns ``{"point", "lo", "hi", "n", "n_groups", "draws", "used", "skipped", "level"}``.
    """
    y, s = _check(y, s, "bootstrap_ci")
    fn = BOOTSTRAP_METRICS[metric_fn] if isinstance(metric_fn, str) else metric_fn
    if not callable(fn):
        raise ValueError(f"bootstrap_ci: metric_fn must be one of {sorted(BOOTSTRAP_METRICS)} "
                         f"or a callable, got {metric_fn!r}")
    draws = int(draws)
    level = float(level)
    if draws < 0:
        raise ValueError(f"bootstrap_ci: draws must be >= 0, got {draws}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap_ci: level must be in (0, 1), got {level}")
    codes, n_groups = _group_codes(groups, y.size)
    n = int(np.unique(np.asarray(units).astype(str)).size) if units is not None else int(y.size)
    point = float(fn(y, s, np.ones((1, y.size)))[0]) if y.size else math.nan
    out = {"point": point, "lo": math.nan, "hi": math.nan, "n": n, "n_groups": n_groups,
           "draws": draws, "used": 0, "skipped": 0, "level": level}
    if draws == 0 or y.size == 0:
        return out
    rng = np.random.default_rng(int(seed))
    rows_at_once = max(1, _BOOT_CELLS // max(y.size, 1))
    prepared = fn.prepare(y, s, codes) if hasattr(fn, "prepare") else None
    values = []
    for start in range(0, draws, _BOOT_BLOCK):
        b = min(_BOOT_BLOCK, draws - start)
        pick = rng.integers(0, n_groups, size=(b, n_groups))
        counts = np.bincount((pick + n_groups * np.arange(b)[:, None]).ravel(),
                             minlength=b * n_groups).reshape(b, n_groups)
        for r in range(0, b, rows_at_once):
            block = counts[r:r + rows_at_once]
            v = prepared(np.ascontiguousarray(block.T)) if prepared is not None \
                else fn(y, s, block[:, codes])
            values.append(np.asarray(v, dtype=float).ravel())
    vals = np.concatenate(values)
    ok = np.isfinite(vals)
    out["used"], out["skipped"] = int(ok.sum()), int((~ok).sum())
    if ok.any():
        lo, hi = np.percentile(vals[ok], [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
        out["lo"], out["hi"] = float(lo), float(hi)
    return out


# ----------------------------------------------------------------------------- operating points
THRESHOLD_FROM = ("val", "fixed")
THRESHOLD_RULE = "eer_on_val"   # the val split's EER threshold (``eer_threshold``), per level
BREAKDOWN_KEYS = ("n", "n_pos", "n_neg", "n_videos", "n_identities", "auc", "auc_ci", "eer",
                  "eer_ci", "threshold", "tpr", "tnr", "accuracy", "undefined", "mean_score",
                  "median_score", "flag_rate", "flag_rate_ci")


def rates_at(y, score, threshold: float) -> dict:
    """TPR (fakes flagged, NaN without fakes) and TNR (reals passed: real-class accuracy, NaN
    without reals) at ``score >= threshold``."""
    y, s = _check(y, score, "rates_at")
    flag = s >= float(threshold)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    tpr = float(np.mean(flag[y == 1])) if n_pos else math.nan
    tnr = float(np.mean(~flag[y == 0])) if n_neg else math.nan
    return {"tpr": tpr, "tnr": tnr}


def logwp_at_threshold(y, score, threshold: float, alpha: float = 100.0) -> dict:
    """ln(TP / (TP + alpha FP)) at ``score >= threshold`` (a threshold chosen elsewhere, e.g.
    on val) and the recall it reaches; NaN without fakes or threshold, -inf when no fake passes."""
    y, s = _check(y, score, "logwp_at_threshold")
    n_pos = int(y.sum())
    if n_pos == 0 or not math.isfinite(float(threshold)):
        return {"logwp": math.nan, "recall": math.nan}
    flag = s >= float(threshold)
    tp = float(np.sum(flag & (y == 1)))
    fp = float(np.sum(flag & (y == 0)))
    wp = tp / (tp + float(alpha) * fp) if tp + fp > 0 else 0.0
    return {"logwp": float(np.log(wp)) if wp > 0 else -math.inf, "recall": tp / n_pos}


def recall_key(recall: float) -> str:
    """Suffix of the log(wP)-at-recall keys: ``0.5 -> "r0.5"`` (``logwp_r0.5``)."""
    return f"r{float(recall):g}"


def level_metrics(y, score, groups=None, units=None, *, threshold: float = 0.5,
                  logwp_thresholds: Mapping[float, float] | None = None, bootstrap: int = 0,
                  seed: int = 0, ci_level: float = 0.95, **kw) -> dict:
    """:func:`binary_metrics` plus what the cross-dataset protocol reports.

    Added keys: ``tpr``/``tnr`` at ``threshold``; ``n_videos`` (distinct ``units``, else rows)
    and ``n_identities`` (distinct ``groups``); ``auc_ci``/``eer_ci`` (``[lo, hi]``, the
    :func:`bootstrap_ci` percentile interval over ``bootstrap`` identity-grouped draws; null
    when undefined or disabled) and ``bootstrap`` (draws, used, skipped, level);
    ``logwp_r<R>``, ``logwp_r<R>_recall``, ``logwp_r<R>_threshold`` for each recall R of
    ``logwp_thresholds`` (recall -> threshold chosen on val). A one-class input (only reals or
    only fakes) also gets ``undefined`` (why AUC/EER are null), ``mean_score``,
    ``median_score``, ``flag_rate`` (share flagged fake at ``threshold``) with ``flag_rate_ci``,
    and the same rate as ``false_alarm_rate`` (reals) or ``detection_rate`` (fakes).
    """
    y, s = _check(y, score, "level_metrics")
    if y.size == 0:
        raise ValueError("level_metrics: no items to evaluate")
    out = binary_metrics(y, s, threshold=threshold, **kw)
    out.update(rates_at(y, s, threshold))
    codes, n_groups = _group_codes(groups, y.size)
    out["n_videos"] = int(np.unique(np.asarray(units).astype(str)).size) if units is not None else int(y.size)
    out["n_identities"] = n_groups
    boot = {"draws": int(bootstrap), "used": 0, "skipped": 0, "level": float(ci_level)}
    one_class = out["n_pos"] == 0 or out["n_neg"] == 0
    if one_class:
        kind = "fake" if out["n_neg"] == 0 else "real"
        out["undefined"] = (f"one class only ({out['n']} {kind} items, no "
                            f"{'real' if kind == 'fake' else 'fake'} ones): AUC, EER and the ROC "
                            "metrics need both classes")
        out["auc_ci"] = out["eer_ci"] = None
        out["mean_score"] = float(np.mean(s))
        out["median_score"] = float(np.median(s))
        ci = bootstrap_ci(y, s, codes, flag_rate_fn(threshold), bootstrap, seed, ci_level)
        out["flag_rate"] = ci["point"]
        out["flag_rate_ci"] = [ci["lo"], ci["hi"]] if bootstrap else None
        out["false_alarm_rate" if kind == "real" else "detection_rate"] = ci["point"]
        boot.update(used=ci["used"], skipped=ci["skipped"])
    else:
        for name in ("auc", "eer"):
            ci = bootstrap_ci(y, s, codes, name, bootstrap, seed, ci_level)
            out[f"{name}_ci"] = [ci["lo"], ci["hi"]] if bootstrap else None
            boot.update(used=ci["used"], skipped=ci["skipped"])
    out["bootstrap"] = boot
    alpha = float(kw.get("alpha", 100.0))
    for recall, thr in sorted((logwp_thresholds or {}).items()):
        k = recall_key(recall)
        r = logwp_at_threshold(y, s, thr, alpha)
        out[f"logwp_{k}"], out[f"logwp_{k}_recall"] = r["logwp"], r["recall"]
        out[f"logwp_{k}_threshold"] = float(thr)
    return out


def check_threshold_params(threshold: float, threshold_from: str,
                           logwp_recalls: Sequence[float]) -> tuple[float, list[float]]:
    """Validate the threshold params (``evaluate`` section) with errors naming them."""
    if threshold_from not in THRESHOLD_FROM:
        raise ValueError(f"evaluate.threshold_from must be one of {', '.join(THRESHOLD_FROM)}, "
                         f"got {threshold_from!r}")
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"evaluate.threshold must be a number, got {threshold!r}") from None
    if not math.isfinite(threshold):
        raise ValueError(f"evaluate.threshold must be a finite number, got {threshold}")
    if isinstance(logwp_recalls, (str, bytes)) or not isinstance(logwp_recalls, Sequence):
        raise ValueError(f"evaluate.logwp_recalls must be a list of recalls, got {logwp_recalls!r}")
    recalls = []
    for r in logwp_recalls:
        try:
            r = float(r)
        except (TypeError, ValueError):
            raise ValueError(f"evaluate.logwp_recalls must hold numbers, got {r!r}") from None
        if not 0.0 < r <= 1.0:
            raise ValueError(f"evaluate.logwp_recalls must lie in (0, 1], got {r}")
        recalls.append(r)
    return threshold, recalls


def choose_thresholds(val_frame_scores: pd.DataFrame | None, manifest: pd.DataFrame | None,
                      aggregate: str = "mean", threshold: float = 0.5, threshold_from: str = "val",
                      logwp_recalls: Sequence[float] = (0.1, 0.5, 0.9),
                      alpha: float = 100.0) -> dict:
    """Operating thresholds, per level (frame, video), chosen on the val split.

    ``threshold_from="val"``: the EER threshold of the val scores at that level (where FAR =
    FRR on val); ``"fixed"``: ``threshold`` itself. Either way, when val is missing or has one
    class the fixed threshold is used and ``note`` says why. ``logwp`` holds, per level and
    recall R, the threshold of the best log(wP) with recall >= R on val (DFDC style; NaN
    without val fakes). The result is what ``evaluate(..., thresholds=...)`` applies to test and
    to every other set.
    """
    threshold, recalls = check_threshold_params(threshold, threshold_from, logwp_recalls)
    out: dict[str, Any] = {"from": threshold_from,
                           "rule": THRESHOLD_RULE if threshold_from == "val" else "fixed",
                           "fixed": threshold}
    levels = {}
    if val_frame_scores is not None and len(val_frame_scores):
        _check_scores(val_frame_scores, "choose_thresholds")
        df = val_frame_scores.copy()
        if "frame_index" not in df.columns:
            df["frame_index"] = -1
        frames = df[df["frame_index"].astype(int) >= 0]
        if len(frames):
            levels["frame"] = (labels_of(frames, manifest), frames["score"].to_numpy(float))
        videos = aggregate_videos(df, aggregate)
        levels["video"] = (labels_of(videos, manifest), videos["score"].to_numpy(float))
    notes = []
    out["source"], out["logwp"] = {}, {}
    for level in ("frame", "video"):
        yv, sv = levels.get(level, (np.zeros(0, np.int64), np.zeros(0)))
        two = yv.size > 0 and 0 < yv.sum() < yv.size
        out[level], out["source"][level] = threshold, "fixed"
        if threshold_from == "val":
            if two:
                out[level] = float(eer(yv, sv, return_threshold=True)[1])
                out["source"][level] = "val"
            elif level in levels or level == "video":
                why = "no val scores" if yv.size == 0 else f"val has one class ({yv.size} items)"
                notes.append(f"{level}: {why}; fixed threshold {threshold:g} used")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            out["logwp"][level] = {recall_key(r): (logwp(yv, sv, r, alpha)["logwp_threshold"]
                                                   if yv.sum() else math.nan) for r in recalls}
    if notes:
        out["note"] = "; ".join(notes)
    return out
