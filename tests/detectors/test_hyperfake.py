"""HyperFake detector: spectral attention (Eq. 2/3), fit/score/save/load on a tiny HSI cache."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.data.manifest import normalise
from dfdetect.detectors.base import DetectorData, create, get, registry
from dfdetect.spectral.cache import HSIWriter

TINY = {"epochs": 2, "batch_size": 4, "eval_batch_size": 8, "pretrained": "none", "lr": 3e-3,
        "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu", "pool": 4}
VIDEOS = [("real", "train"), ("fake", "train"), ("real", "train"), ("fake", "train"),
          ("real", "val"), ("fake", "val"), ("real", "test"), ("fake", "test")]


def _write_hsi(root: Path) -> pd.DataFrame:
    """Eight videos x 3 faces of 31 x 16 x 16 cubes; fakes carry a bump in the red bands."""
    rng = np.random.default_rng(0)
    rows = []
    with HSIWriter(root / "hsi" / "shard-0.h5", model_info={"variant": "flexi", "parameters": 1619625}) as w:
        for i, (label, split) in enumerate(VIDEOS):
            vid = f"{label}/{split}-{i}.mp4"
            cubes = rng.uniform(0.1, 0.6, (3, 31, 16, 16)).astype(np.float32)
            if label == "fake":
                cubes[:, 22:28, 4:12, 4:12] += 0.4
            w.add(vid, [0, 3, 6], cubes)
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i}"})
    return normalise(pd.DataFrame(rows))


@pytest.fixture
def data(tmp_path) -> DetectorData:
    return DetectorData(_write_hsi(tmp_path), sources={"hsi": tmp_path / "hsi"}, seed=5)


def test_registered_with_hsi_input():
    assert registry()["hyperfake"].inputs == ("hsi",)
    with pytest.raises(ValueError, match="unknown key; did you mean 'attn_dim'"):
        create("hyperfake", {"attn_dims": 3})


def test_spectral_attention_equations():
    det = create("hyperfake", {"pretrained": "none", "pool": 4})
    net, _ = det._build("none", seed=0)
    sa = net.spectral
    cube = torch.rand(2, 31, 8, 8)
    a, alpha = sa.attention(cube)
    assert a.shape == (2, 31, 31) and torch.allclose(a.sum(-1), torch.ones(2, 31))  # softmax rows
    assert alpha.shape == (2, 3, 31) and torch.allclose(alpha.sum(-1), torch.ones(2, 3))
    # Eq. 3 with the residual mix gate at 0: F_c = sum_i alpha_ci H_i
    out = sa(cube)
    assert out.shape == (2, 3, 8, 8)
    assert torch.allclose(out, torch.einsum("bci,bihw->bchw", alpha, cube), atol=1e-5)


def test_fit_score_save_load(data, tmp_path):
    det = create("hyperfake", TINY)
    summary = det.fit(data)
    assert summary["train_frames"] == 12 and len(summary["history"]) == 2
    assert np.asarray(det.band_weights()).shape == (3, 31)
    scores = det.score(data, "test")
    assert list(scores.columns) == ["video_id", "frame_index", "score"] and len(scores) == 6
    assert scores["score"].between(0, 1).all()
    # it trained: finite losses, validation metrics, and the Eq. 3 prior weights moved
    assert all(np.isfinite(h["train_loss"]) and "val_auc" in h for h in summary["history"])
    init = create("hyperfake", TINY)._build("none", seed=0)[0].spectral.alpha_logits.softmax(-1)
    assert not np.allclose(det.band_weights(), init.detach().numpy())
    det.save(tmp_path / "model")
    again = get("hyperfake").load(tmp_path / "model")
    pd.testing.assert_frame_equal(again.score(data, "test"), scores)
    assert again.init_info()["hsi"]["variant"] == "flexi"
    n = again.num_parameters()
    assert n["backbone"] > 3e6 and n["spectral_attention"] > 0 and n["mst_frozen"] == 1619625


def test_offline_imagenet_init_is_recorded():
    det = create("hyperfake", {"pretrained": "imagenet", "hub": "false"})
    _, info = det._build("imagenet", seed=0)
    assert "lite0" in info["init"].lower() or "random" in info["init"].lower()


def _write_hsi_variant(root: Path, poisoned: bool) -> pd.DataFrame:
    """The cache of :func:`_write_hsi`, where ``poisoned`` adds a NaN to one train face and two
    all-NaN test videos; the clean variant simply lacks those faces."""
    rng = np.random.default_rng(0)
    rows = []
    with HSIWriter(root / "hsi" / "shard-0.h5", model_info={"variant": "flexi"}) as w:
        for i, (label, split) in enumerate(VIDEOS + [("fake", "test"), ("real", "test")]):
            vid = f"{label}/{split}-{i}.mp4"
            cubes = rng.uniform(0.1, 0.6, (3, 31, 16, 16)).astype(np.float32)
            if label == "fake":
                cubes[:, 22:28, 4:12, 4:12] += 0.4
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i}"})
            frames = [0, 3, 6]
            if i == 1:                                   # a train face with one NaN value
                if poisoned:
                    cubes[1, 5, 3, 3] = np.nan
                else:
                    cubes, frames = cubes[[0, 2]], [0, 6]
            if i >= len(VIDEOS):                         # two test videos of NaN cubes
                if not poisoned:
                    continue
                cubes[:, :, 0, 0] = np.nan
            w.add(vid, frames, cubes)
    return normalise(pd.DataFrame(rows))


def test_nan_cubes_are_left_out_and_the_rest_scored_as_in_a_clean_cache(tmp_path):
    from dfdetect.detectors.evaluation import evaluate_detector

    scores, runs = {}, {}
    for name in ("clean", "poisoned"):
        manifest = _write_hsi_variant(tmp_path / name, name == "poisoned")
        data = DetectorData(manifest, sources={"hsi": tmp_path / name / "hsi"}, seed=5)
        det = create("hyperfake", {**TINY, "epochs": 1})
        summary = det.fit(data)
        assert summary["train_frames"] == 11                 # the NaN train face left out
        scores[name], result, _ = evaluate_detector(det, data, splits=("test",))
        runs[name] = (data, result)
    data, result = runs["poisoned"]
    bad = sorted(data.checks.bad())
    assert bad == [("fake/test-8.mp4", 0), ("fake/test-8.mp4", 3), ("fake/test-8.mp4", 6),
                   ("fake/train-1.mp4", 3), ("real/test-9.mp4", 0), ("real/test-9.mp4", 3),
                   ("real/test-9.mp4", 6)]
    fails = data.checks.failures("train@hyperfake").frame()
    reasons = dict(zip(zip(fails["video_id"], fails["frame_index"]), fails["reason"]))
    assert reasons[("fake/train-1.mp4", 3)] == ("non-finite features: 1 NaN, 0 inf in hsi band_mean "
                                                "(bands of the cube)")
    assert reasons[("real/test-9.mp4", 6)].startswith("non-finite features: 31 NaN, 0 inf in hsi")
    assert fails["path"].str.endswith("shard-0.h5").all()
    assert result["test"]["unscored"] == {"frames": 6, "videos": 2}
    assert runs["clean"][1]["test"]["unscored"] == {"frames": 0, "videos": 0}
    # the other test videos are scored exactly as with the clean cache (same band statistics,
    # same training rows)
    pd.testing.assert_frame_equal(scores["poisoned"], scores["clean"])


def test_band_statistics_come_from_train_faces_only(tmp_path):
    """Val/test cubes never enter the standardisation (they carry a large offset here)."""
    from dfdetect.spectral.cache import HSICache

    manifest = _write_hsi(tmp_path)
    # rewrite the cache with +5 on every val/test cube
    cache = HSICache(tmp_path / "hsi")
    cubes = {v: np.stack([cache.read_numpy(v, i).astype(np.float32) for i in range(3)])
             for v in manifest["video_id"]}
    cache.close()
    split = dict(zip(manifest["video_id"], manifest["split"]))
    with HSIWriter(tmp_path / "hsi2" / "shard-0.h5", model_info={"variant": "flexi"}) as w:
        for v, c in cubes.items():
            w.add(v, [0, 3, 6], c + (5.0 if split[v] != "train" else 0.0))
    data = DetectorData(manifest, sources={"hsi": tmp_path / "hsi2"}, seed=5)
    det = create("hyperfake", {**TINY, "epochs": 1})
    det.fit(data)
    train = np.concatenate([c for v, c in cubes.items() if split[v] == "train"]).astype(np.float64)
    want = train.transpose(1, 0, 2, 3).reshape(31, -1)
    got_mean = det.model.spectral.norm_mean.detach().numpy()
    assert np.abs(got_mean - want.mean(1)).max() < 1e-4
    assert np.abs(det.model.spectral.norm_std.detach().numpy() - want.std(1)).max() < 1e-4
