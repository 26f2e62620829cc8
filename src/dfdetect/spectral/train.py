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
def evaluate(model: MSTPlusPlus, rgb: np.ndarray | torch.Tensor, cube: np.ndarray | torch.Tensor,
             batch_size: int = 8, eps: float = 1e-3, device: str = "cpu") -> dict:
    """MRAE / RMSE / PSNR of ``model`` on (n, 3, H, W) -> (n, 31, H, W) pairs (per-image mean)."""
    model.eval()
    rgb_t, cube_t = torch.as_tensor(rgb), torch.as_tensor(cube)
    sums = {"mrae": 0.0, "rmse": 0.0, "psnr": 0.0}
    n = len(rgb_t)
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        x = rgb_t[i:i + batch_size].to(device)
        y = cube_t[i:i + batch_size].to(device)
        out = model(x)
        for j in range(len(x)):
            sums["mrae"] += float(mrae(out[j:j + 1], y[j:j + 1], eps))
            sums["rmse"] += float(rmse(out[j:j + 1], y[j:j + 1]))
            sums["psnr"] += float(psnr(out[j:j + 1], y[j:j + 1]))
    out = {k: v / max(n, 1) for k, v in sums.items()}
    out["images"] = n
    out["seconds"] = time.perf_counter() - t0
    return out


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


def train(rgb: np.ndarray, cube: np.ndarray, *, attention: str = "smsa", flexi_factor: int = 2,
          steps: int = 200, batch_size: int = 8, lr: float = 4e-4, min_lr: float = 1e-6,
          eps: float = 1e-3, seed: int = 0, crop: int = 0, device: str = "cpu",
          val: tuple[np.ndarray, np.ndarray] | None = None, eval_every: int = 0,
          logger: Any | None = None, prefix: str = "") -> tuple[MSTPlusPlus, dict]:
    """Train MST++ from scratch for ``steps`` Adam steps; returns (model, history summary).

    ``rgb`` (n, 3, H, W) and ``cube`` (n, 31, H, W) float32; ``crop`` > 0 trains on random
    ``crop`` x ``crop`` patches (the reference trains on 128 x 128 patches of 482 x 512 scenes).
    Deterministic on CPU for a seed (seeded init, batches and augmentation).
    """
    torch.manual_seed(int(seed))
    model = build(attention=attention, flexi_factor=flexi_factor).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=min_lr)
    rng = np.random.default_rng([int(seed), 11])
    rgb_t, cube_t = torch.as_tensor(rgb), torch.as_tensor(cube)
    n, _, h, w = rgb_t.shape
    bs = min(batch_size, n)
    history: list[dict] = []
    t0 = time.perf_counter()
    it = _batches(n, bs, rng)
    running = []
    for step in range(1, steps + 1):
        idx = torch.as_tensor(next(it))
        x, y = rgb_t[idx], cube_t[idx]
        if crop and crop < min(h, w):
            i, j = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
            x, y = x[:, :, i:i + crop, j:j + crop], y[:, :, i:i + crop, j:j + crop]
        x, y = _augment(x, y, rng)
        model.train()
        loss = mrae(model(x.to(device)), y.to(device), eps)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"MST++ ({attention}) loss became {float(loss)} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if logger is not None:
            logger.log_metric(f"{prefix}train/mrae", running[-1])
        if (eval_every and step % eval_every == 0) or step == steps:
            rec = {"step": step, "train_mrae": float(np.mean(running)), "lr": sched.get_last_lr()[0],
                   "seconds": time.perf_counter() - t0}
            running = []
            if val is not None:
                rec.update({f"val_{k}": v for k, v in evaluate(model, *val, batch_size=bs, eps=eps,
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
                   "parameters": count_parameters(model), "steps": steps, "batch_size": bs}


def describe(model: MSTPlusPlus, size: int = 128) -> dict:
    """Parameters and FLOPs of ``model`` at ``size`` x ``size`` (for metrics files)."""
    fl = count_flops(model, size, size)
    return {"parameters": count_parameters(model), "gflops": round(fl["gflops"], 4),
            "gmacs": round(fl["gmacs"], 4), "flops_input": fl["input"],
            "attention": model.config["attention"]}


def finite(x: float) -> float | None:
    return x if isinstance(x, float) and math.isfinite(x) else None
