"""The Saab transform (subspace approximation with adjusted bias) of one hop.

Input: flattened neighbourhoods, shape ``(n, D)`` (``D = k*k*C``). The fitted transform is an
orthonormal basis of R^D:

- the DC kernel ``1/sqrt(D) * ones(D)`` (the local mean);
- ``D - 1`` AC kernels: the principal components of the DC-removed (and feature-mean removed)
  vectors, ordered by decreasing eigenvalue, computed inside the orthogonal complement of the DC
  kernel so that every AC kernel sums to exactly zero;
- one bias ``b`` added to every response, ``b >= max ||x - mean||`` over the training vectors, so
  that every response to a training vector is non-negative (``|a_k . x| <= ||x||`` for unit
  kernels). The bias is a constant offset: it changes nothing downstream of a centred PCA or a
  tree classifier and commutes with max pooling; it is removed by ``inverse_transform``.

Energies. ``energy_`` is each channel's response variance divided by the total variance (DC
included; they sum to 1). ``ac_energy_`` is what PixelHop++ decides on (defakehop.txt section
3.2.1, and the authors' code): the AC channels' variances divided by the AC total, so they sum to
1 over the ``D - 1`` AC channels and the DC (local mean) takes no share. On face patches the DC
holds most of the total (0.89 at hop 1 of the demo), so shares of the total would make every
AC channel look 9x weaker than the paper's thresholds assume.

Eigenvector signs are made deterministic: each kernel's entry of largest magnitude is positive.
The covariance is accumulated in float64 over batches, so fitting never materialises more than
``batch_size`` vectors in float64.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def dc_complement_basis(dim: int) -> np.ndarray:
    """An orthonormal basis (dim, dim-1) of the subspace orthogonal to ``ones(dim)`` (Helmert)."""
    basis = np.zeros((dim, dim - 1))
    for j in range(1, dim):
        basis[:j, j - 1] = 1.0
        basis[j, j - 1] = -float(j)
        basis[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return basis


def ac_energy(variance: np.ndarray) -> np.ndarray:
    """Shares of the AC total of the AC variances ``variance[1:]`` (DC first); uniform when the
    AC part has no variance."""
    ac = np.asarray(variance, dtype=np.float64)[1:]
    total = float(ac.sum())
    if not len(ac):
        return ac
    return ac / total if total > 0 else np.full(len(ac), 1.0 / len(ac))


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its entry of largest magnitude is positive (ties: first)."""
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


class CovarianceAccumulator:
    """Streaming mean and covariance (float64) of row vectors, fed batch by batch.

    Also tracks ``max ||x||``; ``finish`` turns it into ``max ||x|| + ||mean||``, an upper bound
    of ``max ||x - mean||`` (triangle inequality) that does not depend on how the data were
    batched: what the Saab bias needs (non-negative responses) without a second pass.
    """

    def __init__(self, dim: int):
        self.dim = int(dim)
        self.n = 0
        self.shift: np.ndarray | None = None
        self.s1 = np.zeros(self.dim)
        self.s2 = np.zeros((self.dim, self.dim))
        self.max_sq_norm = 0.0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        if not len(x):
            return
        if self.shift is None:
            # a rough centre (first batch mean) keeps E[xx'] - mm' well conditioned
            self.shift = x.mean(axis=0)
        self.n += len(x)
        s1 = x.sum(axis=0)
        self.s1 += s1 - len(x) * self.shift
        # sum (x - s)(x - s)' = X'X - s1 s' - s s1' + n s s'   (one BLAS call, no centred copy)
        g = x.T @ x
        self.s2 += g - np.outer(s1, self.shift) - np.outer(self.shift, s1) + len(x) * np.outer(self.shift, self.shift)
        self.max_sq_norm = max(self.max_sq_norm, float(np.einsum("ij,ij->i", x, x).max()))

    def finish(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(mean, covariance with 1/n normalisation, upper bound of max ||x - mean||)."""
        if self.n < 2:
            raise ValueError(f"need at least 2 vectors to fit a Saab transform, got {self.n}")
        m_shifted = self.s1 / self.n
        cov = self.s2 / self.n - np.outer(m_shifted, m_shifted)
        cov = (cov + cov.T) / 2
        mean = self.shift + m_shifted
        bound = float(np.sqrt(self.max_sq_norm) + np.linalg.norm(mean))
        return mean, cov, bound


class Saab:
    """One Saab transform on ``(n, D)`` vectors (scikit-learn style).

    Attributes after ``fit``: ``mean_`` (D,), ``kernels_`` (D, D), row 0 the DC kernel and rows
    1.. the AC kernels by decreasing eigenvalue; ``variance_`` (D,); ``energy_`` (D,) shares of
    the total (DC included); ``ac_energy_`` (D-1,) shares of the AC total, AC channel ``j`` being
    kernel row ``j + 1``; ``bias_`` (float).
    ``transform(x, n_channels=None)`` returns the first ``n_channels`` responses (all by default)
    or the responses of the channel indices given by ``channels``.
    """

    def __init__(self, bias: bool = True, batch_size: int = 200_000):
        self.bias = bool(bias)
        self.batch_size = int(batch_size)

    # -- fitting -------------------------------------------------------------------------
    def fit(self, x: np.ndarray | Iterable[np.ndarray], y=None) -> "Saab":
        """Fit on an array ``(n, D)`` or on an iterable of such batches."""
        batches = [x] if isinstance(x, np.ndarray) else x
        acc: CovarianceAccumulator | None = None
        for batch in batches:
            batch = np.asarray(batch)
            batch = batch.reshape(-1, batch.shape[-1])
            if acc is None:
                acc = CovarianceAccumulator(batch.shape[-1])
            for i in range(0, len(batch), self.batch_size):
                acc.add(batch[i:i + self.batch_size])
        if acc is None:
            raise ValueError("Saab.fit: no data")
        mean, cov, max_norm = acc.finish()
        return self._fit_from_stats(mean, cov, max_norm, acc.n)

    def _fit_from_stats(self, mean: np.ndarray, cov: np.ndarray, max_norm: float, n: int) -> "Saab":
        dim = len(mean)
        dc = np.full(dim, 1.0 / np.sqrt(dim))
        if dim == 1:
            kernels = dc[None, :]
            var = np.array([cov[0, 0]])
        else:
            basis = dc_complement_basis(dim)                 # (D, D-1), orthogonal to DC
            sub = basis.T @ cov @ basis                      # AC covariance in that basis
            evals, evecs = np.linalg.eigh((sub + sub.T) / 2)
            order = np.argsort(-evals, kind="stable")
            evals = np.clip(evals[order], 0.0, None)
            ac = _fix_signs(basis @ evecs[:, order])         # (D, D-1), columns sum to 0
            kernels = np.vstack([dc[None, :], ac.T])
            var = np.concatenate([[float(dc @ cov @ dc)], evals])
        total = float(var.sum())
        self.mean_ = mean.astype(np.float64)
        self.kernels_ = kernels.astype(np.float64)
        self.variance_ = var.astype(np.float64)
        self.energy_ = var / total if total > 0 else np.full(dim, 1.0 / dim)
        self.ac_energy_ = ac_energy(self.variance_)
        self.bias_ = float(max_norm) if self.bias else 0.0
        self.n_samples_seen_ = int(n)
        self._cache: dict = {}
        return self

    # -- transforms ----------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.kernels_.shape[1]

    def _select(self, n_channels=None, channels=None) -> np.ndarray:
        if channels is not None:
            return np.asarray(channels, dtype=np.int64)
        n = self.kernels_.shape[0] if n_channels is None else int(n_channels)
        return np.arange(n)

    def affine(self, n_channels=None, channels=None, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
        """``(W, c)`` with responses ``x @ W + c`` (W: (D, K), c: (K,)) for the selected channels."""
        sel = self._select(n_channels, channels)
        key = (tuple(sel.tolist()), np.dtype(dtype).str)
        cache = getattr(self, "_cache", None)
        if cache is None:
            cache = self._cache = {}
        if key not in cache:
            k = self.kernels_[sel]
            w = k.T
            c = self.bias_ - k @ self.mean_
            cache[key] = (np.ascontiguousarray(w, dtype=dtype), c.astype(dtype))
        return cache[key]

    def transform(self, x: np.ndarray, n_channels=None, channels=None) -> np.ndarray:
        x = np.asarray(x)
        dtype = np.float64 if x.dtype == np.float64 else np.float32
        w, c = self.affine(n_channels, channels, dtype)
        return x.astype(dtype, copy=False) @ w + c

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """Reconstruct vectors from the responses of the first ``y.shape[-1]`` channels
        (exact when all D channels are given)."""
        y = np.asarray(y, dtype=np.float64)
        k = self.kernels_[: y.shape[-1]]
        return (y - self.bias_) @ k + self.mean_

    def fit_transform(self, x, y=None, n_channels=None):
        return self.fit(x).transform(x, n_channels=n_channels)

    # -- plain-array state -----------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean_, "kernels": self.kernels_, "variance": self.variance_,
                "energy": self.energy_, "bias": np.array(self.bias_),
                "n_samples_seen": np.array(self.n_samples_seen_)}

    @classmethod
    def from_state(cls, state: dict, bias: bool = True) -> "Saab":
        s = cls(bias=bias)
        s.mean_ = np.asarray(state["mean"], dtype=np.float64)
        s.kernels_ = np.asarray(state["kernels"], dtype=np.float64)
        s.variance_ = np.asarray(state["variance"], dtype=np.float64)
        s.energy_ = np.asarray(state["energy"], dtype=np.float64)
        s.ac_energy_ = ac_energy(s.variance_)
        s.bias_ = float(state["bias"])
        s.n_samples_seen_ = int(state["n_samples_seen"])
        s._cache = {}
        return s
