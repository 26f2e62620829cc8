"""Self-blended images: seeded, change only inside the (dilated) landmark hull, labelled fake;
the training table and dataset of ``synthetic_fakes``; the class-balanced sampler."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from dfdetect.faces.align import align_face, transform_points
from dfdetect.nn.data import (BalancedSampler, FaceDataset, landmarks_in_face,
                              with_synthetic)
from dfdetect.nn.sbi import hull_mask, max_spread, sbi_frames, self_blend
from dfdetect.store import ShardWriter, Store


def face_landmarks(cx: float, cy: float, s: float) -> np.ndarray:
    """A plausible 68-point layout (jaw, brows, nose, eyes, mouth) centred at (cx, cy), scale s."""
    pts = np.zeros((68, 2))
    t = np.linspace(-1.2, 1.2, 17)
    pts[0:17] = np.c_[np.sin(t) * 0.9, np.cos(t) * 1.0]                  # jaw
    pts[17:22] = np.c_[np.linspace(-0.75, -0.15, 5), np.full(5, -0.55)]  # brows
    pts[22:27] = np.c_[np.linspace(0.15, 0.75, 5), np.full(5, -0.55)]
    pts[27:31] = np.c_[np.zeros(4), np.linspace(-0.4, 0.05, 4)]          # nose bridge, tip 30
    pts[31:36] = np.c_[np.linspace(-0.2, 0.2, 5), np.full(5, 0.15)]
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    pts[36:42] = np.c_[-0.4 + 0.15 * np.cos(ang), -0.35 + 0.06 * np.sin(ang)]  # eyes
    pts[42:48] = np.c_[0.4 + 0.15 * np.cos(ang), -0.35 + 0.06 * np.sin(ang)]
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    pts[48:60] = np.c_[0.3 * np.cos(ang + np.pi), 0.5 + 0.1 * np.sin(ang)]     # mouth, corners 48/54
    inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    pts[60:68] = np.c_[0.2 * np.cos(inner + np.pi), 0.5 + 0.05 * np.sin(inner)]
    return pts * s + np.array([cx, cy])


def textured(seed: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.uniform(40, 220, (6, 6, 3)).astype(np.float32), (size, size),
                     interpolation=cv2.INTER_CUBIC)
    return np.clip(low + rng.normal(0, 6, low.shape), 0, 255).astype(np.uint8)


def synthetic_face(seed: int, size: int, lm: np.ndarray) -> np.ndarray:
    """A frame with a face: smooth background, a skin-coloured hull over the landmarks, dark
    eyes, brows and mouth, and fine sensor noise (the texture a blend blurs or sharpens)."""
    rng = np.random.default_rng(seed)
    img = textured(seed, size).astype(np.float32) * 0.5 + 60
    skin = rng.uniform([150, 100, 80], [230, 180, 150])
    face = cv2.fillConvexPoly(np.zeros((size, size), np.uint8),
                              cv2.convexHull(np.round(lm).astype(np.int32)), 1).astype(bool)
    img[face] = skin + 10 * np.sin(np.arange(size))[None, :, None].repeat(size, 0)[face]
    for part in (slice(36, 42), slice(42, 48), slice(48, 60), slice(17, 22), slice(22, 27)):
        cv2.fillConvexPoly(img, cv2.convexHull(np.round(lm[part]).astype(np.int32)),
                           (40.0, 30.0, 30.0), lineType=cv2.LINE_AA)
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_self_blend_changes_only_inside_the_dilated_hull_and_is_seeded():
    face = textured(0, 128)
    lm = face_landmarks(64, 64, 40)
    out, mask = self_blend(face, lm, np.random.default_rng(5))
    again, mask2 = self_blend(face, lm, np.random.default_rng(5))
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(mask, mask2)
    other, _ = self_blend(face, lm, np.random.default_rng(6))
    assert not np.array_equal(out, other)
    changed = (out != face).any(axis=2)
    assert changed.sum() > 200                                    # a real alteration
    assert not changed[mask == 0].any()                           # nothing outside its mask
    grown = cv2.dilate(hull_mask(lm, face.shape).astype(np.uint8),
                       np.ones((2 * max_spread(128) + 1,) * 2, np.uint8))
    assert (mask[grown == 0] == 0).all()                          # the mask stays near the hull
    assert changed[hull_mask(lm, face.shape) > 0].mean() > 0.3    # and covers the face
    assert mask.max() <= 1.0 and mask.min() >= 0.0


def test_self_blend_refuses_bad_landmarks():
    face = textured(0, 64)
    with pytest.raises(ValueError, match="landmarks"):
        self_blend(face, np.full((68, 2), np.nan), np.random.default_rng(0))
    with pytest.raises(ValueError, match="hull covers"):
        self_blend(face, face_landmarks(500, 500, 10), np.random.default_rng(0))


def test_sbi_frames_keeps_one_setting_per_clip():
    frames = np.stack([textured(1, 96)] * 3)
    lm = np.stack([face_landmarks(48, 48, 30)] * 3)
    out = sbi_frames(frames, lm, np.random.default_rng(2))
    np.testing.assert_array_equal(out[0], out[1])                 # same frame in, same fake out
    assert (out != frames).any()
    again = sbi_frames(frames, lm, np.random.default_rng(2))
    np.testing.assert_array_equal(out, again)


def test_with_synthetic_tables():
    items = pd.DataFrame({"video_id": ["r1", "r1", "f1", "r2"], "frame_index": [0, 1, 0, 0],
                          "y": [0.0, 0.0, 1.0, 0.0], "label": ["real", "real", "fake", "real"]})
    assert with_synthetic(items, "none").equals(items)
    sbi = with_synthetic(items, "sbi")
    assert len(sbi) == 6 and "f1" not in set(sbi["video_id"])
    assert sbi["synthetic"].tolist() == [False] * 3 + [True] * 3
    assert (sbi.loc[sbi["synthetic"], "y"] == 1).all() and (sbi.loc[~sbi["synthetic"], "y"] == 0).all()
    assert (sbi.loc[sbi["synthetic"], "label"] == "fake").all()
    mixed = with_synthetic(items, "mixed")
    assert len(mixed) == 7 and mixed["y"].sum() == 4 and mixed["synthetic"].sum() == 3
    with pytest.raises(ValueError, match="synthetic_fakes"):
        with_synthetic(items, "blend")
    with pytest.raises(ValueError, match="needs real"):
        with_synthetic(items[items["y"] > 0], "sbi")


def test_landmarks_map_into_the_aligned_face():
    frame = textured(3, 240)
    lm = face_landmarks(130, 110, 60)
    face, m = align_face(frame, lm, size=96, margin=0.3)
    got = landmarks_in_face(lm, "face", 96, {"margin": 0.3, "face_size": 96})
    np.testing.assert_allclose(got, transform_points(m, lm), atol=1e-9)
    assert (got > 0).all() and (got < 96).all()


@pytest.fixture
def store(tmp_path):
    """One real video (3 aligned faces with their full-frame landmarks), margin 0.3."""
    faces, lms = [], []
    for k in range(3):
        frame = textured(10 + k, 240)
        lm = face_landmarks(120 + 3 * k, 115, 55).astype(np.float32)
        faces.append(align_face(frame, lm, size=96, margin=0.3)[0])
        lms.append(lm)
    with ShardWriter(tmp_path / "faces" / "shard-0.h5", params={"face_size": 96, "margin": 0.3}) as w:
        w.add_video("real/a.mp4", [0, 5, 9], face=np.stack(faces), landmarks=np.stack(lms))
    index = Store(tmp_path / "faces").index()
    index["y"] = 0.0
    return tmp_path / "faces", index, np.stack(faces), np.stack(lms)


def test_dataset_serves_self_blended_fakes(store):
    directory, index, faces, lms = store
    table = with_synthetic(index, "sbi")
    ds = FaceDataset(directory, table, seed=4)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    for i in range(3):
        np.testing.assert_array_equal(ds[i][0], faces[i])          # reals unchanged
        fake, y, _ = ds[3 + i]
        assert y == 1.0
        changed = (fake != faces[i]).any(axis=2)
        assert changed.sum() > 100
        hull = hull_mask(landmarks_in_face(lms[i], "face", 96, {"margin": 0.3}), faces[i].shape)
        grown = cv2.dilate(hull.astype(np.uint8), np.ones((2 * max_spread(96) + 1,) * 2, np.uint8))
        assert not changed[grown == 0].any()
        np.testing.assert_array_equal(fake, FaceDataset(directory, table, seed=4)[3 + i][0])
    ds.set_epoch(1)                                                 # a new epoch, a new blend
    assert not np.array_equal(ds[3][0], FaceDataset(directory, table, seed=4)[3][0])


def test_balanced_sampler_proportions_and_seeding():
    class DS:
        labels = np.array([1.0] * 10 + [0.0] * 90 + [np.nan] * 5, np.float32)
        epoch = 0

    ds = DS()
    sampler = BalancedSampler(ds, seed=3)
    order = list(sampler)
    assert len(order) == len(sampler) == 100
    y = ds.labels[order]
    assert (y == 1).sum() == 50 and (y == 0).sum() == 50          # equal shares per epoch
    assert np.isfinite(y).all()                                   # unlabelled items never drawn
    assert len(set(i for i in order if ds.labels[i] == 0)) == 50  # majority without replacement
    assert list(BalancedSampler(ds, seed=3)) == order             # seeded
    ds.epoch = 1
    assert list(sampler) != order                                 # reshuffled per epoch
