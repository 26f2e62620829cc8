"""Metrics against hand-computed cases and scikit-learn; the evaluate stage end to end."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score, roc_curve

from dfdetect import metrics as M
from dfdetect.data.manifest import normalise, write_manifest
from dfdetect.detectors import base
from dfdetect.detectors.base import Detector, register

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- hand-computed
def test_four_point_example_by_hand():
    # ROC: (0,0) -> (0,.5) @0.9 -> (.5,.5) @0.6 -> (.5,1) @0.4 -> (1,1) @0.1
    y, s = [0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]
    m = M.binary_metrics(y, s, threshold=0.5, far_points=(0.1,))
    assert (m["n"], m["n_pos"], m["n_neg"]) == (4, 2, 2)
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert m["auc"] == pytest.approx(0.75)
    assert m["eer"] == pytest.approx(0.5) and m["eer_threshold"] == pytest.approx(0.6)
    assert m["tar_0.1"] == pytest.approx(0.5) and m["tar_0.1_threshold"] == pytest.approx(0.9)
    assert m["tauc_0.1"] == pytest.approx(0.5)
    # partial area 0.1 * 0.5 = 0.05; McClish: 0.5 (1 + (0.05 - 0.005) / (0.1 - 0.005)) = 14/19
    assert m["pauc_0.1"] == pytest.approx(14 / 19)
    # recall >= 0.9 needs threshold 0.4 (TP 2, FP 1) or 0.1 (TP 2, FP 2): best is 2 / (2 + 100)
    assert m["logwp"] == pytest.approx(math.log(2 / 102))
    assert m["logwp_recall"] == 1.0 and m["logwp_threshold"] == 0.4


def test_tied_scores_interpolate_the_roc():
    # a fake and a real share score 0.3: ROC (0,0) -> (0,.5) @0.9 -> (.5,1) @0.3 -> (1,1) @0.2
    y, s = [0, 1, 0, 1], [0.2, 0.3, 0.3, 0.9]
    m = M.binary_metrics(y, s, far_points=(0.1,))
    assert m["auc"] == pytest.approx(0.875)
    assert m["tar_0.1"] == pytest.approx(0.6)          # 0.5 + 0.1 * (0.5 / 0.5)
    assert m["tar_0.1_threshold"] == pytest.approx(0.9)  # the operating point with FAR <= 0.1
    assert m["tauc_0.1"] == pytest.approx(0.55)        # mean of 0.5 + f over f in [0, 0.1]
    # partial area 0.05 + 0.005 = 0.055 -> 0.5 (1 + 0.05 / 0.095) = 29/38
    assert m["pauc_0.1"] == pytest.approx(29 / 38)
    # FRR - FAR goes 0.5 -> -0.5 on the segment (0,.5)-(.5,1): crossing halfway
    assert m["eer"] == pytest.approx(0.25) and m["eer_threshold"] == pytest.approx(0.6)
    assert M.eer(y, s) == pytest.approx(0.25)
    assert M.eer(y, s, return_threshold=True) == pytest.approx((0.25, 0.6))


def test_perfect_and_inverted():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    p = M.binary_metrics(y, s)
    for k in ("auc", "accuracy", "f1", "pauc_0.01", "pauc_0.1", "tauc_0.01", "tauc_0.1", "tar_0.01"):
        assert p[k] == pytest.approx(1.0), k
    assert p["eer"] == 0.0 and p["logwp"] == 0.0
    q = M.binary_metrics(y, 1 - s)
    assert q["auc"] == 0.0 and q["eer"] == 1.0 and q["tar_0.1"] == 0.0 and q["tauc_0.1"] == 0.0
    assert q["pauc_0.1"] == pytest.approx(roc_auc_score(y, 1 - s, max_fpr=0.1))
    assert q["accuracy"] == 0.0


def test_constant_scores_are_chance():
    y = [0, 1, 0, 1, 1]
    m = M.binary_metrics(y, [0.5] * 5, far_points=(0.1,))
    assert m["auc"] == 0.5 and m["eer"] == pytest.approx(0.5)
    assert m["tar_0.1"] == pytest.approx(0.1) and m["tauc_0.1"] == pytest.approx(0.05)
    assert m["pauc_0.1"] == pytest.approx(0.5)


def test_single_class_warns_and_gives_nan():
    with pytest.warns(M.UndefinedMetricWarning, match="only real"):
        m = M.binary_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert m["accuracy"] == pytest.approx(2 / 3)
    for k in ("auc", "eer", "pauc_0.1", "tauc_0.01", "tar_0.1", "recall", "f1", "logwp"):
        assert math.isnan(m[k]), k
    with pytest.warns(M.UndefinedMetricWarning, match="only fake"):
        m = M.binary_metrics([1, 1], [0.1, 0.7])
    assert math.isnan(m["auc"]) and m["recall"] == 0.5 and m["logwp"] == 0.0
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.eer([1, 1], [0.2, 0.3]))
    with pytest.warns(M.UndefinedMetricWarning):
        assert M.roc_points([0, 0], [0.2, 0.3]).empty


def test_nan_scores_raise_with_count():
    with pytest.raises(ValueError, match="2 NaN and 1 infinite"):
        M.binary_metrics([0, 1, 0, 1], [np.nan, 0.3, np.nan, np.inf])
    with pytest.raises(ValueError, match="labels must be 0"):
        M.binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="FAR must be"):
        M.binary_metrics([0, 1], [0.1, 0.2], far_points=(0.0,))


# ----------------------------------------------------------------------------- vs scikit-learn
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(size=500) + 1.2 * y, 1)  # rounding makes many ties
    s = 1 / (1 + np.exp(-s))
    m = M.binary_metrics(y, s, far_points=(0.01, 0.05, 0.1, 0.3), tauc_steps=20000)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    p, r, f, _ = precision_recall_fscore_support(y, s >= 0.5, average="binary")
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((p, r, f))
    for far in (0.01, 0.05, 0.1, 0.3):
        k = M.far_key(far)
        mc = roc_auc_score(y, s, max_fpr=far)
        assert m[f"pauc_{k}"] == pytest.approx(mc)
        # tAUC on a fine grid -> raw partial area / FAR (McClish inverted)
        raw = (2 * mc - 1) * (far - far * far / 2) + far * far / 2
        assert m[f"tauc_{k}"] == pytest.approx(raw / far, abs=2e-4)
    fpr, tpr, _ = roc_curve(y, s)
    # ASVspoof-style vertex estimate (closest |FRR - FAR|) agrees within one step of the ROC
    i = np.argmin(np.abs(1 - tpr - fpr))
    step = 1 / min(y.sum(), (1 - y).sum())
    assert abs(m["eer"] - (fpr[i] + 1 - tpr[i]) / 2) <= step
    # and (EER, 1 - EER) lies on the ROC polyline: FAR = FRR exactly there
    e = m["eer"]
    on = [(min(x0, x1) - 1e-12 <= e <= max(x0, x1) + 1e-12)
          and abs((x1 - x0) * (1 - e - y0) - (y1 - y0) * (e - x0)) < 1e-9
          for x0, x1, y0, y1 in zip(fpr[:-1], fpr[1:], tpr[:-1], tpr[1:])]
    assert any(on)


def test_tar_is_monotone_in_far_and_bounded():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y
    fars = [0.001, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0]
    m = M.binary_metrics(y, s, far_points=fars)
    tars = [m[f"tar_{M.far_key(f)}"] for f in fars]
    assert tars == sorted(tars) and tars[-1] == 1.0
    for f in fars:
        k = M.far_key(f)
        assert 0 <= m[f"tauc_{k}"] <= m[f"tar_{k}"] + 1e-12
    assert m["pauc_1"] == pytest.approx(m["auc"])


def test_logwp_respects_recall():
    # fakes 0.9, 0.8, 0.3; reals 0.85, 0.2, 0.1
    y = [1, 1, 1, 0, 0, 0]
    s = [0.9, 0.8, 0.3, 0.85, 0.2, 0.1]
    low = M.logwp(y, s, recall=0.3)        # threshold 0.9: TP 1, FP 0 -> wP 1
    assert low["logwp"] == 0.0 and low["logwp_recall"] == pytest.approx(1 / 3)
    high = M.logwp(y, s, recall=0.9)       # threshold 0.3: TP 3, FP 1
    assert high["logwp"] == pytest.approx(math.log(3 / 103))
    # recall >= 0.5 with alpha 1: threshold 0.8 gives 2/3, threshold 0.3 gives 3/4 (the best)
    assert M.logwp(y, s, recall=0.5, alpha=1.0)["logwp"] == pytest.approx(math.log(3 / 4))


def test_roc_points_downsampled_with_endpoints():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 3000)
    s = rng.normal(size=3000) + y
    roc = M.roc_points(y, s)
    assert list(roc.columns) == ["far", "tar", "threshold"]
    assert 2 < len(roc) <= 200
    assert (roc["far"].iloc[0], roc["tar"].iloc[0]) == (0.0, 0.0)
    assert (roc["far"].iloc[-1], roc["tar"].iloc[-1]) == (1.0, 1.0)
    assert roc["far"].is_monotonic_increasing and roc["tar"].is_monotonic_increasing
    assert np.isfinite(roc["threshold"]).all() and roc["threshold"].is_monotonic_decreasing
    small = M.roc_points([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    fpr, tpr, _ = roc_curve([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert np.allclose(small["far"], fpr) and np.allclose(small["tar"], tpr)


# ----------------------------------------------------------------------------- tables
def _manifest(rows) -> pd.DataFrame:
    return normalise(pd.DataFrame(rows, columns=["video_id", "label", "split"]))


def test_aggregate_videos():
    df = pd.DataFrame({"video_id": ["b/v.mp4", "a/v.mp4", "a/v.mp4", "a/v.mp4", "b/v.mp4"],
                       "frame_index": [0, 0, 5, 9, 3], "score": [0.2, 0.1, 0.4, 1.0, 0.6]})
    mean = M.aggregate_videos(df)
    assert list(mean.columns) == ["video_id", "score"] and list(mean["video_id"]) == ["a/v.mp4", "b/v.mp4"]
    assert mean["score"].tolist() == pytest.approx([0.5, 0.4])
    assert M.aggregate_videos(df, "median")["score"].tolist() == pytest.approx([0.4, 0.4])
    assert M.aggregate_videos(df, "max")["score"].tolist() == pytest.approx([1.0, 0.6])
    with pytest.raises(ValueError, match="unknown aggregate"):
        M.aggregate_videos(df, "sum")
    with pytest.raises(ValueError, match="1 of 2 scores are NaN"):
        M.aggregate_videos(pd.DataFrame({"video_id": ["a", "b"], "score": [0.1, np.nan]}))


def test_evaluate_frame_and_video_levels():
    man = _manifest([("r1.mp4", "real", "test"), ("r2.mp4", "real", "test"),
                     ("f1.mp4", "fake", "test"), ("f2.mp4", "fake", "test")])
    sc = pd.DataFrame({
        "video_id": ["r1.mp4"] * 2 + ["r2.mp4"] * 2 + ["f1.mp4"] * 2 + ["f2.mp4"] * 2,
        "frame_index": [0, 4] * 4,
        "score": [0.1, 0.7, 0.2, 0.3, 0.6, 0.9, 0.2, 0.5]})
    out = M.evaluate(sc, man, aggregate="mean", far_points=(0.1,))
    assert set(out) == {"frame", "video"}
    assert out["frame"]["n"] == 8 and out["frame"]["n_pos"] == 4
    assert out["frame"]["auc"] == pytest.approx(roc_auc_score([0, 0, 0, 0, 1, 1, 1, 1], sc["score"]))
    # video means: r1 .4, r2 .25, f1 .75, f2 .35 -> AUC 3/4
    assert out["video"]["n"] == 4 and out["video"]["auc"] == pytest.approx(0.75)
    assert out["video"]["aggregate"] == "mean"
    out_max = M.evaluate(sc, man, aggregate="max")
    assert out_max["video"]["auc"] == pytest.approx(0.75)  # max: .7 .3 .9 .5


def test_evaluate_video_level_detector_and_unknown_videos():
    man = _manifest([("a.wav", "real", "test"), ("b.wav", "fake", "test"), ("c.wav", "fake", "test")])
    sc = pd.DataFrame({"video_id": ["a.wav", "b.wav", "c.wav"], "frame_index": [-1] * 3,
                       "score": [0.2, 0.9, 0.1]})
    out = M.evaluate(sc, man)
    assert set(out) == {"video"} and out["video"]["auc"] == 0.5 and out["video"]["aggregate"] == "none"
    bad = pd.concat([sc, pd.DataFrame({"video_id": ["zzz.wav"], "frame_index": [-1], "score": [0.5]})])
    with pytest.raises(ValueError, match="not in the manifest"):
        M.evaluate(bad, man)


# ----------------------------------------------------------------------------- bootstrap intervals
def test_weighted_metrics_equal_repeated_rows_and_unit_weights():
    rng = np.random.default_rng(5)
    for n in (2, 7, 300):
        y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
        s = np.round(rng.normal(size=n) + y, 1)            # many ties
        w = rng.integers(0, 4, size=(6, n))
        w[:, :2] = np.maximum(w[:, :2], 1)                 # both classes in every draw
        for wi, auc, e in zip(w, M.weighted_auc(y, s, w), M.weighted_eer(y, s, w)):
            yy, ss = np.repeat(y, wi), np.repeat(s, wi)
            assert auc == pytest.approx(roc_auc_score(yy, ss), abs=1e-12)
            assert e == pytest.approx(M.eer(yy, ss), abs=1e-12)
        m = M.binary_metrics(y, s)
        assert M.weighted_auc(y, s, np.ones((1, n)))[0] == pytest.approx(m["auc"], abs=1e-12)
        assert M.weighted_eer(y, s, np.ones((1, n)))[0] == pytest.approx(m["eer"], abs=1e-12)
    # a draw without reals (or without fakes) is undefined
    assert np.isnan(M.weighted_auc([0, 1], [0.2, 0.4], [[0, 3]])).all()
    assert np.isnan(M.weighted_eer([0, 1], [0.2, 0.4], [[2, 0]])).all()


def test_bootstrap_by_hand_two_identities():
    # identity A: fake 0.9, real 0.1 (AUC 1); B: fake 0.2, real 0.8 (AUC 0); both: 3 of 4 pairs
    y, s, g = [1, 0, 1, 0], [0.9, 0.1, 0.2, 0.8], ["A", "A", "B", "B"]
    seen = []

    def auc_recorded(yy, ss, w):
        v = M.weighted_auc(yy, ss, w)
        seen.append(v)
        return v

    r = M.bootstrap_ci(y, s, g, auc_recorded, draws=2000, seed=3)
    assert r["point"] == pytest.approx(0.75) and (r["n"], r["n_groups"]) == (4, 2)
    vals = np.concatenate(seen[1:])                     # seen[0]: the point estimate
    assert set(np.round(vals, 12)) == {0.0, 0.75, 1.0}   # AA -> 1, BB -> 0, AB/BA -> 0.75
    assert np.mean(vals == 1.0) == pytest.approx(0.25, abs=0.04)
    assert np.mean(vals == 0.75) == pytest.approx(0.5, abs=0.04)
    assert (r["lo"], r["hi"]) == (0.0, 1.0) and (r["used"], r["skipped"]) == (2000, 0)
    mid = M.bootstrap_ci(y, s, g, "auc", draws=2000, seed=3, level=0.4)   # 30th-70th percentile
    assert (mid["lo"], mid["hi"]) == (0.75, 0.75)
    # identities holding one class each: draws AA and BB lack a class, are skipped and counted
    r = M.bootstrap_ci([1, 1, 0, 0], [0.9, 0.6, 0.5, 0.1], ["A", "A", "B", "B"], "auc", 1000, 0)
    assert r["used"] + r["skipped"] == 1000 and 0.4 < r["skipped"] / 1000 < 0.6
    assert (r["point"], r["lo"], r["hi"]) == (1.0, 1.0, 1.0)


def test_bootstrap_seeded_disabled_and_checked():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    g = rng.integers(0, 30, 200)
    a = M.bootstrap_ci(y, s, g, "eer", 300, seed=7)
    assert a == M.bootstrap_ci(y, s, g, "eer", 300, seed=7)
    assert a != M.bootstrap_ci(y, s, g, "eer", 300, seed=8)
    off = M.bootstrap_ci(y, s, g, "auc", 0, seed=7)
    assert off["point"] == pytest.approx(roc_auc_score(y, s)) and math.isnan(off["lo"]) and off["used"] == 0
    with pytest.raises(ValueError, match="draws must be >= 0"):
        M.bootstrap_ci(y, s, g, "auc", -1)
    with pytest.raises(ValueError, match="level must be in"):
        M.bootstrap_ci(y, s, g, "auc", 10, level=1.0)
    with pytest.raises(KeyError):
        M.bootstrap_ci(y, s, g, "tauc", 10)
    with pytest.raises(ValueError, match="group labels"):
        M.bootstrap_ci(y, s, g[:10], "auc", 10)


def _sample(n, rng):
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    return y, rng.normal(size=n) + 1.0 * y


@pytest.mark.parametrize("metric", ["auc", "eer"])
def test_interval_contains_point_and_shrinks_with_n(metric):
    rng = np.random.default_rng(11)
    widths = {}
    for n in (20, 2000):
        y, s = _sample(n, rng)
        r = M.bootstrap_ci(y, s, np.arange(n), metric, 1000, seed=0)
        assert r["lo"] <= r["point"] <= r["hi"], r
        assert r["n"] == n and r["used"] == 1000
        widths[n] = r["hi"] - r["lo"]
    # the width goes as 1/sqrt(n): 100x the videos, about a tenth of the width
    assert widths[2000] < widths[20] / 4, widths


def test_identity_grouping_widens_the_interval():
    # 40 people, a real and a fake video each; then every video's rows duplicated 10x (as if
    # each had 10 identical frames): resampling rows as if independent grows overconfident,
    # resampling identities gives exactly the interval of the original videos
    rng = np.random.default_rng(2)
    ident = np.repeat(np.arange(40), 2)
    y = np.tile([0, 1], 40)
    s = rng.normal(size=40)[ident] + 0.8 * y + 0.3 * rng.normal(size=80)
    dup_ident, dup_y, dup_s = np.repeat(ident, 10), np.repeat(y, 10), np.repeat(s, 10)
    grouped = M.bootstrap_ci(dup_y, dup_s, dup_ident, "auc", 1000, seed=0)
    rows = M.bootstrap_ci(dup_y, dup_s, None, "auc", 1000, seed=0)
    original = M.bootstrap_ci(y, s, ident, "auc", 1000, seed=0)
    original_rows = M.bootstrap_ci(y, s, None, "auc", 1000, seed=0)
    assert grouped["point"] == pytest.approx(rows["point"]) == pytest.approx(original["point"])
    assert grouped["n_groups"] == 40 and rows["n_groups"] == 800
    assert (grouped["lo"], grouped["hi"]) == pytest.approx((original["lo"], original["hi"]))
    width = {k: r["hi"] - r["lo"] for k, r in
             {"grouped": grouped, "rows": rows, "original_rows": original_rows}.items()}
    assert width["rows"] < width["original_rows"] / 2      # duplicates fake precision ...
    assert width["grouped"] > 1.3 * width["rows"], width   # ... identity grouping does not


# ----------------------------------------------------------------------------- one-class, thresholds
def test_one_class_sets_report_rates_not_auc():
    s = np.array([0.1, 0.2, 0.3, 0.6, 0.9])
    with pytest.warns(M.UndefinedMetricWarning, match="only real"):
        m = M.level_metrics(np.zeros(5, int), s, ["a", "a", "b", "c", "c"], threshold=0.5,
                            bootstrap=500, seed=0)
    assert math.isnan(m["auc"]) and math.isnan(m["eer"]) and m["auc_ci"] is None
    assert "one class only" in m["undefined"] and "real" in m["undefined"]
    assert m["mean_score"] == pytest.approx(0.42) and m["median_score"] == pytest.approx(0.3)
    assert m["flag_rate"] == pytest.approx(0.4) and m["false_alarm_rate"] == pytest.approx(0.4)
    assert m["tnr"] == pytest.approx(0.6) and math.isnan(m["tpr"])
    lo, hi = m["flag_rate_ci"]
    assert 0.0 <= lo <= 0.4 <= hi <= 1.0 and hi > lo
    assert (m["n_videos"], m["n_identities"]) == (5, 3)
    with pytest.warns(M.UndefinedMetricWarning, match="only fake"):
        f = M.level_metrics(np.ones(4, int), [0.2, 0.7, 0.8, 0.9], threshold=0.75)
    assert f["detection_rate"] == pytest.approx(0.5) and f["tpr"] == pytest.approx(0.5)
    assert "false_alarm_rate" not in f and f["flag_rate_ci"] is None   # bootstrap off
    json.dumps(M.json_safe(m), allow_nan=False)


def _split_tables(rng, n_people=6, per=4, shift=1.5, prefix="", split="test"):
    """Manifest + frame scores: each person has real and fake videos of two methods, 2 qualities."""
    rows, scores = [], []
    for p in range(n_people):
        for k in range(per):
            for label, method in (("real", ""), ("fake", "A"), ("fake", "B")):
                q = ("c23", "c40")[k % 2]
                vid = f"{prefix}{split}/p{p}/{label}{method}{k}.mp4"
                rows.append((vid, label, method, q, split, f"{prefix}p{p}"))
                mu = (shift if method == "A" else shift / 3) if label == "fake" else 0.0
                for fi in (0, 5):
                    scores.append((vid, fi, float(rng.normal() + mu)))
    man = pd.DataFrame(rows, columns=["video_id", "label", "method", "quality", "split", "identity"])
    return normalise(man), pd.DataFrame(scores, columns=["video_id", "frame_index", "score"])


def test_threshold_chosen_on_val_and_applied_to_test():
    # val reals 0.1, 0.2, 0.6; fakes 0.4, 0.7, 0.9 -> EER 1/3 at threshold 0.6 (by hand)
    man = _manifest([(f"v{i}", lab, "val") for i, lab in enumerate(["real"] * 3 + ["fake"] * 3)] +
                    [(f"t{i}", lab, "test") for i, lab in enumerate(["real"] * 3 + ["fake"] * 3)])
    val = pd.DataFrame({"video_id": [f"v{i}" for i in range(6)], "frame_index": -1,
                        "score": [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]})
    test = pd.DataFrame({"video_id": [f"t{i}" for i in range(6)], "frame_index": -1,
                         "score": [0.3, 0.55, 0.65, 0.5, 0.62, 0.95]})
    thr = M.choose_thresholds(val, man)
    assert thr["video"] == pytest.approx(0.6) and thr["source"]["video"] == "val"
    out = M.evaluate_sets(test, man, val, bootstrap=0)
    v = out["test"]["video"]
    assert v["threshold"] == pytest.approx(0.6) and v["threshold_source"] == "val"
    # at 0.6: reals 0.3, 0.55 pass, 0.65 flagged; fakes 0.62, 0.95 flagged, 0.5 missed
    assert v["tnr"] == pytest.approx(2 / 3) and v["tpr"] == pytest.approx(2 / 3)
    assert v["accuracy"] == pytest.approx(4 / 6)
    assert out["thresholds"]["video"] == pytest.approx(0.6)
    fixed = M.evaluate_sets(test, man, val, threshold_from="fixed", threshold=0.5, bootstrap=0)
    assert fixed["test"]["video"]["threshold"] == 0.5 and fixed["test"]["video"]["tpr"] == 1.0
    # no val: the fixed threshold, and a note saying why
    none = M.choose_thresholds(None, man, threshold=0.4)
    assert none["video"] == 0.4 and none["source"]["video"] == "fixed" and "no val scores" in none["note"]
    with pytest.raises(ValueError, match="threshold_from must be one of val, fixed"):
        M.choose_thresholds(val, man, threshold_from="youden")
    with pytest.raises(ValueError, match="logwp_recalls must lie in"):
        M.choose_thresholds(val, man, logwp_recalls=[0.0])


def test_logwp_at_recall_uses_the_val_threshold():
    man = _manifest([(f"v{i}", lab, "val") for i, lab in enumerate(["real"] * 3 + ["fake"] * 3)] +
                    [(f"t{i}", lab, "test") for i, lab in enumerate(["real"] * 2 + ["fake"] * 2)])
    val = pd.DataFrame({"video_id": [f"v{i}" for i in range(6)], "frame_index": -1,
                        "score": [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]})
    test = pd.DataFrame({"video_id": [f"t{i}" for i in range(4)], "frame_index": -1,
                         "score": [0.45, 0.8, 0.5, 0.95]})
    out = M.evaluate_sets(test, man, val, logwp_recalls=[0.3, 0.9], bootstrap=0)
    # val: recall >= 1/3 best at 0.9 (TP 1, FP 0); recall >= 0.9 needs 0.4 (TP 3, FP 1)
    assert out["thresholds"]["logwp"]["video"] == {"r0.3": 0.9, "r0.9": 0.4}
    v = out["test"]["video"]
    assert v["logwp_r0.3_threshold"] == 0.9 and v["logwp_r0.3"] == 0.0      # 0.95 only: TP 1 FP 0
    assert v["logwp_r0.3_recall"] == 0.5
    assert v["logwp_r0.9"] == pytest.approx(math.log(2 / 202))            # >= 0.4: TP 2, FP 2
    assert v["logwp_r0.9_recall"] == 1.0


def test_breakdowns_by_method_and_quality():
    rng = np.random.default_rng(4)
    man, sc = _split_tables(rng)
    out = M.evaluate(sc, man, bootstrap=100, breakdowns=True, threshold=0.5)
    bd = out["breakdowns"]
    assert set(bd) == {"by_method", "by_quality", "by_method_quality"}
    vs = M.aggregate_videos(sc).merge(man, on="video_id")
    fake = vs["label"] == "fake"
    # method A: its fakes (c23 and c40) against the reals of those qualities
    a = vs[(fake & (vs["method"] == "A")) | ~fake]
    assert bd["by_method"]["A"]["auc"] == pytest.approx(roc_auc_score(a["label"] == "fake", a["score"]))
    assert bd["by_method"]["A"]["n_pos"] == 24 and bd["by_method"]["A"]["n_neg"] == 24
    assert bd["by_method"]["A"]["auc"] > bd["by_method"]["B"]["auc"]   # A is the easier method
    c40 = vs[vs["quality"] == "c40"]
    c40_auc = roc_auc_score(c40["label"] == "fake", c40["score"])
    assert bd["by_quality"]["c40"]["auc"] == pytest.approx(c40_auc)
    ab = vs[((fake & (vs["method"] == "B")) | ~fake) & (vs["quality"] == "c23")]
    m = bd["by_method_quality"]["B/c23"]
    assert m["auc"] == pytest.approx(roc_auc_score(ab["label"] == "fake", ab["score"]))
    assert m["n_identities"] == 6 and m["auc_ci"][0] <= m["auc"] <= m["auc_ci"][1]
    flagged = ab["score"] >= 0.5
    assert m["tnr"] == pytest.approx(np.mean(~flagged[ab["label"] == "real"]))
    assert m["tpr"] == pytest.approx(np.mean(flagged[ab["label"] == "fake"]))
    # a method made only at c40 is measured against the c40 reals only
    extra = pd.DataFrame([(f"test/p{p}/fakeC.mp4", "fake", "C", "c40", "test", f"p{p}") for p in range(6)],
                         columns=["video_id", "label", "method", "quality", "split", "identity"])
    man_c = normalise(pd.concat([man, extra], ignore_index=True))
    sc_c = pd.concat([sc, pd.DataFrame({"video_id": extra["video_id"], "frame_index": 0,
                                        "score": rng.normal(size=6) + 1.0})], ignore_index=True)
    c = M.evaluate(sc_c, man_c, breakdowns=True)["breakdowns"]["by_method"]["C"]
    assert (c["n_pos"], c["n_neg"]) == (6, 12)
    vs = M.aggregate_videos(sc_c).merge(man_c, on="video_id")
    vc = vs[(vs["method"] == "C") | ((vs["label"] == "real") & (vs["quality"] == "c40"))]
    assert c["auc"] == pytest.approx(roc_auc_score(vc["label"] == "fake", vc["score"]))
    # a manifest without methods or qualities has no breakdowns
    plain = man.assign(method="", quality="")
    assert "breakdowns" not in M.evaluate(sc, plain, breakdowns=True)


def test_evaluate_sets_in_dataset_extra_sets_and_pooled():
    rng = np.random.default_rng(6)
    man, sc = _split_tables(rng, split="test")
    vman, vsc = _split_tables(rng, split="val", prefix="v")
    man = pd.concat([man, vman], ignore_index=True)
    # a second dataset (same ids on purpose: pooling must keep them apart) and a real-only set
    other_man, other_sc = _split_tables(rng, n_people=3, shift=0.5)
    reals_man = other_man[other_man["label"] == "real"].reset_index(drop=True)
    reals_sc = other_sc[other_sc["video_id"].isin(reals_man["video_id"])]
    bad_sc = other_sc.assign(video_id="nowhere.mp4")
    out = M.evaluate_sets(sc, man, vsc, {"other": (other_sc, other_man), "reals": (reals_sc, reals_man),
                                         "broken": (bad_sc, other_man)}, bootstrap=200, seed=1)
    assert set(out) == {"thresholds", "test", "val", "sets", "pooled"}
    thr = out["thresholds"]["video"]
    for part in (out["test"], out["sets"]["other"], out["sets"]["reals"], out["pooled"]):
        assert part["video"]["threshold"] == thr          # one threshold, chosen on val, everywhere
    o = out["sets"]["other"]["video"]
    assert o["n"] == 36 and o["n_identities"] == 3 and o["auc_ci"][0] <= o["auc"] <= o["auc_ci"][1]
    r = out["sets"]["reals"]["video"]
    assert math.isnan(r["auc"]) and r["n_neg"] == 12 and "false_alarm_rate" in r
    assert out["sets"]["reals"]["coverage"]["scored"] == 12
    assert "not in the manifest" in out["sets"]["broken"]["error"]
    pooled = out["pooled"]["video"]
    assert out["pooled"]["sets"] == ["other", "reals"]
    assert (pooled["n_pos"], pooled["n_neg"]) == (24, 24)
    # the real-only set's people are the other set's: identities prefixed by set, never merged
    assert pooled["n_identities"] == 6
    ps, pm = M.pool_sets({"other": (other_sc, other_man), "reals": (reals_sc, reals_man)})
    vs = M.aggregate_videos(ps)
    assert pooled["auc"] == pytest.approx(roc_auc_score(M.labels_of(vs, pm), vs["score"]))
    assert "frame" in out["pooled"] and out["pooled"]["frame"]["n"] == 96
    json.dumps(M.json_safe(out), allow_nan=False)


# ----------------------------------------------------------------------------- ABX
def test_abx_accuracy():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    sep = np.c_[labels * 10.0 + rng.normal(size=40) * 0.1, rng.normal(size=40) * 0.1]
    assert M.abx_accuracy(sep, labels, distance="sqeuclidean") == 1.0
    assert M.abx_accuracy(sep + [0, 1], labels, distance="cosine") == 1.0
    assert M.abx_accuracy(np.ones((40, 3)), labels) == 0.5  # all ties
    noise = rng.normal(size=(40, 4))
    a = M.abx_accuracy(noise, labels, n_triplets=2000, seed=7)
    assert a == M.abx_accuracy(noise, labels, n_triplets=2000, seed=7)
    assert 0.35 < a < 0.65
    three = np.repeat(["spk1", "spk2", "spk3"], 5)
    emb = np.eye(3)[np.repeat([0, 1, 2], 5)] + rng.normal(size=(15, 3)) * 0.01
    assert M.abx_accuracy(emb, three, n_triplets=500) == 1.0
    with pytest.warns(M.UndefinedMetricWarning):
        assert math.isnan(M.abx_accuracy(np.ones((3, 2)), [1, 1, 1]))
    with pytest.raises(ValueError, match="unknown distance"):
        M.abx_accuracy(sep, labels, distance="l1")


def test_abx_by_hand_single_triplet():
    # X=0 (class a) has only A=1; B=2 is the only other-class item: d(X,A)=1 < d(X,B)=4
    emb = np.array([[0.0], [1.0], [2.0]])
    assert M.abx_accuracy(emb, ["a", "a", "b"], n_triplets=50, distance="sqeuclidean") == pytest.approx(
        # X=1 (class a): A=0 (d=1), B=2 (d=1): tie -> 1/2; X drawn from {0, 1} uniformly
        np.mean([1.0 if x == 0 else 0.5 for x in
                 np.random.default_rng(0).choice([0, 1], size=50)]))


def test_json_safe():
    out = M.json_safe({"a": np.float32(1.5), "b": [math.nan, np.int64(3)], "c": {"d": math.inf}})
    assert out == {"a": 1.5, "b": [None, 3], "c": {"d": None}}
    json.dumps(out, allow_nan=False)


# ----------------------------------------------------------------------------- evaluate stage
class _DummyEval(Detector):
    """Test double: score = 0.3 / 0.7 by label, nudged per frame; reads only the manifest."""

    inputs = ("manifest",)

    def fit(self, data, logger=None):
        return {}

    def score(self, data, split):
        vids = data.videos(split)
        rows = []
        for k, (vid, label) in enumerate(zip(vids["video_id"], vids["label"])):
            if vid.startswith("noface"):
                continue  # a video the detector could not score
            base = 0.7 if label == "fake" else 0.3
            for fi in (0, 10):
                rows.append((vid, fi, base + self.params["spread"] * ((k % 3) - 1) + 0.01 * fi))
        return pd.DataFrame(rows, columns=["video_id", "frame_index", "score"])

    def save(self, directory):
        self.write_config(Path(directory))

    @classmethod
    def load(cls, directory):
        return cls(**cls.read_config(directory)["params"])

    def init_info(self):
        return {"weights": "none (test double)"}

    def num_parameters(self):
        return {"total": 1}

    def extra_metrics(self, data, scores):
        return {"scored_rows": len(scores), "nan_value": math.nan}


def _load_stage(name):
    spec = importlib.util.spec_from_file_location(f"_stage_{name}", REPO / "stages" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def dummy_detector(monkeypatch):
    """Register the test double under a test-only name for one test, then remove it.

    The built-in detector modules are not imported: this test is about the stage, not them.
    """
    monkeypatch.setattr(base, "_import_builtin", lambda: None)
    register("_test_dummy_eval")(_DummyEval)
    yield _DummyEval
    base._REGISTRY.pop("_test_dummy_eval", None)


def test_evaluate_stage_end_to_end(tmp_path, monkeypatch, dummy_detector, capsys):
    monkeypatch.chdir(tmp_path)
    rows = []
    for i in range(6):
        rows.append((f"real/r{i}.mp4", "real", "test" if i < 4 else "val"))
        rows.append((f"fake/f{i}.mp4", "fake", "test" if i < 4 else "val"))
    rows += [("noface/x.mp4", "fake", "test"), ("train/t.mp4", "real", "train")]
    write_manifest(_manifest(rows), tmp_path / "data" / "manifest.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"seed": 1, "evaluate": {"aggregate": "mean", "far_points": [0.01, 0.1],
                                 "recall_for_logwp": 0.9}}))
    _DummyEval(spread=0.25).save(tmp_path / "models" / "_test_dummy_eval")
    stage = _load_stage("evaluate")
    stage.main(["--detector", "_test_dummy_eval"])

    scores = pd.read_csv(tmp_path / "data" / "scores" / "_test_dummy_eval.csv")
    assert list(scores.columns) == ["video_id", "frame_index", "score", "split"]
    assert set(scores["split"]) == {"test", "val"} and len(scores) == 2 * 12
    text = (tmp_path / "metrics" / "_test_dummy_eval.json").read_text()
    assert "NaN" not in text
    m = json.loads(text)
    assert m["detector"] == "_test_dummy_eval" and m["init"] == {"weights": "none (test double)"}
    assert m["parameters"] == {"total": 1}
    assert set(m["test"]) >= {"frame", "video", "coverage"} and "video" in m["val"]
    assert m["test"]["coverage"] == {"videos": 9, "scored": 8, "unscored": 1,
                                     "unscored_examples": ["noface/x.mp4"]}
    assert m["test"]["video"]["n"] == 8 and m["test"]["frame"]["n"] == 16
    vs = M.aggregate_videos(scores[scores["split"] == "test"])
    y = vs["video_id"].str.startswith("fake").astype(int)
    assert m["test"]["video"]["auc"] == pytest.approx(roc_auc_score(y, vs["score"]))
    assert m["extra"] == {"scored_rows": 16, "nan_value": None}
    # intervals (params.yaml seed + evaluate.bootstrap, default 1000 draws), threshold from val
    for level in ("frame", "video"):
        t = m["test"][level]
        assert t["auc_ci"][0] <= t["auc"] <= t["auc_ci"][1] and t["eer_ci"][0] <= t["eer"] <= t["eer_ci"][1]
        assert t["bootstrap"]["draws"] == 1000 and t["bootstrap"]["groups"].startswith("video")
        assert t["threshold"] == m["thresholds"][level] and t["threshold_source"] == "val"
        assert {"tpr", "tnr", "logwp_r0.1", "logwp_r0.5", "logwp_r0.9"} <= set(t)
    assert m["in_dataset"] == "test" and m["thresholds"]["from"] == "val"
    assert m["test"]["video"]["n_videos"] == 8 and m["test"]["frame"]["n_videos"] == 8
    # a bad parameter stops the stage with a message naming it
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(
        {"seed": 1, "evaluate": {"threshold_from": "val", "bootstrap": 10}}))
    for flag, value in (("--threshold_from", "train"), ("--bootstrap", "-5")):
        with pytest.raises(SystemExit) as exc:   # the params schema: exit 2, one line naming the key
            stage.main(["--detector", "_test_dummy_eval", "--params", "bad.yaml", flag, value])
        assert exc.value.code == 2 and f"evaluate.{flag[2:]} = " in capsys.readouterr().err
    roc = pd.read_csv(tmp_path / "metrics" / "roc" / "_test_dummy_eval.csv")
    assert list(roc.columns) == ["far", "tar", "threshold"] and roc["tar"].iloc[-1] == 1.0

    # same inputs, same bytes (also through the --manifest / --source overrides)
    before = {p.relative_to(tmp_path / "metrics"): p.read_bytes() for p in (tmp_path / "metrics").rglob("*.*")}
    stage.main(["--detector", "_test_dummy_eval", "--metrics-dir", "m2", "--scores-dir", "s2",
                "--manifest", "data/manifest.csv", "--source", "manifest=data/manifest.csv"])
    assert before == {p.relative_to(tmp_path / "m2"): p.read_bytes() for p in (tmp_path / "m2").rglob("*.*")}
    assert (tmp_path / "s2" / "_test_dummy_eval.csv").read_bytes() == \
        (tmp_path / "data" / "scores" / "_test_dummy_eval.csv").read_bytes()
    with pytest.raises(SystemExit, match="name=path"):
        stage.main(["--detector", "_test_dummy_eval", "--source", "manifest"])


def test_real_positive_precision_recall_f1_and_tnr():
    """metric_learning.txt Table III's convention (real = positive) beside the fake-positive one:
    on a balanced set with fake recall 0.9071 and real accuracy 0.8273 (its Table IV), real
    precision = 0.8273 / (0.8273 + 0.0929) ~ 0.899 (Table III: 89.84)."""
    n = 10000
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    real_ok, fake_ok = 8273, 9071
    s = np.r_[np.where(np.arange(n) < real_ok, 0.2, 0.8), np.where(np.arange(n) < fake_ok, 0.8, 0.2)]
    m = M.level_metrics(y, s, threshold=0.5)
    assert m["recall_real"] == pytest.approx(0.8273) == m["tnr"]
    assert m["precision_real"] == pytest.approx(0.8273 / (0.8273 + (1 - 0.9071)))
    p, r, f, _ = precision_recall_fscore_support(y, s >= 0.5, average="binary", pos_label=0)
    assert (m["precision_real"], m["recall_real"], m["f1_real"]) == pytest.approx((p, r, f))
    assert m["recall"] == pytest.approx(0.9071)
    only_fakes = M.binary_metrics([1, 1], [0.9, 0.1])
    assert np.isnan(only_fakes["recall_real"]) and np.isnan(only_fakes["f1_real"])
