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


def test_evaluate_stage_end_to_end(tmp_path, monkeypatch, dummy_detector):
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
