"""The shared training loop: learning, determinism, early stopping, logging, helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from dfdetect.nn import train as T


def _data(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 3 == 0).float()  # imbalanced: 1/3 positive
    x = torch.randn(n, 2, 8, 8, generator=g) + y[:, None, None, None] * 1.5
    return TensorDataset(x, y, torch.arange(n))


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))


class _Logger:
    def __init__(self):
        self.metrics, self.steps = [], 0

    def log_metric(self, name, value):
        self.metrics.append((self.steps, name, value))

    def next_step(self):
        self.steps += 1


def _run(epochs=6, **kw):
    tr, va = _data(48, 0), _data(24, 1)
    model = _model()
    cfg = T.TrainConfig(epochs=epochs, lr=0.05, seed=4, num_threads=1, **kw)
    res = T.fit(model, T.make_loader(tr, 8, shuffle=True, seed=4), T.make_loader(va, 16), cfg,
                train_labels=tr.tensors[1].numpy())
    return model, res


def test_learns_and_keeps_the_best_epoch():
    model, res = _run()
    assert len(res.history) == 6
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert max(h["val_auc"] for h in res.history) > 0.9
    best = res.history[res.best_epoch]
    assert best["val_auc"] == max(h["val_auc"] for h in res.history)
    assert res.pos_weight == pytest.approx(2.0)  # 32 negatives / 16 positives
    # the model holds the best epoch's weights
    logits, y, _ = T.predict(model, T.make_loader(_data(24, 1), 16))
    assert T.roc_auc(y, logits) == pytest.approx(best["val_auc"])


def test_same_seed_same_weights_bit_for_bit():
    m1, r1 = _run(epochs=3)
    m2, r2 = _run(epochs=3)
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert r1.summary(timings=False) == r2.summary(timings=False)


def test_state_is_restored_after_training():
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    _run(epochs=1)
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == det


def test_early_stopping_on_val_loss():
    _, res = _run(epochs=30, patience=1, monitor="val_loss")
    assert res.stopped_early and len(res.history) < 30
    assert res.history[res.best_epoch]["val_loss"] == min(h["val_loss"] for h in res.history)
    assert len(res.history) == res.best_epoch + 2


def test_logger_gets_one_step_per_epoch_and_cosine_decays():
    tr = _data(32)
    logger = _Logger()
    cfg = T.TrainConfig(epochs=3, lr=0.01, seed=0, optimizer="adam", min_lr_ratio=0.0)
    res = T.fit(_model(), T.make_loader(tr, 8, shuffle=True), None, cfg, logger=logger)
    assert logger.steps == 3
    names = {n for _, n, _ in logger.metrics}
    assert {"train/loss", "train/acc", "lr", "epoch_time_s"} <= names
    assert "val/loss" not in names  # no validation loader
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] < 0.01 and lrs[-1] == pytest.approx(0.0, abs=1e-9) and lrs == sorted(lrs, reverse=True)
    assert res.best_epoch == 2


def test_bad_optimizer_is_rejected():
    with pytest.raises(ValueError, match="optimizer"):
        T.fit(_model(), T.make_loader(_data(8), 4), None, T.TrainConfig(epochs=1, optimizer="sgd"))


def test_helpers():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # ties included
    assert T.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(T.roc_auc(np.ones(3), np.arange(3)))
    assert T.pos_weight_from_labels([1, 1, 1, 0]) == pytest.approx(1 / 3)
    assert T.pos_weight_from_labels([1, 1]) is None
    assert T.resolve_device("cpu") == "cpu"
    assert T.resolve_device("auto") in ("cpu", "cuda")
    cfg = T.TrainConfig.from_params({"epochs": 2, "image_size": 64, "lr": 0.1}, seed=9)
    assert (cfg.epochs, cfg.lr, cfg.seed) == (2, 0.1, 9)
    # a final batch of one is dropped when shuffling (batch norm cannot train on one item)
    assert len(T.make_loader(_data(9), 4, shuffle=True)) == 2
    assert len(T.make_loader(_data(9), 4)) == 3


def test_nadam_has_the_keras_settings(monkeypatch):
    """optimizer: nadam = torch NAdam with Keras' Nadam(lr, schedule_decay=0.004) settings
    (metric_learning.txt §IV-C: lr 0.002, schedule decay 0.004)."""
    seen = {}
    real = torch.optim.NAdam

    def spy(params, **kw):
        seen.update(kw)
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "NAdam", spy)
    tr = _data(16)
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    T.fit(model, T.make_loader(tr, 8, shuffle=True), None,
          T.TrainConfig(epochs=1, lr=0.002, weight_decay=0.0, optimizer="nadam", scheduler="none"))
    assert seen == {"lr": 0.002, "weight_decay": 0.0, "momentum_decay": 0.004, "eps": 1e-7}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
