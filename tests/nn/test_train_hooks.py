"""The shared loop's optional hooks (two_branch.txt): custom criterion, parameter groups,
plateau scheduler; and that unused hooks leave the RGB detectors' training unchanged."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from dfdetect.nn import train as T


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % 3 == 0).float()
    x = torch.randn(n, 2, 8, 8, generator=g) + y[:, None, None, None] * 1.5
    return TensorDataset(x, y, torch.arange(n))


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 1))


def _loaders():
    tr, va = _data(24, 0), _data(12, 1)
    return (T.make_loader(tr, 8, shuffle=True, seed=2), T.make_loader(va, 6)), tr.tensors[1]


def test_custom_criterion_is_train_and_val_loss():
    (dl_tr, dl_va), ytr = _loaders()
    calls = []

    def crit(out, y):
        calls.append(out.shape)
        return ((out - y) ** 2).mean()

    res = T.fit(_model(), dl_tr, dl_va, T.TrainConfig(epochs=2, lr=0.01, seed=1, num_threads=1),
                criterion=crit, train_labels=ytr)
    assert res.pos_weight is None and len(calls) == 2 * (len(dl_tr) + 1)
    m = _model()
    (dl_tr, dl_va), _ = _loaders()        # fresh loaders: the shuffling generator has advanced
    T.fit(m, dl_tr, dl_va, T.TrainConfig(epochs=2, lr=0.01, seed=1, num_threads=1), criterion=crit)
    lg, yv, _ = T.predict(m, dl_va)
    best = res.history[res.best_epoch]
    assert best["val_loss"] == pytest.approx(float(((torch.from_numpy(lg) - torch.from_numpy(yv)) ** 2).mean()))


def test_param_groups_set_learning_rates_and_are_checked():
    (dl_tr, dl_va), _ = _loaders()
    model = _model()
    conv, head = list(model[0].parameters()), list(model[5].parameters())
    bn = list(model[1].parameters())
    before = [p.detach().clone() for p in conv]
    groups = lambda m: [{"params": conv + bn, "lr": 0.0}, {"params": head}]  # noqa: E731
    T.fit(model, dl_tr, None, T.TrainConfig(epochs=1, lr=0.05, seed=1, num_threads=1, scheduler="none"),
          param_groups=groups)
    assert all(torch.equal(a, b) for a, b in zip(before, conv))      # lr 0: frozen by its group
    with pytest.raises(ValueError, match="in no group"):
        T.fit(_model(), dl_tr, None, T.TrainConfig(epochs=1), param_groups=lambda m: [list(m[5].parameters())])
    with pytest.raises(ValueError, match="in groups 0 and 1"):
        T.fit(_model(), dl_tr, None, T.TrainConfig(epochs=1),
              param_groups=lambda m: [list(m.parameters()), list(m[5].parameters())])


def test_plateau_scheduler_divides_lr_then_stops():
    (dl_tr, dl_va), _ = _loaders()
    flat = lambda out, y: out.sum() * 0.0 + 1.0          # noqa: E731  (a val loss that never improves)
    cfg = T.TrainConfig(epochs=10, lr=0.01, seed=1, num_threads=1, scheduler="plateau",
                        plateau_factor=0.1, plateau_patience=0, max_reductions=2, monitor="val_loss")
    res = T.fit(_model(), dl_tr, dl_va, cfg, criterion=flat)
    lrs = [h["lr"] for h in res.history]
    assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.0001])   # cuts after epochs 2 and 3, stop at 4
    assert res.lr_reductions == 2 and res.stopped_early and res.best_epoch == 0
    cfg.plateau_patience = 50                                 # a long patience: never cuts
    res = T.fit(_model(), dl_tr, dl_va, cfg, criterion=flat)
    assert [h["lr"] for h in res.history] == [0.01] * 10 and not res.stopped_early
    with pytest.raises(ValueError, match="scheduler must be"):
        T.fit(_model(), dl_tr, dl_va, T.TrainConfig(epochs=1, scheduler="step"))


def _explicit_hooks(monkeypatch):
    """Route every fit() through the hooks, set to exactly what the default path does."""
    real_fit = T.fit

    def fit(model, train_loader, val_loader=None, config=None, **kw):
        labels = kw.get("train_labels")
        labels = labels if labels is not None else train_loader.dataset.labels
        pw = T.pos_weight_from_labels(labels)
        crit = torch.nn.BCEWithLogitsLoss(pos_weight=None if pw is None else torch.tensor(pw))
        groups = lambda m: [{"params": [p for p in m.parameters() if p.requires_grad]}]  # noqa: E731
        return real_fit(model, train_loader, val_loader, config, criterion=crit, param_groups=groups, **kw)

    monkeypatch.setattr(T, "fit", fit)


def test_rgb_detector_unchanged_when_hooks_unused(tmp_path, monkeypatch):
    """efficientnet_b0 trained through the default path (no criterion, no groups) and through the
    hooks given the default path's own BCE + one group give byte-identical weights and scores."""
    from dfdetect.data.manifest import normalise
    from dfdetect.detectors.base import DetectorData, create
    from dfdetect.store import ShardWriter

    rng = np.random.default_rng(0)
    rows = []
    with ShardWriter(tmp_path / "faces" / "shard-0.h5") as w:
        for i, (label, split) in enumerate([("real", "train"), ("real", "train"), ("fake", "train"),
                                            ("real", "val"), ("fake", "val"), ("real", "test"), ("fake", "test")]):
            vid = f"{label}/{split}-{i}.mp4"
            faces = rng.integers(0, 200, (3, 32, 32, 3), dtype=np.uint8)
            if label == "fake":
                faces[:, 10:22, 10:22] = 255
            w.add_video(vid, [0, 4, 8], face=faces)
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i}"})
    data = DetectorData(normalise(pd.DataFrame(rows)), sources={"faces": tmp_path / "faces"}, seed=3)
    # shuffled batches, so that the default criterion carries pos_weight (balanced sampling, the
    # recipe's default, makes it none)
    tiny = {"image_size": 32, "epochs": 2, "batch_size": 2, "eval_batch_size": 4, "pretrained": "none",
            "max_train_frames": 0, "max_val_frames": 0, "num_threads": 1, "device": "cpu",
            "sampling": "shuffle"}

    def run():
        det = create("efficientnet_b0", tiny)
        summary = det.fit(data)
        return det.score(data, "test")["score"].to_numpy(), det.model.state_dict(), summary

    s_default, w_default, sum_default = run()
    assert sum_default["pos_weight"] == pytest.approx(2.0)     # 6 real / 3 fake train frames
    _explicit_hooks(monkeypatch)
    s_hooks, w_hooks, _ = run()
    assert s_default.tobytes() == s_hooks.tobytes()
    assert all(torch.equal(w_default[k], w_hooks[k]) for k in w_default)
