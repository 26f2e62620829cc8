"""HyperFake on the shared training recipe: spatial augmentation of cubes (seeded, effective),
RGB-only augmentations refused, balanced sampling, the offline Lite0 stand-in backbone."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.detectors.base import DetectorData, create, get
from dfdetect.detectors.hyperfake import HSIDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_hyperfake import TINY, _write_hsi  # noqa: E402


@pytest.fixture
def data(tmp_path) -> DetectorData:
    return DetectorData(_write_hsi(tmp_path), sources={"hsi": tmp_path / "hsi"}, seed=5)


def test_cube_augmentation_is_seeded_and_changes_the_cube(data):
    items = data.items("hsi", "train")
    plain = HSIDataset(data.source("hsi"), items, seed=2)
    for name in ("resize", "blur"):
        aug = HSIDataset(data.source("hsi"), items, seed=2, augment={name: 1.0})
        again = HSIDataset(data.source("hsi"), items, seed=2, augment={name: 1.0})
        x, y, _ = aug[1]
        assert x.shape == plain[1][0].shape == (31, 16, 16) and x.dtype == torch.float32
        assert torch.equal(x, again[1][0])
        assert (x - plain[1][0]).abs().mean() > 1e-3
    off = HSIDataset(data.source("hsi"), items, seed=2, augment={"resize": 0.0})
    assert torch.equal(off[1][0], plain[1][0])


def test_rgb_augmentations_are_refused():
    with pytest.raises(ValueError, match=r"augment.jpeg = 0.5: unknown key \(known: blur, blur_sigma, resize, resize_scale\)"):
        create("hyperfake", {**TINY, "augment": {"jpeg": 0.5}})


def test_balanced_and_standin(data, tmp_path):
    det = create("hyperfake", {**TINY, "epochs": 1, "pretrained": "imagenet", "hub": "false"})
    summary = det.fit(data)
    assert summary["pos_weight"] is None                      # sampling: balanced
    init = det.init_info()
    assert init["arch"] == "efficientnet_lite0" and init["standin_for"] == "efficientnet_b0"
    assert init["init"].startswith("imagenet stand-in: efficientnet_lite0")
    det.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["backbone"] == "efficientnet_lite0"
    again = get("hyperfake").load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.score(data, "test"), det.score(data, "test"))
