"""The Saab transform of one hop: kernels, energies, bias, exact inversion, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.saab import Saab, neighbourhoods
from dfdetect.saab.saab import dc_complement_basis


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    """27-D neighbourhoods (3x3x3) of a real photograph, as hop 1 sees them."""
    from skimage import data

    img = data.astronaut()[::4, ::4].astype(np.float32)           # 128 x 128 x 3
    return neighbourhoods(img[None], 3).reshape(-1, 27).astype(np.float64)


def test_kernels_orthonormal_dc_constant_ac_zero_sum(vectors):
    s = Saab().fit(vectors)
    k = s.kernels_
    assert k.shape == (27, 27)
    np.testing.assert_allclose(k @ k.T, np.eye(27), atol=1e-10)
    np.testing.assert_allclose(k[0], np.full(27, 1 / np.sqrt(27)), atol=1e-12)
    np.testing.assert_allclose(k[1:].sum(axis=1), 0.0, atol=1e-10)


def test_energies_sum_to_one_and_ac_sorted(vectors):
    s = Saab().fit(vectors)
    assert s.energy_.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(s.energy_ >= 0)
    assert np.all(np.diff(s.energy_[1:]) <= 1e-15)               # AC by decreasing eigenvalue
    # energies are the shares of the response variances: check against the responses
    y = s.transform(vectors)
    np.testing.assert_allclose(y.var(axis=0) / y.var(axis=0).sum(), s.energy_, atol=1e-9)
    # total variance is preserved (orthonormal basis)
    assert s.variance_.sum() == pytest.approx(vectors.var(axis=0).sum(), rel=1e-9)


def test_responses_nonnegative_on_training_vectors(vectors):
    s = Saab(bias=True).fit(vectors)
    assert s.transform(vectors).min() >= 0.0
    signed = Saab(bias=False).fit(vectors).transform(vectors)
    assert signed.min() < 0                                          # the bias is what does it


def test_inverse_transform_reconstructs_when_nothing_discarded(vectors):
    s = Saab().fit(vectors)
    y = s.transform(vectors)
    np.testing.assert_allclose(s.inverse_transform(y), vectors, atol=1e-9)
    # truncation loses exactly the discarded energy (in the mean-square sense)
    y3 = y[:, :3]
    err = ((s.inverse_transform(y3) - vectors) ** 2).sum(axis=1).mean()
    assert err == pytest.approx(s.variance_[3:].sum(), rel=1e-6)


def test_refit_identical_kernels_and_batched_fit_equal(vectors):
    a = Saab().fit(vectors)
    b = Saab().fit(vectors)
    assert np.array_equal(a.kernels_, b.kernels_)
    assert np.array_equal(a.energy_, b.energy_)
    c = Saab().fit(np.array_split(vectors, 7))                      # streamed in batches
    np.testing.assert_allclose(np.abs(c.kernels_), np.abs(a.kernels_), atol=1e-7)
    # signs are fixed: largest-magnitude entry of each kernel is positive
    idx = np.argmax(np.abs(a.kernels_), axis=1)
    assert np.all(a.kernels_[np.arange(27), idx] > 0)


def test_matches_pca_of_dc_removed_vectors(vectors):
    s = Saab(bias=False).fit(vectors)
    ac = vectors - vectors.mean(axis=1, keepdims=True)               # remove local mean (DC)
    ac -= ac.mean(axis=0)
    evals = np.sort(np.linalg.eigvalsh(np.cov(ac, rowvar=False, bias=True)))[::-1][:-1]
    np.testing.assert_allclose(s.variance_[1:], evals, rtol=1e-8, atol=1e-8)


def test_state_roundtrip(vectors):
    s = Saab().fit(vectors)
    t = Saab.from_state(s.state())
    np.testing.assert_array_equal(s.transform(vectors[:50]), t.transform(vectors[:50]))


def test_dc_complement_basis():
    b = dc_complement_basis(9)
    np.testing.assert_allclose(b.T @ b, np.eye(8), atol=1e-12)
    np.testing.assert_allclose(b.sum(axis=0), 0.0, atol=1e-12)


def test_ac_energy_is_the_authors_normalisation(vectors):
    """AC energies: eigenvalues of the covariance of the DC-removed vectors over their sum, the
    DC taking no share (the authors' Saab: PCA of patch-mean-removed vectors, last eigenvalue
    dropped, normalised by the sum of the rest)."""
    s = Saab().fit(vectors)
    x = vectors - vectors.mean(axis=0)
    x -= x.mean(axis=1, keepdims=True)
    ev = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1][:-1]
    assert s.ac_energy_.shape == (26,)
    np.testing.assert_allclose(s.ac_energy_, ev / ev.sum(), rtol=1e-7, atol=1e-12)
    assert s.ac_energy_.sum() == pytest.approx(1.0, abs=1e-12)
    # shares of the total (DC included) are a different, smaller thing
    assert s.energy_[1:].sum() < 1.0 - 1e-3
    assert np.array_equal(Saab.from_state(s.state()).ac_energy_, s.ac_energy_)
