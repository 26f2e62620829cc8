"""two_branch detector (two_branch.txt): fit/score/save/load, fixed centre, determinism, init."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from dfdetect.detectors.base import DetectorData, create, registry

TINY = {"image_size": 32, "seq_len": 3, "epochs": 1, "batch_size": 2, "eval_batch_size": 4,
        "pretrained": "none", "num_threads": 1, "device": "cpu", "fake_undersample": 1}
VIDEOS = [("real", "train"), ("real", "train"), ("fake", "train"), ("fake", "train"),
          ("real", "val"), ("fake", "val"), ("real", "test"), ("fake", "test")]


@pytest.fixture(scope="module")
def data(tmp_path_factory, write_square_faces) -> DetectorData:
    """Eight videos x 4 faces (32 px, 7 frames apart; fakes carry a bright square)."""
    root = tmp_path_factory.mktemp("tb")
    manifest = write_square_faces(root, VIDEOS, [0, 7, 14, 21], with_method=True)
    return DetectorData(manifest, sources={"faces": root / "faces"}, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    det = create("two_branch", TINY)
    summary = det.fit(data)
    return det, summary


def test_registered():
    reg = registry()
    assert reg["two_branch"].inputs == ("faces",) and reg["two_branch"].paper == "two_branch.txt"
    assert reg["densenet121"].arch == "densenet121"


def test_fit_score_save_load(fitted, data, tmp_path):
    det, summary = fitted
    assert summary["train_videos"] == 4 and summary["windows_per_epoch"] == 4
    assert summary["center_sequences"] == 2          # one disjoint 3-face window per real video
    assert det.init_info()["init"].startswith("random")
    scores = det.score(data, "test")
    assert len(scores) == 8 and scores["score"].between(0, 1).all()
    assert scores["score"].nunique() > 1
    det.save(tmp_path / "m")
    back = type(det).load(tmp_path / "m")
    again = back.score(data, "test")
    assert np.array_equal(scores["score"].to_numpy(), again["score"].to_numpy())
    assert torch.equal(back.model.center, det.model.center)


def test_seeded_runs_identical_and_centre_fixed(fitted, data, monkeypatch):
    from dfdetect.nn.two_branch import TwoBranchNet

    det, _ = fitted
    snap = {}
    real = TwoBranchNet.set_center

    def spy(self, loader, device="cpu"):
        n = real(self, loader, device)
        snap.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        return n

    monkeypatch.setattr(TwoBranchNet, "set_center", spy)
    other = create("two_branch", TINY)
    other.fit(data)
    a, b = det.model.state_dict(), other.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "two seeded runs differ"
    # the centre is the one computed before training, while the weights did train
    assert torch.equal(snap["center"], b["center"]) and bool(b["center_set"])
    assert snap["center"].abs().sum() > 0
    assert not torch.equal(snap["lstm.weight_hh_l0"], b["lstm.weight_hh_l0"])
    assert "center" not in dict(other.model.named_parameters())


def test_paper_radii_and_score_map():
    from dfdetect.detectors.two_branch import distance_score

    assert create("two_branch", {}).radii == (0.042, 1.638)
    assert create("two_branch", {"temporal": "none"}).radii == (2.5, 97.5)
    assert create("two_branch", {"lstm_merge": "sum", "r_in": 0.1, "r_out": 1.0}).radii == (0.1, 1.0)
    with pytest.raises(ValueError, match="set r_in and r_out explicitly"):
        create("two_branch", {"lstm_merge": "sum"})
    from dfdetect import config as C

    with pytest.raises(C.ParamError, match="models.two_branch.r_in"):   # the stage's exit-2 check
        registry()["two_branch"].param_schema().validate({"temporal": "bilstm", "lstm_hidden": 64},
                                                          "models.two_branch")
    with pytest.raises(ValueError, match="r_in < r_out"):
        create("two_branch", {"r_in": 2.0, "r_out": 1.0})
    s = distance_score(np.array([0.0, 0.042, 0.84, 1.638, 5.0]), 0.042, 1.638)
    assert np.all(np.diff(s) > 0) and s[2] == pytest.approx(0.5)
    assert s[1] == pytest.approx(0.018, abs=1e-3) and s[3] == pytest.approx(0.982, abs=1e-3)


def test_bce_single_branch_frame_variant(data):
    det = create("two_branch", {**TINY, "loss": "bce", "branches": 1, "temporal": "none",
                                "lr_decay": "none", "scheduler": "none"})
    summary = det.fit(data)
    assert summary["pos_weight"] == pytest.approx(1.0) and summary["radii"] is None
    assert not hasattr(det.model, "log") and hasattr(det.model, "classifier")
    assert det.score(data, "val")["score"].between(0, 1).all()


def test_offline_init_and_device_auto(monkeypatch):
    from dfdetect.nn import train as T
    from dfdetect.nn.two_branch import build

    _, info = build({"hub": "false"}, "imagenet", 0)
    assert info["init"].startswith("random") and info["source"] == "random"
    assert T.resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert T.resolve_device("auto") == "cuda"


def test_extra_metrics_reuses_the_scored_test_windows(fitted, data, monkeypatch):
    """evaluate calls score(test) then extra_metrics: the windows are run through the network
    once, and the distances are those a fresh pass gives."""
    det, _ = fitted
    det._last_windows = None
    fresh = det.extra_metrics(data, None)               # nothing scored yet: computes its own
    calls = []
    real = type(det).window_outputs

    def counting(self, d, items):
        calls.append(len(items))
        return real(self, d, items)

    monkeypatch.setattr(type(det), "window_outputs", counting)
    det.score(data, "test")
    assert det.extra_metrics(data, None) == fresh
    assert len(calls) == 1                              # score's pass only
    det.score(data, "val")                              # the last windows are val's: not reused
    assert det.extra_metrics(data, None) == fresh
    assert len(calls) == 3
    assert {"median_distance_real", "median_distance_fake"} <= set(fresh)
