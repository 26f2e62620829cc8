"""Score a fitted detector on the manifest's splits and measure it with :mod:`dfdetect.metrics`.

What ``stages/evaluate.py`` writes; lives beside the detectors (it drives one) so that the metrics
module depends on nothing but numpy, pandas and scikit-learn.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..metrics import (UndefinedMetricWarning, aggregate_videos, check_threshold_params,
                       choose_thresholds, evaluate, evaluate_extra_sets, json_safe, labels_of,
                       roc_points)
from .base import check_scores


def evaluate_detector(detector, data, splits: Sequence[str] = ("test", "val"), aggregate: str = "mean",
                      far_points: Sequence[float] = (0.01, 0.1), recall_for_logwp: float = 0.9,
                      logwp_alpha: float = 100.0, tauc_steps: int = 100, threshold: float = 0.5,
                      roc_max_points: int = 200, threshold_from: str = "val",
                      logwp_recalls: Sequence[float] = (0.1, 0.5, 0.9), bootstrap: int = 1000,
                      ci_level: float = 0.95, seed: int = 0,
                      extra_sets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                      ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score a fitted detector on ``splits`` and measure it: what ``stages/evaluate.py`` writes.

    Returns ``(scores, result, roc)``: the score table of every split present in the manifest
    (video_id, frame_index, score, split), the metrics document (detector, init, parameters,
    "thresholds" chosen on the val split (``threshold_from``) and applied everywhere, one entry
    per split with "frame"/"video" levels, "breakdowns" and coverage, "extra" from the
    detector's optional ``extra_metrics(data, test_scores)``, and, for ``extra_sets`` (name ->
    (scores, manifest) of other datasets, e.g. from ``dfdetect predict``), "sets" and "pooled";
    "in_dataset" names the split that is the in-dataset part), and the video-level ROC points
    of the first split. The first split must have videos. AUC/EER intervals: ``bootstrap``
    identity-grouped draws seeded by ``seed`` (metrics.bootstrap_ci).
    """
    name = getattr(detector, "name", type(detector).__name__)
    present = set(data.manifest["split"].astype(str))
    if splits[0] not in present:
        raise ValueError(f"evaluate {name}: the manifest has no {splits[0]!r} videos "
                         f"(splits present: {sorted(present)})")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 0:
        raise ValueError(f"evaluate.bootstrap must be a whole number of draws >= 0 (0 disables), "
                         f"got {bootstrap!r}")
    if isinstance(ci_level, bool) or not isinstance(ci_level, (int, float)) or not 0.0 < ci_level < 1.0:
        raise ValueError(f"evaluate.ci_level must be a number in (0, 1), got {ci_level!r}")
    kw = {"far_points": [float(f) for f in far_points], "recall_for_logwp": float(recall_for_logwp),
          "alpha": float(logwp_alpha), "tauc_steps": int(tauc_steps),
          "bootstrap": int(bootstrap), "ci_level": float(ci_level), "seed": int(seed)}
    check_threshold_params(threshold, threshold_from, logwp_recalls)  # before the costly scoring
    result: dict[str, Any] = {"detector": name, "paper": getattr(detector, "paper", ""),
                              "level": getattr(detector, "level", "frame"),
                              "init": detector.init_info(), "parameters": detector.num_parameters(),
                              "aggregate": aggregate, "in_dataset": splits[0]}
    scored_splits = {}
    for split in splits:
        if split not in present:
            continue
        sc = check_scores(detector.score(data, split), f"{name}.score({split!r})")
        sc = sc[["video_id", "frame_index", "score"]].astype({"frame_index": np.int64, "score": float})
        sc = sc.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
        scored_splits[split] = sc
    thresholds = choose_thresholds(scored_splits.get("val"), data.manifest, aggregate, threshold,
                                   threshold_from, logwp_recalls, kw["alpha"])
    if thresholds.get("note"):
        logging.getLogger("dfdetect.metrics").warning("%s thresholds: %s", name, thresholds["note"])
    result["thresholds"] = thresholds
    kw.update(thresholds=thresholds, breakdowns=True)
    tables = []
    roc = None
    for split, sc in scored_splits.items():
        videos = data.videos(split)["video_id"]
        scored = set(sc["video_id"])
        missing = sorted(set(videos) - scored)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            entry = evaluate(sc, data.manifest, aggregate=aggregate, **kw)
        notes = sorted({str(w.message) for w in caught if issubclass(w.category, UndefinedMetricWarning)})
        for note in notes:
            logging.getLogger("dfdetect.metrics").warning("%s, %s split: %s", name, split, note)
        if notes:
            entry["warnings"] = notes
        entry["coverage"] = {"videos": int(len(videos)), "scored": int(len(scored)),
                             "unscored": len(missing), "unscored_examples": missing[:5]}
        result[split] = entry
        if roc is None:
            vs = aggregate_videos(sc, aggregate)
            roc = roc_points(labels_of(vs, data.manifest), vs["score"].to_numpy(float), roc_max_points)
        tables.append(sc.assign(split=split))
        if split == splits[0] and callable(getattr(detector, "extra_metrics", None)):
            result["extra"] = detector.extra_metrics(data, sc.assign(split=split))
    result.update(evaluate_extra_sets(extra_sets or {}, aggregate=aggregate, **kw))
    for entry in (result.get("sets") or {}).values():
        if "error" in entry:
            logging.getLogger("dfdetect.metrics").warning("%s: %s", name, entry["error"])
    scores = pd.concat(tables, ignore_index=True)
    return scores, json_safe(result), roc
