"""evaluate_detector: thresholds from val, identity-bootstrap intervals, breakdowns and extra
named test sets (other datasets' scores + manifests, as ``dfdetect predict`` will give them)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dfdetect import metrics as M
from dfdetect.data.manifest import normalise
from dfdetect.detectors.base import DetectorData
from dfdetect.detectors.evaluation import evaluate_detector


class _Scorer:
    """A fitted-detector stand-in: per-video score from a table, two frames per video."""

    name = "scorer"
    paper = ""
    level = "frame"

    def __init__(self, video_scores: dict[str, float]):
        self.video_scores = video_scores

    def score(self, data, split):
        rows = [(v, fi, self.video_scores[v] + 0.01 * fi) for v in data.videos(split)["video_id"]
                for fi in (0, 1)]
        return pd.DataFrame(rows, columns=["video_id", "frame_index", "score"])

    def init_info(self):
        return {"weights": "none (test double)"}

    def num_parameters(self):
        return {"total": 0}


def _dataset(rng, people, split_of, prefix="", methods=("Deepfakes", "FaceSwap"), shift=1.5):
    rows, scores = [], {}
    for p in range(people):
        for k in range(2):
            for label, method in [("real", "")] + [("fake", m) for m in methods]:
                vid = f"{prefix}{label}/{method or 'orig'}/p{p}_{k}.mp4"
                rows.append((vid, label, method, "c23", split_of(p), f"{prefix}p{p}"))
                scores[vid] = float(rng.normal() + (shift if label == "fake" else 0.0))
    man = normalise(pd.DataFrame(rows, columns=["video_id", "label", "method", "quality", "split",
                                                "identity"]))
    return man, scores


def _frames(scores: dict[str, float], vids) -> pd.DataFrame:
    return pd.DataFrame([(v, fi, scores[v] + 0.01 * fi) for v in vids for fi in (0, 1)],
                        columns=["video_id", "frame_index", "score"])


def test_evaluate_detector_with_extra_sets():
    rng = np.random.default_rng(0)
    man, scores = _dataset(rng, 8, lambda p: ("train", "val", "test", "test")[p % 4])
    det = _Scorer(scores)
    # two other datasets: one with both classes, one real-only (e.g. a set of real videos)
    other_man, other = _dataset(rng, 3, lambda p: "test", prefix="x/", shift=0.7)
    reals_man = other_man[other_man["label"] == "real"].reset_index(drop=True)
    extra = {"celebdf_like": (_frames(other, other_man["video_id"]), other_man),
             "reals_only": (_frames(other, reals_man["video_id"]), reals_man)}
    scores_out, doc, roc = evaluate_detector(det, DetectorData(man), bootstrap=300, seed=5,
                                             extra_sets=extra)
    json.dumps(doc, allow_nan=False)
    assert doc["in_dataset"] == "test" and set(doc) >= {"test", "val", "thresholds", "sets", "pooled"}
    # the threshold is the val split's EER threshold, per level, applied to test and every set
    val = scores_out[scores_out["split"] == "val"]
    vv = M.aggregate_videos(val)
    _, eer_thr = M.eer(M.labels_of(vv, man), vv["score"], return_threshold=True)
    assert doc["thresholds"]["video"] == pytest.approx(eer_thr)
    for part in (doc["test"], doc["sets"]["celebdf_like"], doc["sets"]["reals_only"], doc["pooled"]):
        assert part["video"]["threshold"] == pytest.approx(eer_thr)
    t = doc["test"]["video"]
    assert t["n_identities"] == 4 and t["n_videos"] == 24 and doc["test"]["frame"]["n_videos"] == 24
    assert t["auc_ci"][0] <= t["auc"] <= t["auc_ci"][1]
    assert set(doc["test"]["breakdowns"]["by_method"]) == {"Deepfakes", "FaceSwap"}
    c = doc["sets"]["celebdf_like"]["video"]
    vs = M.aggregate_videos(extra["celebdf_like"][0])
    assert c["auc"] == pytest.approx(roc_auc_score(M.labels_of(vs, other_man), vs["score"]))
    r = doc["sets"]["reals_only"]
    assert r["video"]["auc"] is None and "one class only" in r["video"]["undefined"]
    assert r["video"]["false_alarm_rate"] == pytest.approx(
        np.mean(M.aggregate_videos(extra["reals_only"][0])["score"] >= eer_thr))
    assert r["coverage"] == {"videos": 6, "scored": 6, "unscored": 0, "unscored_examples": []}
    assert doc["pooled"]["sets"] == ["celebdf_like", "reals_only"]
    assert doc["pooled"]["video"]["n_neg"] == 12 and doc["pooled"]["video"]["n_pos"] == 12
    # deterministic: same inputs and seed, same document
    assert evaluate_detector(det, DetectorData(man), bootstrap=300, seed=5, extra_sets=extra)[1] == doc
    # no extra sets: no sets/pooled parts; bootstrap 0: null intervals
    _, plain, _ = evaluate_detector(det, DetectorData(man), bootstrap=0)
    assert "sets" not in plain and "pooled" not in plain and plain["test"]["video"]["auc_ci"] is None


def test_evaluate_detector_bad_params_fail_before_scoring():
    rng = np.random.default_rng(1)
    man, scores = _dataset(rng, 4, lambda p: ("val", "test")[p % 2])

    class Boom(_Scorer):
        def score(self, data, split):
            raise AssertionError("scored although the params were bad")

    for kw, msg in (({"bootstrap": -1}, "evaluate.bootstrap"), ({"bootstrap": 2.5}, "evaluate.bootstrap"),
                    ({"ci_level": 95}, "evaluate.ci_level"), ({"threshold_from": "test"}, "threshold_from"),
                    ({"logwp_recalls": [1.5]}, "logwp_recalls")):
        with pytest.raises(ValueError, match=msg):
            evaluate_detector(Boom(scores), DetectorData(man), **kw)


def test_threshold_falls_back_to_fixed_without_val():
    rng = np.random.default_rng(2)
    man, scores = _dataset(rng, 4, lambda p: "test")
    _, doc, _ = evaluate_detector(_Scorer(scores), DetectorData(man), bootstrap=0, threshold=0.3)
    assert doc["thresholds"]["source"]["video"] == "fixed" and "no val scores" in doc["thresholds"]["note"]
    assert doc["test"]["video"]["threshold"] == 0.3 and doc["test"]["video"]["threshold_source"] == "fixed"
    assert doc["test"]["video"]["logwp_r0.5"] is None     # no val split: no val threshold for it
