"""Real-world-video augmentations: seeded, deterministic, each changes the image; off = identity."""

from __future__ import annotations

import numpy as np
import pytest

from dfdetect.detectors.base import create
from dfdetect.nn.augment import NAMES, Augment
from dfdetect.nn.data import FaceTransform


def _face(seed: int = 0, size: int = 96) -> np.ndarray:
    """A smooth colour image with some texture (JPEG and blur have something to change)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([120 + 80 * np.sin(6 * xx + c) * np.cos(5 * yy - c) for c in (0.0, 1.0, 2.0)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", NAMES)
def test_each_augmentation_is_seeded_and_changes_the_image(name):
    aug = Augment({name: 1.0})
    img = _face()
    a = aug(img, np.random.default_rng([7, 0, 3]))
    b = aug(img, np.random.default_rng([7, 0, 3]))
    assert a.shape == img.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)                       # same seed, same bytes
    assert np.abs(a.astype(int) - img).mean() > 0.5           # it does something
    others = [aug(img, np.random.default_rng([7, 0, k])) for k in range(4, 8)]
    assert any(not np.array_equal(a, o) for o in others)     # the strength is drawn per item


def test_off_is_todays_behaviour():
    img = _face()
    assert Augment({}).active is False
    assert Augment({})(img, np.random.default_rng(0)) is img
    # FaceTransform without augment: the same tensor as a FaceTransform built the old way
    old = FaceTransform(64, hflip=0.5)
    new = FaceTransform(64, hflip=0.5, augment={n: 0.0 for n in NAMES})
    for k in range(3):
        np.testing.assert_array_equal(old(img, np.random.default_rng(k)).numpy(),
                                      new(img, np.random.default_rng(k)).numpy())
    on = FaceTransform(64, augment={"jpeg": 1.0})
    assert not np.array_equal(on(img, np.random.default_rng(0)).numpy(),
                              old(img, np.random.default_rng(0)).numpy())


def test_probability_decides_how_often():
    aug = Augment({"jpeg": 0.3})
    img = _face()
    changed = sum(not np.array_equal(aug(img, np.random.default_rng(k)), img) for k in range(200))
    assert 40 <= changed <= 80


def test_bad_augment_params_are_refused():
    with pytest.raises(ValueError, match="probability"):
        Augment({"jpeg": 1.5})
    with pytest.raises(ValueError, match="unknown keys"):
        Augment({"jpg": 0.5})
    with pytest.raises(ValueError, match="must not exceed"):
        Augment({"jpeg_quality": [90, 30]})
    with pytest.raises(ValueError, match="augment.jpeg"):
        create("resnet50", {"augment": {"jpeg": 2.0}})
    with pytest.raises(ValueError, match="augment.jpeg_quality"):
        create("efficientnet_b0", {"augment": {"jpeg_quality": [0, 200]}})
    with pytest.raises(ValueError, match="did you mean"):
        create("resnet50", {"augment": {"jpg": 0.5}})
