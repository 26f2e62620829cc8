"""Issue 11: DefakeHop frames whose patches reach outside the video frame are dropped (as the
authors drop them) and recorded, from the stored landmarks and frame size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dfdetect.faces.align import defakehop_align
from dfdetect.faces.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE
from dfdetect.saab import features as F
from dfdetect.store import ShardReader, ShardWriter, Store, shard_path


def face_landmarks(cx: float, cy: float, scale: float = 1.0, tilt: float = 0.0) -> np.ndarray:
    """68 points of a frontal face centred at (cx, cy): the eye, nose-tip and mouth points the
    DefakeHop alignment uses, the rest on a jaw arc (unused)."""
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 7)[:-1]
    lm[RIGHT_EYE] = np.c_[-30 + 8 * np.cos(t), 3 * np.sin(t)]      # image-left eye
    lm[LEFT_EYE] = np.c_[30 + 8 * np.cos(t), 3 * np.sin(t)]
    lm[30] = (0, 28)
    tm = np.linspace(0, 2 * np.pi, 21)[:-1]
    lm[MOUTH] = np.c_[22 * np.cos(tm + np.pi), 52 + 7 * np.sin(tm)]   # 48 left corner, 54 right
    jaw = np.linspace(-0.2, np.pi + 0.2, 17)
    lm[:17] = np.c_[60 * np.cos(jaw + np.pi), 40 * np.sin(jaw) + 10]
    c, s = np.cos(tilt), np.sin(tilt)
    return (lm @ np.array([[c, s], [-s, c]]) * scale + (cx, cy)).astype(np.float32)


@pytest.mark.parametrize("cx,cy,tilt", [(100, 80, 0.0), (18, 80, 0.0), (180, 150, 0.3),
                                        (100, 170, -0.2), (100, 8, 0.0)])
def test_outside_fraction_is_the_zero_filled_share(cx, cy, tilt):
    """The fraction recomputed from the landmarks is the share of each patch that
    defakehop_align fills from outside the frame (white frame: dark pixels are border)."""
    w, h = 200, 190
    lm = face_landmarks(cx, cy, tilt=tilt)
    _, patches, _ = defakehop_align(np.full((h, w, 3), 255, np.uint8), lm, 128, 32)
    dark = (patches[..., 0] < 127.5).reshape(3, -1).mean(axis=1)
    frac = F.patch_outside_fraction(lm[None], w, h, 128, 32)[0]
    np.testing.assert_allclose(frac, dark, atol=0.02)
    assert frac.any() == ((cx, cy) != (100, 80))                   # only the centred face is inside


def _faces_store(root, frame: np.ndarray):
    """Two train videos: 'a' with its middle frame's face half out of the frame, 'b' with every
    frame out; 'c' (test) inside."""
    h, w = frame.shape[:2]
    centres = {"real/a.mp4": [(256, 240), (20, 240), (250, 236)],
               "fake/b.mp4": [(12, 200), (500, 200)],
               "real/c.mp4": [(240, 250), (246, 246)]}
    with ShardWriter(shard_path(root / "faces", 0), stage="align_faces",
                     params={"defakehop_size": 128, "patch_size": 32}) as wr:
        for vid, cs in centres.items():
            lms = np.stack([face_landmarks(x, y, scale=1.6) for x, y in cs])
            patches = np.stack([defakehop_align(frame, lm, 128, 32)[1] for lm in lms])
            wr.add_video(vid, np.arange(len(cs)) * 6, attrs={"fps": 25.0, "width": w, "height": h},
                         patches=patches, landmarks=lms)
    return pd.DataFrame({"video_id": list(centres), "label": ["real", "fake", "real"],
                         "split": ["train", "train", "test"], "identity": ["p", "q", "r"],
                         "source_id": ["", "p", ""]})


def test_saab_features_drop_and_record_out_of_frame_frames(tmp_path):
    from skimage import data

    frame = np.ascontiguousarray(data.astronaut())                       # 512 x 512
    manifest = _faces_store(tmp_path, frame)
    cfg = {"regions": list(F.PATCH_REGIONS), "num_hops": 2, "max_channels": 4, "fit_max_images": 100}
    info = F.fit(tmp_path / "faces", manifest, tmp_path / "msaab", cfg, 0, executor="serial")
    assert info["train_frames"] == 2                                      # a's frames 0 and 12 only
    model = F.load_models(tmp_path / "msaab", ["mouth"])["mouth"]
    assert model.hops[0].units[0].n_samples_seen_ == 2 * 30 * 30
    failures, _ = F.transform_store(tmp_path / "faces", tmp_path / "saab", tmp_path / "msaab", cfg,
                                    executor="serial")
    rows = pd.DataFrame(failures.rows)
    a = rows[rows["video_id"] == "real/a.mp4"]
    assert list(a["frame_index"]) == [6] and "patch outside the frame" in a["reason"].iloc[0]
    assert "right_eye" in a["reason"].iloc[0]                             # the image-left eye
    b = rows[rows["video_id"] == "fake/b.mp4"]
    assert sorted(b["frame_index"]) == [-1, 0, 6]                        # both frames, and the video
    store = Store(tmp_path / "saab")
    idx = store.index()
    assert sorted(idx["video_id"].unique()) == ["real/a.mp4", "real/c.mp4"]
    assert list(idx.loc[idx["video_id"] == "real/a.mp4", "frame_index"]) == [0, 12]
    reader = ShardReader(shard_path(tmp_path / "saab", 0))
    assert int(reader.video_attrs("real/a.mp4")["dropped_outside_frame"]) == 1
    assert int(reader.attrs["frames_dropped_outside_frame"]) == 3
    assert json.loads(reader.attrs["videos_dropped_outside_frame"]) == {"fake/b.mp4": 2}
    reader.close()
    from dfdetect.detectors.defakehop import dropped_outside_frame

    assert dropped_outside_frame(tmp_path / "saab", manifest) == {
        "test": {"frames": 0, "videos_emptied": 0}, "train": {"frames": 3, "videos_emptied": 1}}
