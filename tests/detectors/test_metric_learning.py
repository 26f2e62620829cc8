"""metric_learning.txt detectors (triplet_sgd / triplet_rf) on a synthetic face-embedding store,
and the Xception baselines' registration."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest

from dfdetect.data.manifest import normalise
from dfdetect.detectors.base import DetectorData, create, get, registry
from dfdetect.metrics import evaluate
from dfdetect.store import ShardWriter

TINY = {"epochs": 4, "per_class": 8, "hidden": 32, "embedding_dim": 16, "num_threads": 1,
        "rf": {"n_estimators": 10}, "abx_triplets": 500}
SPLITS = {"train": 8, "val": 4, "test": 4}   # videos per class and split


def _write_store(root: Path, dim: int = 24, frames: int = 6, sep: float = 1.0) -> pd.DataFrame:
    """Two Gaussian clusters (real around +mu, fake around -mu), ``frames`` faces per video,
    two shards; the manifest of its videos plus one video with no embedding at all."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=dim)
    mu /= np.linalg.norm(mu)
    rows, k = [], 0
    writers = [ShardWriter(root / "face_emb" / f"shard-{s}.h5", stage="face_embeddings",
                           attrs={"embedder": {"name": "synthetic", "dim": dim}}) for s in (0, 1)]
    for w in writers:
        w.__enter__()
    for split, n in SPLITS.items():
        for label in ("real", "fake"):
            for i in range(n):
                vid = f"{label}/{split}-{i}.mp4"
                centre = (sep if label == "real" else -sep) * mu
                emb = (centre + rng.normal(scale=0.6, size=(frames, dim))).astype(np.float32)
                writers[k % 2].add_video(vid, np.arange(frames) * 3, embedding=emb)
                rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{k}",
                             "method": "" if label == "real" else "synth"})
                k += 1
    for w in writers:
        w.__exit__(None, None, None)
    rows.append({"video_id": "fake/test-noface.mp4", "label": "fake", "split": "test",
                 "identity": "idx", "method": "synth"})
    return normalise(pd.DataFrame(rows))


@pytest.fixture
def data(tmp_path) -> DetectorData:
    manifest = _write_store(tmp_path)
    return DetectorData(manifest, sources={"face_emb": tmp_path / "face_emb"}, seed=5)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_registered():
    reg = registry()
    assert reg["triplet_sgd"].inputs == ("face_emb",) and reg["triplet_rf"].inputs == ("face_emb",)
    assert create("triplet_sgd").params["classifier"] == "sgd"
    assert create("triplet_rf").params["classifier"] == "rf"
    assert reg["xception"].arch == "legacy_xception" and reg["xception_bagging"].arch == "legacy_xception"
    x = create("xception")
    assert x.params["optimizer"] == "nadam" and x.params["lr"] == 2e-3
    with pytest.raises(ValueError, match="did you mean 'mining'"):
        create("triplet_sgd", {"minig": "all"})
    with pytest.raises(ValueError, match="mining"):
        create("triplet_rf", {"mining": "nearest"})


@pytest.mark.parametrize("name", ["triplet_sgd", "triplet_rf"])
def test_two_clusters_fit_score_save_load(name, data, tmp_path):
    det = create(name, TINY)
    summary = det.fit(data)
    assert summary["train_faces"] == 2 * SPLITS["train"] * 6
    assert len(summary["history"]) == TINY["epochs"]
    assert any(h["triplets"] > 0 for h in summary["history"])
    sc = det.score(data, "test")
    assert "fake/test-noface.mp4" not in set(sc["video_id"])      # no embedding: absent, no crash
    assert len(sc) == 2 * SPLITS["test"] * 6 and sc["score"].between(0, 1).all()
    m = evaluate(sc, data.manifest)
    assert m["frame"]["auc"] > 0.9 and m["video"]["auc"] > 0.9
    det.save(tmp_path / name)
    names = sorted(p.name for p in (tmp_path / name).iterdir())
    assert names == ["classifier.npz", "config.json", "head.safetensors"]
    cfg = json.loads((tmp_path / name / "config.json").read_text())
    assert cfg["d_in"] == 24 and cfg["embedder"]["name"] == "synthetic"
    back = get(name).load(tmp_path / name)
    again = back.score(data, "test")
    assert np.array_equal(again["score"].to_numpy(), sc["score"].to_numpy())   # bit for bit
    extra = det.extra_metrics(data, sc.assign(split="test"))
    other = "triplets_rf" if name == "triplet_sgd" else "triplets_sgd"
    raw = "raw_sgd" if name == "triplet_sgd" else "raw_rf"
    assert extra[other]["video"]["auc"] > 0.9 and extra[raw]["frame"]["auc"] > 0.9
    # ABX of both embeddings of the two clusters: well above chance (0.5)
    assert 0.6 < extra["abx_raw"] <= 1.0 and 0.6 < extra["abx_learned"] <= 1.0, extra
    assert "synthetic" in back.init_info()["init"] and "triplet head" in back.init_info()["init"]


def test_same_seed_same_weights_and_mining_choice(data, tmp_path, monkeypatch):
    from dfdetect.nn import losses

    seen = []
    real = losses.mine_triplets

    def spy(emb, labels, mining, margin, kind):
        seen.append((mining, kind, margin))
        return real(emb, labels, mining, margin, kind)

    monkeypatch.setattr(losses, "mine_triplets", spy)
    paths = []
    for run in range(2):
        det = create("triplet_sgd", TINY)
        det.fit(data)
        det.save(tmp_path / f"run{run}")
        paths.append(tmp_path / f"run{run}")
    assert seen and set(seen) == {("semihard", "sqeuclidean", 0.2)}
    assert _sha(paths[0] / "head.safetensors") == _sha(paths[1] / "head.safetensors")
    assert _sha(paths[0] / "classifier.npz") == _sha(paths[1] / "classifier.npz")
    det = create("triplet_sgd", {**TINY, "mining": "all"})
    det.fit(data)
    det.save(tmp_path / "random")
    assert _sha(tmp_path / "random" / "head.safetensors") != _sha(paths[0] / "head.safetensors")
    assert seen[-1][0] == "all"


def test_numpy_predictors_equal_sklearn():
    from sklearn.datasets import make_classification

    from dfdetect.detectors.metric_learning import NumpyClassifier, fit_classifier

    x, y = make_classification(n_samples=300, n_features=12, random_state=0)
    x = x.astype(np.float32)
    params = create("triplet_rf", {"rf": {"n_estimators": 25}}).params
    rf = fit_classifier("rf", x[:200], y[:200], params, seed=1)
    np_rf = NumpyClassifier.from_sklearn("rf", rf)
    assert np.array_equal(np_rf.proba(x[200:]), rf.predict_proba(x[200:]))
    sgd = fit_classifier("sgd", x[:200], y[:200], params, seed=1)
    np_sgd = NumpyClassifier.from_sklearn("sgd", sgd)
    assert np.array_equal(np_sgd.decision(x[200:]), sgd.decision_function(x[200:]))
    assert np.array_equal(np_sgd.score(x[200:]) >= 0.5, sgd.predict(x[200:]) == 1)


def test_pick_frames_uniform():
    from dfdetect.detectors.metric_learning import pick_frames

    items = pd.DataFrame({"video_id": ["a"] * 10 + ["b"] * 3, "frame_index": list(range(10)) + [0, 1, 2]})
    out = pick_frames(items, 4)
    assert out[out.video_id == "a"]["frame_index"].tolist() == [0, 3, 6, 9]
    assert out[out.video_id == "b"]["frame_index"].tolist() == [0, 1, 2]


def test_bad_classifier_file_is_a_clear_error(data, tmp_path):
    from dfdetect.model_files import ModelLoadError

    det = create("triplet_sgd", {**TINY, "epochs": 1})
    det.fit(data)
    det.save(tmp_path / "m")
    (tmp_path / "m" / "classifier.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelLoadError, match="classifier.npz"):
        get("triplet_sgd").load(tmp_path / "m")


def test_tsne_table_seeded(data, tmp_path):
    from dfdetect.detectors.metric_learning import tsne_plot, tsne_table

    det = create("triplet_sgd", {**TINY, "epochs": 1})
    det.fit(data)
    a = tsne_table(det, data, "test", max_faces=30, perplexity=5, seed=2)
    b = tsne_table(det, data, "test", max_faces=30, perplexity=5, seed=2)
    assert a.equals(b) and set(a["embedding"]) == {"raw", "learned"} and len(a) == 60
    tsne_plot(a, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


def _faces_data(root: Path) -> DetectorData:
    rng = np.random.default_rng(0)
    rows = []
    with ShardWriter(root / "faces" / "shard-0.h5") as w:
        for i, (label, split) in enumerate([(lab, sp) for sp in ("train", "val", "test")
                                            for lab in ("real", "fake", "fake")]):
            vid = f"{label}/{split}-{i}.mp4"
            faces = rng.integers(0, 200, (2, 32, 32, 3), dtype=np.uint8)
            if label == "fake":
                faces[:, 10:22, 10:22] = 255
            w.add_video(vid, [0, 4], face=faces)
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i}"})
    return DetectorData(normalise(pd.DataFrame(rows)), sources={"faces": root / "faces"}, seed=3)


def test_xception_is_timm_legacy_xception():
    det = create("xception")
    n = det.num_parameters()
    assert 20_000_000 < n["total"] < 21_500_000 and n["head"] == 2049      # 2048 features -> 1 logit
    # offline ImageNet: seeded random, said so (not a few Lite0 BatchNorm tensors copied by name)
    model, info = det._build("imagenet", seed=1)
    assert info["source"] == "random" and info["init"].startswith("random (seeded; no offline ImageNet")
    again, _ = det._build("imagenet", seed=1)
    assert all(a.equal(b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_xception_fit_save_load_keeps_its_own_network(tmp_path, monkeypatch):
    """Xception is trained as itself (no EfficientNet-Lite stand-in: its ``standin`` is "") and
    ``load`` rebuilds it through Xception's own ``_build`` (which takes the saved backbone)."""
    from dfdetect.detectors import rgb_cnn

    assert rgb_cnn.XCEPTION_DEFAULTS["standin"] == ""
    monkeypatch.setattr(rgb_cnn.Xception, "arch", "test_efficientnet")
    data = _faces_data(tmp_path)
    tiny = {"image_size": 32, "epochs": 1, "batch_size": 2, "eval_batch_size": 4,
            "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu"}
    det = create("xception", tiny)
    det.fit(data)
    assert det.backbone == "test_efficientnet"
    sc = det.score(data, "test")
    det.save(tmp_path / "x")
    back = get("xception").load(tmp_path / "x")
    assert np.array_equal(back.score(data, "test")["score"].to_numpy(), sc["score"].to_numpy())


def test_xception_bagging_bags_fit_score_load(tmp_path, monkeypatch):
    """Bags: every train real + one disjoint part of the train fakes each; the score is the
    mean of the bags' P(fake); load reproduces it bit for bit. (A tiny timm network stands in
    for the 20.8 M-parameter Xception to keep the test fast: the bagging is what is tested.)"""
    from dfdetect.detectors import rgb_cnn

    monkeypatch.setattr(rgb_cnn.Xception, "arch", "test_efficientnet")
    monkeypatch.setattr(rgb_cnn.XceptionBagging, "arch", "test_efficientnet")
    data = _faces_data(tmp_path)
    tiny = {"image_size": 32, "epochs": 1, "batch_size": 2, "eval_batch_size": 4, "pretrained": "none",
            "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu", "bags": 2}
    det = create("xception_bagging", tiny)
    bags = det.bag_videos(data)
    assert len(bags) == 2 and all("real/train-0.mp4" in b for b in bags)
    assert sorted(v for b in bags for v in b if v.startswith("fake")) == ["fake/train-1.mp4", "fake/train-2.mp4"]
    det.fit(data)
    sc = det.score(data, "test")
    parts = [m.score(data, "test")["score"].to_numpy() for m in det.members]
    assert np.array_equal(sc["score"].to_numpy(), np.mean(parts, axis=0))
    det.save(tmp_path / "bag")
    assert (tmp_path / "bag" / "bag_1" / "model.safetensors").is_file()
    back = get("xception_bagging").load(tmp_path / "bag")
    assert np.array_equal(back.score(data, "test")["score"].to_numpy(), sc["score"].to_numpy())
    assert 0.0 <= det.extra_metrics(data, sc)["majority_vote_frame_accuracy"] <= 1.0


def test_extra_metrics_of_a_test_set_without_train_split(data):
    """evaluate --set: another dataset's manifest has only test videos; the in-dataset extras
    (classifier refits) are skipped with a note instead of crashing."""
    det = create("triplet_sgd", {**TINY, "epochs": 1})
    det.fit(data)
    only_test = DetectorData(data.manifest[data.manifest["split"] == "test"].reset_index(drop=True),
                             sources=data.sources, seed=data.seed)
    sc = det.score(only_test, "test")
    extra = det.extra_metrics(only_test, sc.assign(split="test"))
    assert "in-dataset only" in extra["note"] and 0.5 < extra["abx_raw"] <= 1.0
    assert not any(k.startswith(("raw_", "triplets_")) for k in extra)
