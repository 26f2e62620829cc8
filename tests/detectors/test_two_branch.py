"""two_branch detector (two_branch.txt): fit/score/save/load, fixed centre, determinism, init."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.data.manifest import normalise
from dfdetect.detectors.base import DetectorData, create, registry
from dfdetect.store import ShardWriter

TINY = {"image_size": 32, "seq_len": 3, "epochs": 1, "batch_size": 2, "eval_batch_size": 4,
        "pretrained": "none", "num_threads": 1, "device": "cpu", "fake_undersample": 1}
VIDEOS = [("real", "train"), ("real", "train"), ("fake", "train"), ("fake", "train"),
          ("real", "val"), ("fake", "val"), ("real", "test"), ("fake", "test")]


def _write_faces(root) -> pd.DataFrame:
    """Eight videos x 4 faces (32 px, 7 frames apart; fakes carry a bright square)."""
    rng = np.random.default_rng(0)
    rows = []
    with ShardWriter(root / "faces" / "shard-0.h5") as w:
        for i, (label, split) in enumerate(VIDEOS):
            vid = f"{label}/{split}-{i}.mp4"
            faces = rng.integers(0, 200, (4, 32, 32, 3), dtype=np.uint8)
            if label == "fake":
                faces[:, 10:22, 10:22] = 255
            w.add_video(vid, [0, 7, 14, 21], face=faces)
            rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{i}",
                         "method": "" if label == "real" else "square"})
    return normalise(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> DetectorData:
    root = tmp_path_factory.mktemp("tb")
    return DetectorData(_write_faces(root), sources={"faces": root / "faces"}, seed=3)


@pytest.fixture(scope="module")
def fitted(data):
    det = create("two_branch", TINY)
    summary = det.fit(data)
    return det, summary


def test_registered():
    reg = registry()
    assert reg["two_branch"].inputs == ("faces",) and reg["two_branch"].paper == "two_branch.txt"
    assert reg["densenet121"].arch == "densenet121"


def test_fit_score_save_load(fitted, data, tmp_path):
    det, summary = fitted
    assert summary["train_videos"] == 4 and summary["windows_per_epoch"] == 4
    assert summary["center_sequences"] == 2          # one disjoint 3-face window per real video
    assert det.init_info()["init"].startswith("random")
    scores = det.score(data, "test")
    assert len(scores) == 8 and scores["score"].between(0, 1).all()
    assert scores["score"].nunique() > 1
    det.save(tmp_path / "m")
    back = type(det).load(tmp_path / "m")
    again = back.score(data, "test")
    assert np.array_equal(scores["score"].to_numpy(), again["score"].to_numpy())
    assert torch.equal(back.model.center, det.model.center)
