"""make_demo's ``sbi`` method: self-blended fake videos of each real clip, labelled, seeded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfdetect.data.demo import build as demo_build

CFG = {"identities": 3, "clips": 1, "fps": 25, "seconds": 0.2, "size": 96, "qualities": ["c40"],
       "methods": ["sbi"], "lfw": [1, 2], "preset": "ultrafast"}


def _first_frame(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    ok, bgr = cap.read()
    cap.release()
    assert ok, path
    return bgr.astype(np.int16)


def test_sbi_method_makes_labelled_self_blends(tmp_path):
    meta = demo_build.build(tmp_path / "a", CFG, seed=4, executor="serial", progress=False)
    labels = demo_build.load_labels(tmp_path / "a")
    fakes = labels[labels["label"] == "fake"]
    reals = labels[labels["label"] == "real"]
    assert len(fakes) == len(reals) == 3 and set(fakes["method"]) == {"sbi"}
    assert (fakes["source_id"].fillna("") == "").all()            # one person: no partner
    assert "`sbi` = self-blended images" in (tmp_path / "a" / "README.md").read_text()
    for _, f in fakes.iterrows():
        real = reals[(reals["identity"] == f["identity"]) & (reals["clip"] == f["clip"])].iloc[0]
        diff = np.abs(_first_frame(tmp_path / "a" / f["path"]) - _first_frame(tmp_path / "a" / real["path"]))
        changed = diff.max(axis=2) > 24
        assert changed.mean() > 0.005                                # the face was blended
        border = np.ones_like(changed)
        border[12:-12, 12:-12] = False
        assert changed[border].mean() < 0.02                         # the frame's edges were not
    # seeded: the clip's blend is sbi_frames with the generator of (seed, "sbi:<identity>:<clip>")
    assert meta["params"]["methods"] == ["sbi"]
