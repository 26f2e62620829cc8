"""Self-blended images: seeded, the fake differs from its real only inside the (grown) landmark
hull, the source or the target altered; the training table and dataset of ``synthetic_fakes``
(each real served beside its self-blend); the class-balanced sampler."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from dfdetect.faces.align import align_face, transform_points
from dfdetect.nn.data import (BalancedSampler, FaceDataset, landmarks_in_face,
                              with_synthetic)
from dfdetect.nn.sbi import (alter, blend_mask, hull_mask, max_spread, sbi_frames,
                             self_blend, self_blend_pair)
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


def _grown_hull(lm, shape, size):
    return cv2.dilate(hull_mask(lm, shape).astype(np.uint8),
                      np.ones((2 * max_spread(size) + 1,) * 2, np.uint8))


def test_self_blend_pair_differs_only_inside_the_grown_hull_and_is_seeded():
    face = textured(0, 128)
    lm = face_landmarks(64, 64, 40)
    hull = hull_mask(lm, face.shape) > 0
    grown = _grown_hull(lm, face.shape, 128)
    altered_target = 0
    for seed in range(12):
        real, fake, mask = self_blend_pair(face, lm, np.random.default_rng(seed))
        again = self_blend_pair(face, lm, np.random.default_rng(seed))
        for a, b in zip((real, fake, mask), again):
            np.testing.assert_array_equal(a, b)                   # seeded
        changed = (fake != real).any(axis=2)
        assert changed.sum() > 200                                # a real alteration
        assert not changed[mask == 0].any()                       # the fake is its real outside the mask
        assert (mask[grown == 0] == 0).all()                      # the mask stays near the hull
        assert changed[hull].mean() > 0.3                         # and covers the face
        assert 0.0 <= mask.min() and mask.max() <= 1.0
        if not np.array_equal(real, face):                        # the target was the altered copy:
            altered_target += 1                                   # the real shares the alteration
            assert (real != face).any(axis=2)[grown == 0].mean() > 0.5
            np.testing.assert_array_equal(fake[mask == 0], real[mask == 0])
    assert 2 <= altered_target <= 10                              # source or target, 1/2 each
    other = self_blend_pair(face, lm, np.random.default_rng(99))[1]
    assert not np.array_equal(other, self_blend_pair(face, lm, np.random.default_rng(98))[1])
    fake, mask = self_blend(face, lm, np.random.default_rng(3), "source")
    assert not (fake != face).any(axis=2)[mask == 0].any()        # source only: the face outside
    with pytest.raises(ValueError, match="alter_which"):
        self_blend_pair(face, lm, np.random.default_rng(0), "target")


def test_alteration_is_a_downscale_or_a_sharpening():
    face = textured(7, 96)
    lap = lambda x: cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # noqa: E731
    kinds = {"blurred": 0, "sharpened": 0}
    for seed in range(16):
        out = alter(face, np.random.default_rng(seed))
        assert out.shape == face.shape and out.dtype == np.uint8
        kinds["blurred" if lap(out) < 0.8 * lap(face) else "sharpened"] += 1
    assert min(kinds.values()) >= 3, kinds                        # one of the two, both drawn


def test_blend_mask_shrinks_then_softens_the_hull():
    lm = face_landmarks(64, 64, 40)
    hull = hull_mask(lm, (128, 128))
    soft = blend_mask(hull, np.random.default_rng(1))
    assert soft.max() == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < soft[hull > 0].mean() < 1.0                      # soft edges inside the hull
    assert ((soft > 0) & (soft < 1)).sum() > 100
    assert blend_mask(np.zeros((64, 64), np.float32), np.random.default_rng(0)).max() == 0


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
    assert sbi["sbi_pair"].tolist() == [0, 1, 2, 0, 1, 2]           # each real beside its fake
    mixed = with_synthetic(items, "mixed")
    assert len(mixed) == 7 and mixed["y"].sum() == 4 and mixed["synthetic"].sum() == 3
    assert mixed["sbi_pair"].tolist() == [0, 1, -1, 2, 0, 1, 2]     # the dataset's fake: no pair
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
    assert table["sbi_pair"].tolist() == [0, 1, 2, 0, 1, 2]
    ds = FaceDataset(directory, table, seed=6)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    for i in range(3):
        real, y_real, _ = ds[i]
        fake, y, _ = ds[3 + i]
        assert (y_real, y) == (0.0, 1.0)
        lm = landmarks_in_face(lms[i], "face", 96, {"margin": 0.3})
        want_real, want_fake, _ = self_blend_pair(faces[i], lm, np.random.default_rng([6, 0, 1, i]))
        np.testing.assert_array_equal(real, want_real)              # the pair's real (its target)
        np.testing.assert_array_equal(fake, want_fake)              # and its self-blend
        changed = (fake != real).any(axis=2)
        assert changed.sum() > 100
        assert not changed[_grown_hull(lm, faces[i].shape, 96) == 0].any()
        np.testing.assert_array_equal(fake, FaceDataset(directory, table, seed=6)[3 + i][0])
    served = [not np.array_equal(ds[i][0], faces[i]) for i in range(3)]
    assert served == [False, False, True]                           # seed 6: the third altered its target
    plain = FaceDataset(directory, index, seed=6)                   # no synthetic_fakes: stored faces
    np.testing.assert_array_equal(plain[0][0], faces[0])
    with pytest.raises(ValueError, match="sbi_pair"):
        FaceDataset(directory, table.drop(columns="sbi_pair"), seed=6)
    ds.set_epoch(1)                                                 # a new epoch, a new blend
    assert not np.array_equal(ds[3][0], FaceDataset(directory, table, seed=6)[3][0])


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
