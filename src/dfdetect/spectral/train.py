"""Training and evaluating MST++ (baseline S-MSA and FlexiAttention) on spectral pairs.

Loss and metrics follow the NTIRE 2022 spectral-recovery challenge and the MST++ reference code:
MRAE (mean relative absolute error, the training loss), RMSE, and PSNR on [0, 1]-clipped cubes.
The reference MRAE divides by the ground truth and yields inf/NaN on zero-valued pixels; here
the denominator is clamped to ``eps`` (a parameter) so a dark pixel can never blow the loss up.
Optimiser: Adam (betas 0.9, 0.999) with cosine decay to ``min_lr`` over the run, as the authors.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Iterable

import numpy as np
import torch

from .mst import MSTPlusPlus, build, count_flops, count_parameters

log = logging.getLogger(__name__)


def mrae(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(|pred - target| / max(target, eps)): finite even where target == 0."""
    return ((pred - target).abs() / target.clamp_min(eps)).mean()


def rmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.mean((pred - target) ** 2))


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR of [0, 1]-clipped cubes, averaged over images (as the reference ``Loss_PSNR``)."""
    p, t = pred.clamp(0, 1), target.clamp(0, 1)
    mse = ((p - t) ** 2).flatten(1).mean(1).clamp_min(1e-12)
    return (10 * torch.log10(data_range ** 2 / mse)).mean()


@torch.no_grad()
def evaluate(model: MSTPlusPlus, rgb, cube=None, batch_size: int = 8, eps: float = 1e-3,
             device: str = "cpu") -> dict:
    """MRAE / RMSE / PSNR of ``model`` on (n, 3, H, W) -> (n, 31, H, W) pairs (per-image mean);
    ``rgb`` may instead be a pair source (:func:`as_pairs`), read ``batch_size`` scenes at a time.
    Predictions are clipped to [0, 1] as the hyperspectral stage writes them."""
    model.eval()
    pairs = as_pairs(rgb, cube)
    sums = {"mrae": 0.0, "rmse": 0.0, "psnr": 0.0}
    n = len(pairs)
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        got = [pairs[j] for j in range(i, min(n, i + batch_size))]
        x = torch.as_tensor(np.stack([g[0] for g in got])).to(device)
        y = torch.as_tensor(np.stack([g[1] for g in got])).to(device)
        out = model(x).clamp(0, 1)
        for j in range(len(x)):
            sums["mrae"] += float(mrae(out[j:j + 1], y[j:j + 1], eps))
            sums["rmse"] += float(rmse(out[j:j + 1], y[j:j + 1]))
            sums["psnr"] += float(psnr(out[j:j + 1], y[j:j + 1]))
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["images"] = n
    out["seconds"] = time.perf_counter() - t0
    return out


class ArrayPairs:
    """In-memory (rgb (n, 3, H, W), cube (n, 31, H, W)) pairs, indexable like a streamed source."""

    def __init__(self, rgb: np.ndarray, cube: np.ndarray):
        if len(rgb) != len(cube):
            raise ValueError(f"{len(rgb)} RGB images but {len(cube)} cubes")
        self.rgb, self.cube = rgb, cube

    def __len__(self) -> int:
        return len(self.rgb)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rgb[i], self.cube[i]


def as_pairs(rgb, cube=None):
    """An indexable pair source: ``(rgb, cube)`` arrays, or an object with ``__len__`` and
    ``__getitem__(i) -> (rgb (3, H, W), cube (31, H, W))`` (e.g. a streamed ARAD-1K split)."""
    return ArrayPairs(rgb, cube) if cube is not None else rgb


def _pixels(pairs, max_pixels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``max_pixels`` (rgb, spectrum) pixel pairs sampled evenly over the scenes."""
    per = max(1, max_pixels // max(len(pairs), 1))
    xs, ys = [], []
    for i in range(len(pairs)):
        r, c = pairs[i]
        r, c = r.reshape(r.shape[0], -1), c.reshape(c.shape[0], -1)
        idx = rng.choice(r.shape[1], size=min(per, r.shape[1]), replace=False)
        xs.append(r[:, idx].T)
        ys.append(c[:, idx].T)
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)


def fit_linear_map(pairs, max_pixels: int = 200_000, seed: int = 0) -> np.ndarray:
    """Least-squares ``W`` (3, 31) with ``spectrum ~= rgb @ W`` over training pixels."""
    x, y = _pixels(pairs, max_pixels, np.random.default_rng([int(seed), 13]))
    return np.linalg.lstsq(x, y, rcond=None)[0]


def mean_spectrum(pairs) -> np.ndarray:
    """The mean training spectrum (31,)."""
    total, n = 0.0, 0
    for i in range(len(pairs)):
        c = np.asarray(pairs[i][1], dtype=np.float64)
        total = total + c.reshape(c.shape[0], -1).sum(1)
        n += c[0].size
    return total / max(n, 1)


def _score(pred: np.ndarray, target: np.ndarray, eps: float) -> dict:
    p, t = torch.as_tensor(pred[None], dtype=torch.float32), torch.as_tensor(target[None])
    return {"mrae": float(mrae(p, t, eps)), "rmse": float(rmse(p, t)), "psnr": float(psnr(p, t))}


def baselines(train_pairs, heldout_pairs, eps: float = 1e-3, seed: int = 0,
              linear: np.ndarray | None = None) -> dict:
    """Held-out MRAE / RMSE / PSNR of the two trivial reconstructions MST++ must beat: the
    constant mean training spectrum and the least-squares linear RGB -> 31 map."""
    mean = mean_spectrum(train_pairs)
    w = fit_linear_map(train_pairs, seed=seed) if linear is None else linear
    sums = {"mean_spectrum": {"mrae": 0.0, "rmse": 0.0, "psnr": 0.0},
            "linear_map": {"mrae": 0.0, "rmse": 0.0, "psnr": 0.0}}
    n = len(heldout_pairs)
    for i in range(n):
        r, c = heldout_pairs[i]
        const = np.broadcast_to(mean[:, None, None], c.shape).astype(np.float32)
        lin = np.einsum("chw,cb->bhw", r.astype(np.float64), w).astype(np.float32)
        for name, pred in (("mean_spectrum", const), ("linear_map", lin)):
            for k, v in _score(pred, c, eps).items():
                sums[name][k] += v
    return {name: {k: v / max(n, 1) for k, v in d.items()} for name, d in sums.items()}


def init_linear(model: MSTPlusPlus, w: np.ndarray) -> None:
    """Start MST++ as the linear map: ``conv_in``'s centre taps = ``w`` (3 -> 31, no bias, as
    MST++'s conv_in), its other taps and ``conv_out`` zero, so ``out = conv_in(x)`` exactly
    (the global residual) at step 0; the three stages then learn the non-linear correction."""
    with torch.no_grad():
        model.conv_in.weight.zero_()
        model.conv_in.weight[:, :, 1, 1] = torch.as_tensor(np.asarray(w).T, dtype=torch.float32)
        model.conv_out.weight.zero_()


LOSSES = ("mrae", "l1", "mse")


def loss_fn(name: str, pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    if name == "mrae":
        return mrae(pred, target, eps)
    if name == "l1":
        return (pred - target).abs().mean()
    if name == "mse":
        return ((pred - target) ** 2).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    while True:
        perm = rng.permutation(n)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            yield perm[i:i + batch_size]


def _augment(x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator):
    """The reference augmentation: random 90-degree rotation and flips, same for RGB and cube."""
    k = int(rng.integers(4))
    if k:
        x, y = torch.rot90(x, k, (2, 3)), torch.rot90(y, k, (2, 3))
    if rng.random() < 0.5:
        x, y = x.flip(3), y.flip(3)
    if rng.random() < 0.5:
        x, y = x.flip(2), y.flip(2)
    return x.contiguous(), y.contiguous()


def train(rgb, cube=None, *, attention: str = "smsa", flexi_factor: int = 2,
          steps: int = 200, batch_size: int = 8, lr: float = 4e-4, min_lr: float = 1e-6,
          eps: float = 1e-3, seed: int = 0, crop: int = 0, device: str = "cpu",
          val=None, eval_every: int = 0, logger: Any | None = None, prefix: str = "",
          loss: str = "mrae", init: np.ndarray | None = None) -> tuple[MSTPlusPlus, dict]:
    """Train MST++ for ``steps`` Adam steps; returns (model, history summary).

    ``rgb`` (n, 3, H, W) and ``cube`` (n, 31, H, W) float32, or ``rgb`` a pair source read a
    batch at a time (:func:`as_pairs`; ``val`` likewise); ``crop`` > 0 trains on random
    ``crop`` x ``crop`` patches (the reference trains on 128 x 128 patches of 482 x 512 scenes).
    ``init`` (3, 31): start from that linear map (:func:`init_linear`) instead of from scratch.
    ``loss``: mrae (the authors'), l1 or mse. Deterministic on CPU for a seed.
    """
    torch.manual_seed(int(seed))
    model = build(attention=attention, flexi_factor=flexi_factor).to(device)
    if init is not None:
        init_linear(model, init)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=min_lr)
    rng = np.random.default_rng([int(seed), 11])
    pairs = as_pairs(rgb, cube)
    val_pairs = as_pairs(*val) if isinstance(val, tuple) else val
    n = len(pairs)
    bs = min(batch_size, n)
    history: list[dict] = []
    t0 = time.perf_counter()
    it = _batches(n, bs, rng)
    running = []
    for step in range(1, steps + 1):
        got = [pairs[int(k)] for k in next(it)]
        x, y = torch.as_tensor(np.stack([g[0] for g in got])), torch.as_tensor(np.stack([g[1] for g in got]))
        h, w = x.shape[-2:]
        if crop and crop < min(h, w):
            i, j = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            x, y = x[:, :, i:i + crop, j:j + crop], y[:, :, i:i + crop, j:j + crop]
        x, y = _augment(x, y, rng)
        model.train()
        value = loss_fn(loss, model(x.to(device)), y.to(device), eps)
        if not torch.isfinite(value):
            raise FloatingPointError(f"MST++ ({attention}) loss became {float(value)} at step {step}")
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        sched.step()
        running.append(value.item())
        if logger is not None:
            logger.log_metric(f"{prefix}train/{loss}", running[-1])
        if (eval_every and step % eval_every == 0) or step == steps:
            rec = {"step": step, f"train_{loss}": float(np.mean(running)), "lr": sched.get_last_lr()[0],
                   "seconds": time.perf_counter() - t0}
            running = []
            if val_pairs is not None:
                rec.update({f"val_{k}": v for k, v in evaluate(model, val_pairs, batch_size=bs, eps=eps,
                                                              device=device).items()
                            if k in ("mrae", "rmse", "psnr")})
                if logger is not None:
                    for k in ("val_mrae", "val_rmse", "val_psnr"):
                        logger.log_metric(f"{prefix}{k.replace('_', '/', 1)}", rec[k])
            history.append(rec)
            log.info("MST++ %s step %d/%d: %s", attention, step, steps,
                     ", ".join(f"{k}={v:.4g}" for k, v in rec.items() if isinstance(v, float)))
        if logger is not None:
            logger.next_step()
    model.eval()
    return model, {"history": history, "train_seconds": time.perf_counter() - t0,
                   "parameters": count_parameters(model), "steps": steps, "batch_size": bs,
                   "loss": loss, "init": "linear map" if init is not None else "scratch"}


def describe(model: MSTPlusPlus, size: int = 128) -> dict:
    """Parameters and FLOPs of ``model`` at ``size`` x ``size`` (for metrics files)."""
    fl = count_flops(model, size, size)
    return {"parameters": count_parameters(model), "gflops": round(fl["gflops"], 4),
            "gmacs": round(fl["gmacs"], 4), "flops_input": fl["input"],
            "attention": model.config["attention"]}


def finite(x: float) -> float | None:
    return x if isinstance(x, float) and math.isfinite(x) else None
