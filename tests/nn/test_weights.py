"""Offline weight resolution: the Lite0 package mapping, partial transfers, fallbacks, files."""

from __future__ import annotations

import os
import time

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pytest
import torch

from dfdetect.nn import weights as W

timm = W.import_timm()


def _package_reference(num_classes=1000):
    """timm's efficientnet_lite0 loaded with the package's tensors, paired here by position."""
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes)
    src = torch.load(W.lite0_package_file(), map_location="cpu", weights_only=True)
    ref_keys = list(model.state_dict().keys())
    assert len(ref_keys) == len(src)
    model.load_state_dict(dict(zip(ref_keys, src.values())))
    return model.eval()


def _coffee_batch(size=224):
    import cv2
    from skimage import data

    img = cv2.resize(data.coffee(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    img = (img - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def test_lite0_offline_mapping_gives_timm_logits_and_records_init():
    model, info = W.create_model("efficientnet_lite0", "imagenet", num_classes=1000, seed=0)
    ref = _package_reference()
    x = _coffee_batch()
    with torch.no_grad():
        got, want = model.eval()(x), ref(x)
    assert torch.equal(got, want)
    # the shipped weights really are ImageNet weights: scikit-image's coffee is class 967, espresso
    assert int(want.argmax()) == 967
    assert info["source"] == W.LITE0_PACKAGE
    assert info["tensors_loaded"] == info["tensors_total"] == 247
    assert "imagenet from efficientnet-lite0" in info["init"]
    assert "unavailable offline" in info["hub"]


def test_lite0_one_logit_head_keeps_imagenet_features():
    model, info = W.create_model("efficientnet_lite0", "imagenet", num_classes=1, seed=0)
    assert info["tensors_loaded"] == 245 and info["tensors_total"] == 247  # all but the new head
    ref = _package_reference()
    x = _coffee_batch(96)
    with torch.no_grad():
        assert torch.equal(model.eval().forward_features(x), ref.forward_features(x))
        assert model(x).shape == (1, 1)


def test_b0_partial_transfer_is_counted_and_starts_as_lite0_blocks():
    model, info = W.create_model("efficientnet_b0", "imagenet", num_classes=1, seed=0)
    assert (info["tensors_loaded"], info["tensors_total"]) == (245, 311)
    assert info["se_gates_opened"] == 16
    assert "partial imagenet" in info["init"] and "245/311" in info["init"]
    lite = W.lite0_state_dict()
    sd = model.state_dict()
    assert torch.equal(sd["blocks.3.1.conv_pw.weight"], lite["blocks.3.1.conv_pw.weight"])
    se = model.blocks[1][0].se
    assert torch.all(se.conv_expand.weight == 0) and torch.all(se.conv_expand.bias == 6.0)


def test_resnet50_without_offline_weights_is_random_and_says_so():
    m1, info = W.create_model("resnet50", "imagenet", num_classes=1, seed=3)
    assert info["source"] == "random" and info["tensors_loaded"] == 0
    assert "0/267" in info["init"] and info["init"].startswith("random")
    m2, _ = W.create_model("resnet50", "none", num_classes=1, seed=3)
    # seeded: the fallback initialisation equals the plain random one with the same seed
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_hub_respects_offline_and_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    model, reason = W._try_hub("efficientnet_lite0", "auto", num_classes=1)
    assert model is None and "unavailable offline" in reason
    assert time.perf_counter() - t < 10
    model, reason = W._try_hub("efficientnet_lite0", "false", num_classes=1)
    assert model is None and "disabled" in reason


def test_hub_unreachable_uses_cache_only(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(W, "hub_reachable", lambda timeout=2.0: False)
    t = time.perf_counter()
    model, reason = W._try_hub("efficientnet_lite0", "auto", num_classes=1)
    # the same recorded text as with HF_HUB_OFFLINE: a model's config (a DVC-cached output)
    # must not depend on why the hub was skipped
    assert model is None and reason == ("timm hub weights for efficientnet_lite0 unavailable "
                                        "offline (not in the local cache)")
    assert time.perf_counter() - t < 10
    from huggingface_hub import constants
    assert constants.HF_HUB_OFFLINE is True  # restored to the session's (offline) setting


def test_none_is_seeded_random():
    m1, info = W.create_model("efficientnet_lite0", "none", num_classes=1, seed=5)
    m2, _ = W.create_model("efficientnet_lite0", False, num_classes=1, seed=5)
    assert info["source"] == "random"
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_path_init_loads_by_name_and_shape(tmp_path, suffix):
    src, _ = W.create_model("efficientnet_lite0", "none", num_classes=1, seed=11)
    path = tmp_path / f"w{suffix}"
    state = {f"module.{k}": v.contiguous() for k, v in src.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file(state, str(path))
    else:
        torch.save({"state_dict": state}, path)
    model, info = W.create_model("efficientnet_lite0", str(path), num_classes=1, seed=0)
    assert info["source"] == "file" and info["tensors_loaded"] == info["tensors_total"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), src.state_dict().values()))


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "x": _Payload()}, path)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        W.load_state_dict(path)


def test_unmatched_path_is_an_error(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "other.safetensors"
    save_file({"nothing.here": torch.zeros(3)}, str(path))
    with pytest.raises(ValueError, match="none of its tensors"):
        W.create_model("efficientnet_lite0", str(path), num_classes=1)


def test_stem_is_adapted_for_other_input_channels():
    from timm.models import adapt_input_conv

    model, info = W.create_model("efficientnet_b0", "imagenet", num_classes=1, in_chans=31, seed=0)
    assert (info["tensors_loaded"], info["tensors_total"]) == (245, 311)
    assert "31 input channels" in info["init"] and "conv_stem.weight" in info["stem_adapted"]
    want = adapt_input_conv(31, W.lite0_state_dict()["conv_stem.weight"])
    assert torch.equal(model.conv_stem.weight.detach(), want)


@pytest.mark.parametrize("arch,pretrained,in_chans", [
    ("efficientnet_b0", "imagenet", 3), ("efficientnet_b0", "imagenet", 3 + 28),
    ("efficientnet_lite0", "imagenet", 3), ("resnet50", "none", 3)])
def test_new_one_logit_heads_start_at_zero(arch, pretrained, in_chans):
    model, info = W.create_model(arch, pretrained, num_classes=1, seed=0, in_chans=in_chans)
    head = model.get_classifier()
    assert torch.count_nonzero(head.weight) == 0 and torch.count_nonzero(head.bias) == 0
    assert info["head"].startswith("zero-initialised")
    with torch.no_grad():
        logits = model.eval()(torch.rand(2, in_chans, 64, 64))
    assert torch.equal(logits, torch.zeros(2, 1))


def test_a_head_loaded_from_a_file_is_kept(tmp_path):
    from safetensors.torch import save_file
    src, _ = W.create_model("efficientnet_lite0", "none", num_classes=1, seed=3)
    with torch.no_grad():
        src.get_classifier().weight.fill_(0.25)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model, info = W.create_model("efficientnet_lite0", str(tmp_path / "w.safetensors"), num_classes=1)
    assert "head" not in info and "head_loaded" not in info
    assert torch.equal(model.get_classifier().weight, src.get_classifier().weight)
