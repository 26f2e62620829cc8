"""The channel-wise PixelHop++ tree: shapes per hop, thresholds, channel caps, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.saab import PixelHop, max_pool, neighbourhoods


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    """400 random 32x32 RGB crops of real photographs."""
    from skimage import data

    rng = np.random.default_rng(0)
    out = []
    for img in (data.astronaut(), data.chelsea(), data.coffee()):
        h, w = img.shape[:2]
        for y, x in zip(rng.integers(0, h - 32, 134), rng.integers(0, w - 32, 134)):
            out.append(img[y:y + 32, x:x + 32])
    return np.stack(out)[:400]


@pytest.fixture(scope="module")
def fitted(patches) -> PixelHop:
    return PixelHop(seed=1).fit(patches)


def test_shapes_per_hop(fitted, patches):
    outs = fitted.transform(patches[:20])
    assert [o.shape[1:3] for o in outs] == [(15, 15), (7, 7), (3, 3)]   # 32-30-15-13-7-5-3
    assert all(o.shape[0] == 20 and o.dtype == np.float32 for o in outs)
    assert [o.shape[3] for o in outs] == [h.n_out for h in fitted.hops]
    assert fitted.hops[0].units[0].dim == 27                          # 3x3x3 neighbourhoods
    assert all(u.dim == 9 for h in fitted.hops[1:] for u in h.units)   # channel-wise: 3x3x1


def test_thresholds_and_channel_caps(patches):
    ph = PixelHop(seed=1, split_thr=0.01, keep_thr=0.001, max_channels=[10, 6, 4]).fit(patches)
    for i, h in enumerate(ph.hops):
        assert h.n_out <= [10, 6, 4][i]
        assert np.all(h.energy > 0.001)
        assert np.all(np.diff(h.energy) <= 0)                       # highest energy first
        # the kept channels are the highest-energy candidates across all c/w Saabs of the hop
        parent = np.ones(1) if i == 0 else ph.hops[i - 1].energy[ph.hops[i - 1].split]
        cand = np.sort(np.concatenate([u.ac_energy_ * parent[j] for j, u in enumerate(h.units)]))[::-1]
        cand = cand[cand > 0.001]
        assert h.candidates == len(cand)
        np.testing.assert_allclose(h.energy, cand[:h.n_out])
        # split channels: output channels above split_thr (none after the last hop)
        if i < 2:
            np.testing.assert_array_equal(h.split, h.energy > 0.01)
            assert len(ph.hops[i + 1].units) == int(h.split.sum())
        else:
            assert not h.split.any()
    assert ph.num_parameters() == {"hop1": 27 * ph.hops[0].n_out, "hop2": 9 * ph.hops[1].n_out,
                                   "hop3": 9 * ph.hops[2].n_out}
    # hop-1 energies are shares of the AC energy: the AC channels' shares sum to 1
    assert ph.hops[0].units[0].ac_energy_.sum() == pytest.approx(1.0)


def test_decisions_on_ac_energy_dc_never_kept(patches):
    """Keep/split on AC energy (defakehop.txt 3.2.1, the authors' code), not on shares of a
    total the DC (local mean) dominates: on photo patches the DC holds most of the variance,
    and counting it made hop 1 keep and pass on far fewer channels (and output the DC)."""
    ph = PixelHop(seed=1, max_channels=26).fit(patches)
    saab = ph.hops[0].units[0]
    assert saab.energy_[0] > 0.5                                      # the DC dominates the total
    for h in ph.hops:
        assert 0 not in h.out_channel                                # no DC channel, any hop
    # hop 1: every AC channel above keep_thr is output (cap 26), those above split_thr go on
    ac = saab.ac_energy_
    assert ph.hops[0].n_out == int((ac > 0.001).sum())
    assert int(ph.hops[0].split.sum()) == int((ac > 0.01).sum())
    np.testing.assert_allclose(ph.hops[0].energy, np.sort(ac[ac > 0.001])[::-1])
    # the shares of the total would have passed fewer channels on: the decision is not that
    assert int((saab.energy_[1:] > 0.01).sum()) < int(ph.hops[0].split.sum())
    # a child's energy is its AC share within its Saab times its parent's energy
    parent = ph.hops[0].energy[ph.hops[0].split]
    h2 = ph.hops[1]
    for k in range(h2.n_out):
        u, ch = int(h2.out_unit[k]), int(h2.out_channel[k])
        assert h2.energy[k] == pytest.approx(h2.units[u].ac_energy_[ch - 1] * parent[u])


def test_higher_threshold_keeps_fewer(patches):
    loose = PixelHop(seed=1, keep_thr=0.0005, max_channels=27).fit(patches)
    tight = PixelHop(seed=1, keep_thr=0.005, split_thr=0.05, max_channels=27).fit(patches)
    assert tight.hops[0].n_out < loose.hops[0].n_out
    assert tight.hops[0].split.sum() <= loose.hops[0].split.sum()


def test_refit_identical_and_save_load(fitted, patches, tmp_path):
    again = PixelHop(seed=1).fit(patches)
    for a, b in zip(fitted.hops, again.hops):
        for ua, ub in zip(a.units, b.units):
            assert np.array_equal(ua.kernels_, ub.kernels_)
    fitted.save(tmp_path / "left_eye")
    loaded = PixelHop.load(tmp_path / "left_eye")
    for a, b in zip(fitted.transform(patches[:10]), loaded.transform(patches[:10])):
        np.testing.assert_array_equal(a, b)
    again.save(tmp_path / "again")
    assert (tmp_path / "left_eye.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()
    assert (tmp_path / "left_eye.json").read_text() == (tmp_path / "again.json").read_text()


def test_transform_batches_and_fit_subsample_are_consistent(fitted, patches):
    small = PixelHop(seed=1, batch_images=7).fit(patches)
    for a, b in zip(fitted.transform(patches[:30]), small.transform(patches[:30])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-2)
    sub = PixelHop(seed=3, fit_max_images=100).fit(patches)
    assert sub.hops[0].units[0].n_samples_seen_ == 100 * 30 * 30


def test_hop1_equals_explicit_convolution(fitted, patches):
    """Response of one kept channel = max-pooled (kernel . neighbourhood + c)."""
    x = patches[:3].astype(np.float64)
    h = fitted.hops[0]
    saab = h.units[0]
    ch = int(h.out_channel[1])
    ker = saab.kernels_[ch].reshape(3, 3, 3)                          # (row, col, channel)
    conv = np.zeros((3, 30, 30))
    for di in range(3):
        for dj in range(3):
            conv += np.einsum("nhwc,c->nhw", x[:, di:di + 30, dj:dj + 30, :], ker[di, dj])
    conv += saab.bias_ - saab.kernels_[ch] @ saab.mean_
    expected = conv.reshape(3, 15, 2, 15, 2).max(axis=(2, 4))
    got = fitted.transform(patches[:3])[0][..., 1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-2)


def test_max_pool_ceil_mode_never_pads_with_zeros():
    a = -np.arange(1, 26, dtype=np.float32).reshape(1, 5, 5, 1)      # all negative
    p = max_pool(a, 2)
    assert p.shape == (1, 3, 3, 1)
    assert p[0, 2, 2, 0] == -25.0                                     # not 0 from padding
    assert p[0, 0, 0, 0] == -1.0


def test_neighbourhood_order():
    a = np.arange(4 * 4 * 2, dtype=np.float32).reshape(1, 4, 4, 2)
    v = neighbourhoods(a, 3)
    assert v.shape == (1, 2, 2, 18)
    np.testing.assert_array_equal(v[0, 1, 0], a[0, 1:4, 0:3, :].reshape(-1))
