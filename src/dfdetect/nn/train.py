"""A small, shared training loop for binary (real = 0 / fake = 1) torch classifiers.

Used by the RGB CNN baselines and by the other torch detectors (HyperFake's classifier): give
it a model whose forward returns one logit per item, a train loader, optionally a validation
loader, and :class:`TrainConfig`. It provides

- Adam / AdamW / NAdam (Keras' Nadam settings, metric_learning.txt) with a per-step cosine
  learning-rate decay (HyperFake §IV-F: Adam + cosine), or
  ``scheduler: plateau``: the learning rate divided by ``1 / plateau_factor`` each time the val
  loss has not improved for ``plateau_patience`` epochs, at most ``max_reductions`` times (a
  further plateau stops training; two_branch.txt §4);
- ``BCEWithLogitsLoss`` with ``pos_weight`` (= n_real / n_fake by default) for class imbalance,
  or any ``criterion(out, y) -> loss`` (e.g. the hypersphere loss of two_branch.txt Eq. 2; its
  value is then also the val loss, and ``pos_weight`` is not used);
- optional parameter groups (``param_groups(model) -> list of dicts``, e.g. per-block learning
  rates), in place of one group of every trainable parameter;
- seeding and determinism: on CPU, the same seed, data and thread count give bit-identical
  weights (``torch.use_deterministic_algorithms(True)``, fixed ``torch.set_num_threads``,
  a seeded shuffling generator, per-item augmentation seeds);
- validation loss / AUC / accuracy each epoch, keeping the best epoch's weights (by val AUC,
  ties broken by val loss, or by val loss alone) and early stopping after ``patience`` epochs
  without improvement;
- per-epoch logging (``logging`` and an optional DVCLive ``Live``: ``log_metric`` +
  ``next_step``).

Batches are ``(x, y)`` or ``(x, y, index)``; ``x`` may be a tensor or a tuple/list/dict of
tensors (``forward(model, x)`` maps it to logits; default ``model(x)``).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from ..determinism import torch_threads

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"        # adam | adamw | nadam
    scheduler: str = "cosine"       # cosine | none | plateau
    min_lr_ratio: float = 0.01      # cosine floor as a fraction of lr
    plateau_factor: float = 0.1     # plateau: lr multiplied by this on a val-loss plateau
    plateau_patience: int = 10      # plateau: epochs without val-loss improvement before a cut
    max_reductions: int = 3         # plateau: cuts allowed; a further plateau stops training
    pos_weight: Any = "auto"        # "auto" (n_neg / n_pos of the train labels), a number, or None
    patience: int = 0               # epochs without improvement before stopping (0: never stop)
    monitor: str = "val_auc"        # val_auc | val_loss
    grad_clip: float = 0.0          # max gradient norm (0: off)
    device: str = "cpu"
    seed: int = 0
    num_threads: int = 0            # torch CPU threads during training (0: leave as is)
    deterministic: bool = True

    @classmethod
    def from_params(cls, params: dict, **overrides) -> "TrainConfig":
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in {**params, **overrides}.items() if k in names}
        return cls(**values)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    pos_weight: float | None = None
    lr_reductions: int = 0
    train_seconds: float = 0.0

    def summary(self, timings: bool = True) -> dict:
        out = asdict(self)
        if not timings:
            out.pop("train_seconds")
            out["history"] = [{k: v for k, v in h.items() if not k.endswith("_s")} for h in self.history]
        return out


# ----------------------------------------------------------------------------- helpers
def resolve_device(device: str | None) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else unchanged."""
    import torch  # noqa: PLC0415

    device = str(device or "auto")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def seed_everything(seed: int) -> None:
    import torch  # noqa: PLC0415

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(seed: int, num_threads: int = 0, enabled: bool = True) -> Iterator[None]:
    """Seed torch/numpy/random and make torch deterministic for the duration; restore after."""
    import torch  # noqa: PLC0415

    prev_det = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cudnn_det = torch.backends.cudnn.deterministic
    try:
        if enabled:
            # warn_only: an op without a deterministic kernel (CUDA only) warns instead of failing
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        seed_everything(int(seed))
        with torch_threads(num_threads):
            yield
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_cudnn_det


def pos_weight_from_labels(y) -> float | None:
    """n_negative / n_positive, or None when one class is absent."""
    y = np.asarray(y, dtype=float)
    y = y[np.isfinite(y)]
    pos = float((y > 0.5).sum())
    neg = float(len(y) - pos)
    if pos == 0 or neg == 0:
        return None
    return neg / pos


def make_loader(dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                num_workers: int = 0, drop_last: bool | None = None, device: str = "cpu",
                sampler=None):
    """A DataLoader with a seeded shuffling generator (or ``sampler``, e.g.
    :class:`dfdetect.nn.data.BalancedSampler`, which replaces the shuffling).

    ``drop_last=None`` drops a final batch of one item when shuffling (batch norm cannot train
    on a single item) and keeps everything otherwise.
    """
    import torch  # noqa: PLC0415
    from torch.utils.data import DataLoader  # noqa: PLC0415

    n = len(dataset)
    bs = max(1, int(batch_size))
    if drop_last is None:
        drop_last = bool(shuffle and n > bs and n % bs == 1)
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    workers = max(0, int(num_workers))
    if sampler is not None:
        shuffle = False
    return DataLoader(dataset, batch_size=bs, shuffle=shuffle, generator=gen, sampler=sampler,
                      num_workers=workers, drop_last=drop_last,
                      pin_memory=str(device).startswith("cuda"),
                      persistent_workers=False)


def to_device(x, device):
    import torch  # noqa: PLC0415

    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    return x


def _default_forward(model, x):
    return model(x)


def _logits(out):
    return out.reshape(out.shape[0], -1)[:, 0] if out.ndim > 1 else out


def roc_auc(y, score) -> float:
    """Area under the ROC curve (ties counted half); nan when a class is missing."""
    y = np.asarray(y, dtype=float)
    s = np.asarray(score, dtype=float)
    pos, neg = s[y > 0.5], s[y <= 0.5]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata  # noqa: PLC0415

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def check_param_groups(model, groups) -> list[dict]:
    """``groups`` (dicts with ``params``) after checking that every trainable parameter of
    ``model`` is in exactly one group and no group holds a foreign or frozen parameter."""
    groups = [dict(g) if isinstance(g, dict) else {"params": g} for g in groups]
    trainable = {id(p): n for n, p in model.named_parameters() if p.requires_grad}
    seen: dict[int, int] = {}
    for gi, g in enumerate(groups):
        g["params"] = list(g["params"])
        for p in g["params"]:
            if id(p) not in trainable:
                raise ValueError(f"parameter group {gi} holds a parameter that is not a trainable "
                                 "parameter of the model")
            if id(p) in seen:
                raise ValueError(f"parameter {trainable[id(p)]} is in groups {seen[id(p)]} and {gi}")
            seen[id(p)] = gi
    missing = [n for i, n in trainable.items() if i not in seen]
    if missing:
        raise ValueError(f"{len(missing)} trainable parameters in no group, e.g. {missing[0]}")
    return [g for g in groups if g["params"]]


def _plateau_step(plateau, opt, rec: dict, result: "TrainResult", cfg: "TrainConfig", desc: str) -> bool:
    """Step the plateau scheduler on this epoch's val loss; True when training must stop (a
    reduction beyond ``max_reductions``)."""
    vl = rec.get("val_loss")
    if vl is None or not math.isfinite(float(vl)):
        return False
    before = [float(g["lr"]) for g in opt.param_groups]
    if result.lr_reductions >= int(cfg.max_reductions):
        # would this epoch reduce once more? ask a copy of the scheduler, keep the lr unchanged
        probe = copy.copy(plateau)
        probe.step(float(vl))
        cut = [float(g["lr"]) for g in opt.param_groups] != before
        for g, lr in zip(opt.param_groups, before):
            g["lr"] = lr
        if cut:
            result.stopped_early = True
            log.info("%s: val loss plateau after %d lr reductions: stop", desc, result.lr_reductions)
            return True
        plateau.__dict__.update(probe.__dict__)
        return False
    plateau.step(float(vl))
    if [float(g["lr"]) for g in opt.param_groups] != before:
        result.lr_reductions += 1
        log.info("%s: val loss plateau: lr x %g (reduction %d of %d)", desc, cfg.plateau_factor,
                 result.lr_reductions, int(cfg.max_reductions))
    return False


# ----------------------------------------------------------------------------- loop
@contextlib.contextmanager
def _eval_mode(model):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def predict(model, loader, device: str = "cpu", forward: Callable | None = None):
    """(logits, labels, indices) over a loader, in loader order, as numpy arrays."""
    import torch  # noqa: PLC0415

    forward = forward or _default_forward
    logits, labels, index = [], [], []
    with _eval_mode(model), torch.no_grad():
        for batch in loader:
            x, y = batch[0], batch[1]
            out = _logits(forward(model, to_device(x, device))).float().cpu()
            logits.append(out.numpy())
            labels.append(np.asarray(y, dtype=np.float32))
            if len(batch) > 2:
                index.append(np.asarray(batch[2]))
    cat = (lambda a, dt: np.concatenate(a) if a else np.empty(0, dt))
    return cat(logits, np.float32), cat(labels, np.float32), cat(index, np.int64)


def _better(cur: dict, best: dict | None, monitor: str) -> bool:
    if best is None:
        return True
    if monitor == "val_auc" and math.isfinite(cur.get("val_auc", float("nan"))) \
            and math.isfinite(best.get("val_auc", float("nan"))):
        if cur["val_auc"] != best["val_auc"]:
            return cur["val_auc"] > best["val_auc"]
    return cur["val_loss"] < best["val_loss"]


def _plateau_scheduler(opt, cfg: "TrainConfig"):
    import torch  # noqa: PLC0415

    factor = float(cfg.plateau_factor)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"plateau_factor must lie in (0, 1), got {cfg.plateau_factor!r}")
    if int(cfg.plateau_patience) < 0 or int(cfg.max_reductions) < 0:
        raise ValueError("plateau_patience and max_reductions must be >= 0, got "
                         f"{cfg.plateau_patience!r}, {cfg.max_reductions!r}")
    # threshold 0: any decrease of the val loss counts as an improvement
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=factor, patience=int(cfg.plateau_patience), threshold=0.0,
        min_lr=0.0)


def fit(model, train_loader, val_loader=None, config: TrainConfig | None = None,
        logger: Any | None = None, forward: Callable | None = None,
        train_labels=None, desc: str = "train", criterion: Callable | None = None,
        param_groups: Callable | None = None) -> TrainResult:
    """Train ``model`` in place; on return it holds the best epoch's weights.

    ``train_labels`` (for ``pos_weight="auto"``) defaults to ``train_loader.dataset.labels``.
    The loop runs inside :func:`deterministic` with ``config.seed``.

    ``criterion(out, y) -> scalar loss`` replaces the BCE (``out`` = the model's output reduced
    to one value per item, ``y`` float labels); it is also the val loss, and the reported
    accuracy counts ``out > 0`` as fake. ``param_groups(model)`` returns the optimizer's
    parameter groups (dicts with ``params`` and optionally ``lr``, ...; a group without ``lr``
    gets ``config.lr``); every trainable parameter must be in exactly one group.
    """
    import torch  # noqa: PLC0415

    cfg = config or TrainConfig()
    forward = forward or _default_forward
    device = resolve_device(cfg.device)
    result = TrainResult()

    if criterion is not None:
        pw = None
    elif cfg.pos_weight == "auto":
        labels = train_labels if train_labels is not None else getattr(train_loader.dataset, "labels", None)
        pw = pos_weight_from_labels(labels) if labels is not None else None
    elif cfg.pos_weight in (None, "none", ""):
        pw = None
    else:
        pw = float(cfg.pos_weight)
    result.pos_weight = pw

    t_start = time.perf_counter()
    with deterministic(cfg.seed, cfg.num_threads, enabled=cfg.deterministic):
        model.to(device)
        if criterion is None:
            criterion = torch.nn.BCEWithLogitsLoss(
                pos_weight=None if pw is None else torch.tensor(pw, dtype=torch.float32, device=device))
        params = [p for p in model.parameters() if p.requires_grad]
        groups = params if param_groups is None else check_param_groups(model, param_groups(model))
        opt_name = str(cfg.optimizer).lower()
        if opt_name == "adam":
            opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif opt_name == "adamw":
            opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        elif opt_name == "nadam":   # Keras Nadam(lr, schedule_decay=0.004) (metric_learning.txt §IV-C)
            opt = torch.optim.NAdam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    momentum_decay=0.004, eps=1e-7)
        else:
            raise ValueError(f"optimizer must be adam, adamw or nadam, got {cfg.optimizer!r}")
        steps = max(1, int(cfg.epochs) * max(1, len(train_loader)))
        sched = plateau = None
        sched_name = str(cfg.scheduler).lower()
        if sched_name == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps,
                                                               eta_min=cfg.lr * cfg.min_lr_ratio)
        elif sched_name == "plateau":
            plateau = _plateau_scheduler(opt, cfg)
        elif sched_name not in ("none", ""):
            raise ValueError(f"scheduler must be cosine, plateau or none, got {cfg.scheduler!r}")

        best, best_state, since_best = None, None, 0
        for epoch in range(int(cfg.epochs)):
            t0 = time.perf_counter()
            for loader in (train_loader, val_loader):
                ds = getattr(loader, "dataset", None)
                if hasattr(ds, "set_epoch"):
                    ds.set_epoch(epoch)
            model.train()
            tot_loss, tot_n, correct = 0.0, 0, 0
            for batch in train_loader:
                x, y = to_device(batch[0], device), batch[1].to(device=device, dtype=torch.float32)
                logits = _logits(forward(model, x))
                loss = criterion(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip and cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                if sched is not None:
                    sched.step()
                n = int(y.shape[0])
                tot_loss += float(loss.detach()) * n
                tot_n += n
                correct += int(((logits.detach() > 0).float() == y).sum())
            rec = {"epoch": epoch, "train_loss": tot_loss / max(tot_n, 1),
                   "train_acc": correct / max(tot_n, 1), "lr": float(opt.param_groups[0]["lr"]),
                   "train_items": tot_n}
            t_train = time.perf_counter() - t0
            if val_loader is not None and len(val_loader) > 0:
                lg, yv, _ = predict(model, val_loader, device, forward)
                with torch.no_grad():
                    vl = criterion(torch.from_numpy(lg).to(device), torch.from_numpy(yv).to(device))
                rec.update(val_loss=float(vl), val_auc=roc_auc(yv, lg),
                           val_acc=float(((lg > 0) == (yv > 0.5)).mean()) if len(yv) else float("nan"))
            rec["train_time_s"] = t_train
            rec["epoch_time_s"] = time.perf_counter() - t0
            result.history.append(rec)
            log.info("%s epoch %d/%d: %s (%.1f s, %.1f s training, %.3f s/item)", desc, epoch + 1,
                     int(cfg.epochs), ", ".join(f"{k}={v:.4g}" for k, v in rec.items()
                                                if k.startswith(("train_loss", "val_")) and isinstance(v, float)),
                     rec["epoch_time_s"], t_train, t_train / max(tot_n, 1))
            if logger is not None:
                for k, v in rec.items():
                    if k == "epoch" or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                        continue
                    logger.log_metric(k.replace("_", "/", 1) if k.startswith(("train_", "val_")) else k, v)
                logger.next_step()
            if "val_loss" in rec:
                if _better(rec, best, cfg.monitor):
                    best, since_best = rec, 0
                    best_state = copy.deepcopy(model.state_dict())
                    result.best_epoch = epoch
                else:
                    since_best += 1
                    if cfg.patience and since_best >= int(cfg.patience):
                        result.stopped_early = True
                        log.info("%s: early stop after epoch %d (best epoch %d)", desc, epoch + 1,
                                 result.best_epoch + 1)
                        break
            else:
                result.best_epoch = epoch
            if plateau is not None:
                if _plateau_step(plateau, opt, rec, result, cfg, desc):
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
    result.train_seconds = time.perf_counter() - t_start
    return result
