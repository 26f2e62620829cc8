"""Metric-learning losses shared by the DADA branches (and any other embedding model).

Distances (``distance``):

- ``"cosine"``: ``d(x, y) = 1 - cos(x, y)`` (in [0, 2]); the similarity is ``phi = 1 - d``.
- ``"sqeuclidean"``: ``d(x, y) = ||x - y||^2`` (dada.txt §3.1: "squared Euclidean distance").

Triplet loss (dada.txt Eq. 1): ``L = [d(a, p) - d(a, n) + margin]_+``.

AdaTriplet (dada.txt Eq. 2, from Nguyen, Nguyen & Tiulpin 2022, arXiv:2205.02849): with cosine
similarities ``phi``, ``L = [phi_an - phi_ap + eps]_+ + lambda_n [phi_an - beta]_+``. The second
term is the soft constraint on the anchor-negative angle; in distances (``d = 1 - phi``) it is
``[(1 - beta) - d_an]_+``: a negative pair closer than ``lambda' = 1 - beta`` is pushed apart
(dada.txt writes it as ``[d_an + lambda']_+``, which only reads right in similarities).
``AutoMargin`` updates ``eps`` and ``beta`` from the statistics of the previous epoch (or batch):
``eps = max(0, mean(Delta) / K_Delta)`` with ``Delta = phi_ap - phi_an`` over all triplets, and
``beta = 1 - (1 - mean(phi_an)) / K_an`` over the (unique) anchor-negative pairs; AdaTriplet's
defaults are ``K_Delta = K_an = 2`` and ``lambda_n = 1``. Triplets with ``Delta <= eps`` and
negative pairs with ``phi_an >= beta`` are the ones mined (the others have zero loss).

``MarginSchedule`` is DADA's three-stage schedule (§3.2): ``lambda_0`` for the first epochs,
then AdaTriplet with the automatic margin, then the final adaptive margin ``lambda_f`` fixed.

Mining helpers build (anchor, positive, negative) index triplets of a labelled batch:
``all`` (every valid triplet), ``hard`` (``d_an <= d_ap``), ``semihard``
(``d_ap < d_an < d_ap + margin``), ``batch_hard`` (per anchor, the farthest positive and the
closest negative; Hermans et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "sqeuclidean")
MINING = ("all", "hard", "semihard", "batch_hard")


def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")


def distance(x: torch.Tensor, y: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Row-wise distance of two (n, d) tensors."""
    _check_distance(kind)
    if kind == "cosine":
        return 1.0 - F.cosine_similarity(x, y, dim=-1, eps=1e-8)
    return ((x - y) ** 2).sum(dim=-1)


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None, kind: str = "cosine") -> torch.Tensor:
    """(n, m) distance matrix between the rows of ``x`` and of ``y`` (default ``x``)."""
    _check_distance(kind)
    y = x if y is None else y
    if kind == "cosine":
        xn = F.normalize(x, dim=-1, eps=1e-8)
        yn = F.normalize(y, dim=-1, eps=1e-8)
        return 1.0 - xn @ yn.T
    d = (x * x).sum(-1, keepdim=True) - 2.0 * x @ y.T + (y * y).sum(-1)[None, :]
    return d.clamp_min(0.0)


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return loss
    if loss.numel() == 0:
        return loss.sum()  # 0 with a graph when there is nothing to learn from
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "nonzero":   # mean over the triplets that violate the margin
        nz = (loss > 0).sum()
        return loss.sum() / nz.clamp_min(1)
    raise ValueError(f"unknown reduction {reduction!r} (mean | sum | nonzero | none)")


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2, kind: str = "cosine", reduction: str = "mean") -> torch.Tensor:
    """dada.txt Eq. 1: ``[d(a, p) - d(a, n) + margin]_+`` per triplet, reduced."""
    loss = F.relu(distance(anchor, positive, kind) - distance(anchor, negative, kind) + float(margin))
    return _reduce(loss, reduction)


def ada_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                     eps: float, beta: float, lambda_n: float = 1.0,
                     reduction: str = "mean") -> torch.Tensor:
    """AdaTriplet (dada.txt Eq. 2) with cosine similarities:
    ``[phi_an - phi_ap + eps]_+ + lambda_n [phi_an - beta]_+`` per triplet, reduced."""
    phi_ap = F.cosine_similarity(anchor, positive, dim=-1, eps=1e-8)
    phi_an = F.cosine_similarity(anchor, negative, dim=-1, eps=1e-8)
    loss = F.relu(phi_an - phi_ap + float(eps)) + float(lambda_n) * F.relu(phi_an - float(beta))
    return _reduce(loss, reduction)


# ----------------------------------------------------------------------------- mining
def valid_triplets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every (a, p, n) of a batch with ``labels[a] == labels[p]``, ``a != p``,
    ``labels[n] != labels[a]`` (row-major order)."""
    labels = labels.reshape(-1)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
    pos = same & ~eye
    neg = ~same
    mask = pos[:, :, None] & neg[:, None, :]
    a, p, n = torch.nonzero(mask, as_tuple=True)
    return a, p, n


def mine_triplets(embeddings: torch.Tensor, labels: torch.Tensor, mining: str = "semihard",
                  margin: float = 0.2, kind: str = "cosine") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index triplets of a labelled batch chosen by ``mining`` (see module docstring).

    ``semihard`` falls back to every valid triplet when none is semi-hard, so that a batch
    always yields something to learn from while any valid triplet exists.
    """
    if mining not in MINING:
        raise ValueError(f"unknown mining {mining!r}; choose one of {', '.join(MINING)}")
    with torch.no_grad():
        dist = pairwise_distance(embeddings.detach(), kind=kind)
    labels = labels.reshape(-1)
    if mining == "batch_hard":
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(labels.numel(), dtype=torch.bool, device=labels.device)
        pos, neg = same & ~eye, ~same
        ok = pos.any(1) & neg.any(1)
        a = torch.nonzero(ok, as_tuple=True)[0]
        p = dist.masked_fill(~pos, float("-inf")).argmax(1)[a]
        n = dist.masked_fill(~neg, float("inf")).argmin(1)[a]
        return a, p, n
    a, p, n = valid_triplets(labels)
    if mining == "all" or a.numel() == 0:
        return a, p, n
    d_ap, d_an = dist[a, p], dist[a, n]
    if mining == "hard":
        keep = d_an <= d_ap
    else:
        keep = (d_an > d_ap) & (d_an < d_ap + float(margin))
        if not keep.any():
            return a, p, n
    return a[keep], p[keep], n[keep]


def pk_batches(labels, classes_per_batch: int, per_class: int, seed: int, epoch: int = 0) -> list[list[int]]:
    """Indices grouped into P x K batches (``classes_per_batch`` labels, ``per_class`` items
    each, drawn without replacement inside a class while it lasts), seeded per epoch.

    Every item appears at most once per epoch; classes with a single item can only be
    negatives, so they are drawn in with the others. The last incomplete batch is kept when
    it holds two labels.
    """
    import numpy as np  # noqa: PLC0415

    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), int(epoch)])
    pools = {c: list(rng.permutation(np.nonzero(labels == c)[0])) for c in np.unique(labels)}
    batches: list[list[int]] = []
    while True:
        live = [c for c, pool in pools.items() if pool]
        if len(live) < 2:
            break
        order = rng.permutation(len(live))
        chosen = [live[i] for i in order[:max(2, int(classes_per_batch))]]
        batch: list[int] = []
        for c in chosen:
            take, pools[c] = pools[c][:per_class], pools[c][per_class:]
            batch.extend(int(i) for i in take)
        batches.append(batch)
    return batches


# ----------------------------------------------------------------------------- AutoMargin
@dataclass
class AutoMargin:
    """AdaTriplet's automatic margins: ``eps = max(0, mean(Delta)/k_delta)`` and
    ``beta = 1 - (1 - mean(phi_an))/k_an``, from statistics gathered since the last
    :meth:`step` (one epoch, or one batch with ``per_batch`` updates)."""

    eps: float = 0.0
    beta: float = 0.0
    k_delta: float = 2.0
    k_an: float = 2.0
    _deltas: list = field(default_factory=list, repr=False)
    _phi_an: list = field(default_factory=list, repr=False)

    def observe(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                a_idx: torch.Tensor | None = None, n_idx: torch.Tensor | None = None) -> None:
        """Record ``Delta = phi_ap - phi_an`` of every triplet and ``phi_an`` of each unique
        anchor-negative pair (pairs identified by ``(a_idx, n_idx)`` when given)."""
        with torch.no_grad():
            phi_ap = F.cosine_similarity(anchor, positive, dim=-1, eps=1e-8)
            phi_an = F.cosine_similarity(anchor, negative, dim=-1, eps=1e-8)
            self._deltas.append((phi_ap - phi_an).detach().cpu().double())
            if a_idx is not None and n_idx is not None and a_idx.numel():
                lo, hi = torch.minimum(a_idx, n_idx), torch.maximum(a_idx, n_idx)
                key = lo * (int(max(int(hi.max()), int(lo.max()))) + 1) + hi
                _, first = _unique_first(key)
                phi_an = phi_an[first]
            self._phi_an.append(phi_an.detach().cpu().double())

    def step(self) -> tuple[float, float]:
        """Update ``eps`` and ``beta`` from what was observed, forget it, return them."""
        if self._deltas:
            deltas = torch.cat(self._deltas)
            if deltas.numel():
                self.eps = max(0.0, float(deltas.mean()) / float(self.k_delta))
        if self._phi_an:
            phi = torch.cat(self._phi_an)
            if phi.numel():
                self.beta = 1.0 - (1.0 - float(phi.mean())) / float(self.k_an)
        self._deltas, self._phi_an = [], []
        return self.eps, self.beta


def _unique_first(key: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique values of ``key`` and the index of the first occurrence of each."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    pos = torch.arange(key.numel(), device=key.device)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
    first = first.scatter_reduce(0, inverse, pos, reduce="amin")
    return uniq, first


@dataclass
class MarginSchedule:
    """DADA's three-stage margin schedule (dada.txt §3.2).

    Epochs ``[0, fixed_epochs)``: triplet loss with ``lambda_0``; then ``ada_epochs`` of
    AdaTriplet whose ``eps``/``beta`` are updated by :class:`AutoMargin` (starting from
    ``lambda_0`` and ``beta_0``); then ``final_epochs`` of triplet loss with
    ``lambda_f`` = the last adaptive ``eps``.
    """

    lambda_0: float = 0.2
    fixed_epochs: int = 2
    ada_epochs: int = 2
    final_epochs: int = 2
    beta_0: float = 0.0
    k_delta: float = 2.0
    k_an: float = 2.0
    lambda_n: float = 1.0
    auto: AutoMargin = field(init=False)
    lambda_f: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.auto = AutoMargin(eps=float(self.lambda_0), beta=float(self.beta_0),
                               k_delta=self.k_delta, k_an=self.k_an)

    @property
    def epochs(self) -> int:
        return int(self.fixed_epochs) + int(self.ada_epochs) + int(self.final_epochs)

    def stage(self, epoch: int) -> str:
        if epoch < self.fixed_epochs:
            return "fixed"
        if epoch < self.fixed_epochs + self.ada_epochs:
            return "ada"
        return "final"

    def margin(self, epoch: int) -> float:
        st = self.stage(epoch)
        if st == "fixed":
            return float(self.lambda_0)
        if st == "ada":
            return float(self.auto.eps)
        if self.lambda_f is None:
            self.lambda_f = float(self.auto.eps)
        return float(self.lambda_f)

    def loss(self, epoch: int, anchor, positive, negative, reduction: str = "mean") -> torch.Tensor:
        """The loss of ``epoch``'s stage (cosine distance throughout, as in §3.2)."""
        if self.stage(epoch) == "ada":
            return ada_triplet_loss(anchor, positive, negative, self.auto.eps, self.auto.beta,
                                    self.lambda_n, reduction)
        return triplet_loss(anchor, positive, negative, self.margin(epoch), "cosine", reduction)

    def end_epoch(self, epoch: int) -> None:
        """Update the automatic margins after every epoch that observed statistics (the
        epoch before the adaptive stage, to start it from data, and each adaptive epoch)."""
        nxt = self.stage(epoch + 1) if epoch + 1 < self.epochs else "done"
        if nxt == "ada" or self.stage(epoch) == "ada":
            self.auto.step()
        else:
            self.auto._deltas, self.auto._phi_an = [], []

    def state(self) -> dict:
        return {"lambda_0": float(self.lambda_0), "eps": float(self.auto.eps),
                "beta": float(self.auto.beta),
                "lambda_f": None if self.lambda_f is None else float(self.lambda_f)}


# ----------------------------------------------------------------------------- hypersphere
def hypersphere_loss(d: torch.Tensor, y: torch.Tensor, r_in: float, r_out: float) -> torch.Tensor:
    """The hypersphere loss of two_branch.txt Eq. 2 on distances to the (fixed) centre.

    ``L = mean_{real} [d - r_in]_+ + mean_{fake} [r_out - d]_+``: real items (``y = 0``) are
    pulled inside radius ``r_in``, fakes (``y = 1``) pushed outside ``r_out``; each term is
    normalised by its own class count and a batch without one class drops that term (a batch
    with neither, i.e. empty, gives 0). Requires ``0 <= r_in < r_out``.
    """
    r_in, r_out = float(r_in), float(r_out)
    if not (0.0 <= r_in < r_out):
        raise ValueError(f"hypersphere_loss: need 0 <= r_in < r_out, got r_in={r_in}, r_out={r_out}")
    d = d.reshape(-1)
    fake = y.reshape(-1).to(d.device) > 0.5
    loss = d.sum() * 0.0                      # keeps the graph (and the dtype) for empty terms
    if (~fake).any():
        loss = loss + F.relu(d[~fake] - r_in).mean()
    if fake.any():
        loss = loss + F.relu(r_out - d[fake]).mean()
    return loss
