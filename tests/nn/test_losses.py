"""Metric-learning losses: hand-computed triplet / AdaTriplet values, AutoMargin, schedule, mining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfdetect.nn.losses import (AutoMargin, MarginSchedule, ada_triplet_loss, mine_triplets,
                                pairwise_distance, pk_batches, triplet_loss, valid_triplets)


def t(*rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_triplet_loss_cosine_and_sqeuclidean_by_hand():
    a, p, n = t([1, 0]), t([0.6, 0.8]), t([0.8, 0.6])
    # d_ap = 1 - 0.6 = 0.4, d_an = 1 - 0.8 = 0.2 -> 0.4 - 0.2 + 0.2
    assert triplet_loss(a, p, n, 0.2, "cosine").item() == pytest.approx(0.4)
    a, p = t([0, 0], [0, 0]), t([1, 0], [1, 0])
    n = t([0, 2], [0, 1])
    # d_ap = 1; d_an = 4 -> [1 - 4 + 1]_+ = 0; d_an = 1 -> 1
    per = triplet_loss(a, p, n, 1.0, "sqeuclidean", reduction="none")
    assert per.tolist() == pytest.approx([0.0, 1.0])
    assert triplet_loss(a, p, n, 1.0, "sqeuclidean").item() == pytest.approx(0.5)
    assert triplet_loss(a, p, n, 1.0, "sqeuclidean", reduction="nonzero").item() == pytest.approx(1.0)


def test_ada_triplet_loss_by_hand():
    a = t([1, 0], [1, 0])
    p = t([0.6, 0.8], [1, 0])        # phi_ap = 0.6, 1.0
    n = t([0.8, 0.6], [0, 1])        # phi_an = 0.8, 0.0
    per = ada_triplet_loss(a, p, n, eps=0.1, beta=0.5, lambda_n=1.0, reduction="none")
    # [0.8 - 0.6 + 0.1]_+ + [0.8 - 0.5]_+ = 0.3 + 0.3 ; [0 - 1 + 0.1]_+ + [0 - 0.5]_+ = 0
    assert per.tolist() == pytest.approx([0.6, 0.0])
    assert ada_triplet_loss(a, p, n, 0.1, 0.5, 2.0, "none").tolist() == pytest.approx([0.9, 0.0])
    assert ada_triplet_loss(a, p, n, 0.1, 0.5).item() == pytest.approx(0.3)
    assert ada_triplet_loss(a, p, n, 0.1, 0.5, reduction="nonzero").item() == pytest.approx(0.6)


def test_ada_triplet_gradient_pushes_negative_away():
    a = torch.tensor([[1.0, 0.0]])
    p = torch.tensor([[0.6, 0.8]])
    n = torch.tensor([[0.8, 0.6]], requires_grad=True)
    ada_triplet_loss(a, p, n, 0.1, 0.5).backward()
    with torch.no_grad():
        moved = n - 0.1 * n.grad
        assert torch.nn.functional.cosine_similarity(a, moved).item() < 0.8


def test_automargin_update_rule_by_hand():
    am = AutoMargin(eps=0.2, beta=0.0)
    a = t([1, 0], [1, 0], [1, 0])
    p = t([0.6, 0.8], [1, 0], [1, 0])
    n = t([0.8, 0.6], [0, 1], [0, 1])
    # triplets: Delta = 0.6-0.8, 1-0, 1-0 -> mean 0.6 -> eps = 0.3
    # anchor-negative pairs (0,5), (0,6), (0,6): unique phi_an = 0.8, 0.0 -> mean 0.4
    # beta = 1 - (1 - 0.4)/2 = 0.7
    am.observe(a, p, n, torch.tensor([0, 0, 0]), torch.tensor([5, 6, 6]))
    eps, beta = am.step()
    assert eps == pytest.approx(0.3)
    assert beta == pytest.approx(0.7)
    # nothing observed: unchanged
    assert am.step() == pytest.approx((0.3, 0.7))
    # a negative mean Delta clips eps at 0
    am.observe(t([1, 0]), t([0, 1]), t([1, 0]))
    assert am.step()[0] == 0.0


def test_margin_schedule_three_stages():
    s = MarginSchedule(lambda_0=0.25, fixed_epochs=1, ada_epochs=2, final_epochs=1)
    assert [s.stage(e) for e in range(4)] == ["fixed", "ada", "ada", "final"]
    a, p, n = t([1, 0]), t([0.6, 0.8]), t([0.8, 0.6])
    assert s.margin(0) == 0.25
    s.auto.observe(a, p, n)                # Delta = -0.2
    s.auto.observe(t([1, 0]), t([1, 0]), t([0, 1]))   # Delta = 1
    s.end_epoch(0)                         # before the adaptive stage: margins from data
    assert s.auto.eps == pytest.approx(0.2)   # mean(-0.2, 1) / 2
    assert s.margin(1) == pytest.approx(0.2)
    # AdaTriplet loss in the adaptive stage
    assert s.loss(1, a, p, n).item() == pytest.approx(
        ada_triplet_loss(a, p, n, s.auto.eps, s.auto.beta).item())
    s.auto.observe(t([1, 0]), t([1, 0]), t([0, 1]))
    s.end_epoch(1)
    assert s.auto.eps == pytest.approx(0.5)
    s.end_epoch(2)                         # nothing observed: unchanged
    assert s.margin(3) == pytest.approx(0.5)      # lambda_f = last adaptive eps
    assert s.state()["lambda_f"] == pytest.approx(0.5)
    assert s.loss(3, a, p, n).item() == pytest.approx(triplet_loss(a, p, n, 0.5, "cosine").item())


def test_pairwise_distance_matches_rowwise():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for kind in ("cosine", "sqeuclidean"):
        d = pairwise_distance(x, kind=kind)
        assert d.shape == (5, 5)
        assert torch.allclose(d.diagonal(), torch.zeros(5, dtype=torch.float64), atol=1e-9)
        if kind == "sqeuclidean":
            assert d[1, 3].item() == pytest.approx(((x[1] - x[3]) ** 2).sum().item())


def test_mining():
    labels = torch.tensor([0, 0, 1, 1])
    a, p, n = valid_triplets(labels)
    assert len(a) == 8 and (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all()
    assert (a != p).all()
    emb = t([0, 0], [1, 0], [0, 1.5], [3, 3])
    a, p, n = mine_triplets(emb, labels, "batch_hard", kind="sqeuclidean")
    # anchor 0: farthest positive 1 (d=1), closest negative 2 (d=2.25)
    assert (a[0].item(), p[0].item(), n[0].item()) == (0, 1, 2)
    a, p, n = mine_triplets(emb, labels, "semihard", margin=1.5, kind="sqeuclidean")
    d = pairwise_distance(emb, kind="sqeuclidean")
    assert ((d[a, n] > d[a, p]) & (d[a, n] < d[a, p] + 1.5)).all() and len(a) > 0
    a, p, n = mine_triplets(emb, labels, "hard", kind="sqeuclidean")
    assert (d[a, n] <= d[a, p]).all()
    with pytest.raises(ValueError):
        mine_triplets(emb, labels, "nope")


def test_pk_batches_cover_each_item_once():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2 + [3])
    batches = pk_batches(labels, 2, 2, seed=1, epoch=0)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    for b in batches:
        assert len(set(labels[b])) >= 2
    assert pk_batches(labels, 2, 2, seed=1, epoch=0) == batches
    assert pk_batches(labels, 2, 2, seed=1, epoch=1) != batches
