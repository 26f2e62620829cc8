"""Import-time compatibility for the CPU-only install.

PyPI's torchvision release that accepts the pinned CPU torch is a CUDA build whose compiled
extension fails to load beside it: ``import torchvision`` then raises
``RuntimeError: operator torchvision::nms does not exist`` (and ``import timm`` fails with it).
:func:`ensure_torchvision` registers a pure-torch ``torchvision::nms`` operator when, and only
when, torchvision's own extension did not load, which makes transforms, ``ops.nms`` /
``batched_nms``, timm and facenet-pytorch's MTCNN work. On a machine where torchvision's
extension loads (CUDA installs), nothing is changed.
"""

from __future__ import annotations

import importlib
import sys

_done = False


def _nms_reference(boxes, scores, iou_threshold: float):
    import torch  # noqa: PLC0415

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    order = scores.argsort(descending=True, stable=True)
    keep = []
    suppressed = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        xx1 = torch.maximum(x1[i], x1)
        yy1 = torch.maximum(y1[i], y1)
        xx2 = torch.minimum(x2[i], x2)
        yy2 = torch.minimum(y2[i], y2)
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[i] + areas - inter).clamp(min=1e-12)
        suppressed |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def _qnms_unavailable(dets, scores, iou_threshold: float):
    raise NotImplementedError("quantized nms needs torchvision's compiled extension")


def ensure_torchvision():
    """Import torchvision, registering a fallback ``torchvision::nms`` if its extension is absent."""
    global _done
    if "torchvision" in sys.modules and _done:
        return sys.modules["torchvision"]
    import torch  # noqa: PLC0415

    try:
        torch.ops.torchvision.nms  # noqa: B018  (already registered by the real extension)
        have = True
    except (AttributeError, RuntimeError):
        have = False
    if not have:
        try:
            lib = torch.library.Library("torchvision", "DEF")
            lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.impl("nms", _nms_reference, "CompositeExplicitAutograd")
            # torchvision registers a fake kernel for qnms unconditionally: define the schema
            lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            lib.impl("qnms", _qnms_unavailable, "CompositeExplicitAutograd")
            # keep the Library object alive for the life of the process
            ensure_torchvision._lib = lib  # type: ignore[attr-defined]
        except RuntimeError:
            pass  # defined concurrently / already defined
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    tv = importlib.import_module("torchvision")
    if not have:
        # torchvision.ops.nms asserts that the compiled extension loaded; our operator stands
        # in for that one op only (other compiled ops still raise their own clear error)
        boxes = importlib.import_module("torchvision.ops.boxes")
        boxes._assert_has_ops = lambda: None
    _done = True
    return tv
