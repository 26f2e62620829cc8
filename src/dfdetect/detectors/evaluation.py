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
from .. import config as _cfg
from ..metrics import AGGREGATES
from .base import check_scores

# params schema of the ``evaluate`` section (stages/evaluate.py)
PARAMS = _cfg.Section({
    "aggregate": _cfg.Choice(*AGGREGATES),
    "far_points": _cfg.List(_cfg.Float(gt=0, le=1), min_len=1),
    "recall_for_logwp": _cfg.Float(gt=0, le=1),
    "logwp_alpha": _cfg.Float(gt=0),
    "tauc_steps": _cfg.Int(ge=1),
    "threshold": _cfg.Float(),            # scores are P(fake) or any monotone score
    "roc_max_points": _cfg.Int(ge=2),
    "threshold_from": _cfg.Choice("val", "fixed"),
    "logwp_recalls": _cfg.List(_cfg.Float(gt=0, le=1), min_len=1),
    "bootstrap": _cfg.Int(ge=0),
    "ci_level": _cfg.Float(gt=0, lt=1),
})


class NothingScoredError(ValueError):
    """The reported split has no scored item (e.g. every cached row is non-finite)."""


def evaluate_detector(detector, data, splits: Sequence[str] = ("test", "val"), aggregate: str = "mean",
                      far_points: Sequence[float] = (0.01, 0.1), recall_for_logwp: float = 0.9,
                      logwp_alpha: float = 100.0, tauc_steps: int = 100, threshold: float = 0.5,
                      roc_max_points: int = 200, threshold_from: str = "val",
                      logwp_recalls: Sequence[float] = (0.1, 0.5, 0.9), bootstrap: int = 1000,
                      ci_level: float = 0.95, seed: int = 0,
                      extra_sets: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                      thresholds: Mapping[str, Any] | None = None,
                      ) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Score a fitted detector on ``splits`` and measure it: what ``stages/evaluate.py`` writes.

    Returns ``(scores, result, roc)``: the score table of every split present in the manifest
    (video_id, frame_index, score, split), the metrics document (detector, init, parameters,
    "thresholds" chosen on the val split (``threshold_from``) and applied everywhere, one entry
    per split with "frame"/"video" levels, "breakdowns", coverage and "unscored" (frames and
    videos left unscored for non-finite cached inputs), "extra" from the
    detector's optional ``extra_metrics(data, test_scores)``, and, for ``extra_sets`` (name ->
    (scores, manifest) of other datasets, e.g. from ``dfdetect predict``), "sets" and "pooled";
    "in_dataset" names the split that is the in-dataset part), and the video-level ROC points
    of the first split. The first split must have videos. AUC/EER intervals: ``bootstrap``
    identity-grouped draws seeded by ``seed`` (metrics.bootstrap_ci). ``thresholds`` (the
    "thresholds" of an earlier result) are used as given instead of being chosen: a test set of
    another dataset is measured at the operating points chosen on the training dataset's val.
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
    if thresholds is None:
        thresholds = choose_thresholds(scored_splits.get("val"), data.manifest, aggregate, threshold,
                                       threshold_from, logwp_recalls, kw["alpha"])
    else:   # chosen on the training dataset's val split: recorded as given
        thresholds = dict(thresholds, given=True)
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
        if sc.empty:
            unscored = data.checks.unscored(split, scored)
            if split == splits[0]:
                raise NothingScoredError(
                    f"evaluate {name}: no item of the {split!r} split could be scored "
                    f"({len(videos)} videos; {unscored['frames']} rows with non-finite inputs)")
            logging.getLogger("dfdetect.metrics").warning("%s: no item of the %s split scored", name, split)
            result[split] = {"coverage": {"videos": int(len(videos)), "scored": 0, "unscored": len(missing),
                                          "unscored_examples": missing[:5]}, "unscored": unscored}
            continue
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
        # rows left unscored because their cached inputs hold NaN/inf (data.checks), and the
        # videos that left with no scored row
        entry["unscored"] = data.checks.unscored(split, scored)
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
