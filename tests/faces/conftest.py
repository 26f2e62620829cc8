"""Fixtures for the face tests: scikit-image's astronaut (a real, public-domain face photo)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def face_crop(astronaut) -> np.ndarray:
    """A 220 x 210 crop around the astronaut's face (small: fast to detect)."""
    return np.ascontiguousarray(astronaut[40:260, 120:330])


@pytest.fixture(scope="session")
def tilted_face(face_crop) -> tuple[np.ndarray, np.ndarray]:
    """The face crop rotated 50 degrees (HOG misses it, MTCNN finds it), same size, and the
    2x3 matrix that maps face_crop pixels into it."""
    import cv2

    m = cv2.getRotationMatrix2D((105, 110), 50, 1.0)
    rot = cv2.warpAffine(face_crop, m, (210, 220), borderMode=cv2.BORDER_REFLECT)
    return np.ascontiguousarray(rot), m


def _write_frames_shard(path, videos: dict) -> None:
    from dfdetect.store import ShardWriter

    with ShardWriter(path, stage="sample_frames", params={}) as w:
        for vid, (idx, frames) in videos.items():
            frames = np.stack(frames)
            w.add_video(vid, idx, attrs={"fps": 25.0, "width": frames.shape[2], "height": frames.shape[1]},
                        frame=frames)


@pytest.fixture(scope="session")
def write_frames_shard():
    """``write(path, {video_id: (frame_indices, [frames])})``: a frames shard like sample_frames'."""
    return _write_frames_shard
