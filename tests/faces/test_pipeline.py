import numpy as np
import pytest

from dfdetect.faces import detect as D
from dfdetect.faces.align import transform_points
from dfdetect.faces.landmarks import LEFT_EYE, RIGHT_EYE
from dfdetect.faces.pipeline import (AlignConfig, align_frame, align_frames, align_video_task,
                                     downscale, find_face)


def test_record_of_a_real_face(astronaut):
    rec = align_frame(astronaut, AlignConfig())
    assert rec["detector"] == "hog"
    assert rec["box"].shape == (4,) and rec["box"].dtype == np.float32
    assert rec["landmarks"].shape == (68, 2) and rec["landmarks"].dtype == np.float32
    assert rec["face"].shape == (224, 224, 3) and rec["face128"].shape == (128, 128, 3)
    assert rec["patches"].shape == (3, 32, 32, 3)
    x0, y0, x1, y1 = rec["box"]
    lm = rec["landmarks"]
    # landmarks of the face inside (about) its box, in full-frame pixels
    assert x0 - 10 < lm[:, 0].min() and lm[:, 0].max() < x1 + 10 and y0 - 10 < lm[:, 1].mean() < y1


def test_detection_on_a_downscaled_frame_gives_full_resolution_results(astronaut):
    """Detect at 256 px (a 2x downscale), landmarks at full resolution: same face, close
    landmarks as detecting at full resolution."""
    full = align_frame(astronaut, AlignConfig(detect_max_side=0))
    down = align_frame(astronaut, AlignConfig(detect_max_side=256))
    small, f = downscale(astronaut, 256)
    assert small.shape == (256, 256, 3) and f == 0.5
    io = np.linalg.norm(full["landmarks"][36] - full["landmarks"][45])
    assert np.linalg.norm(full["landmarks"] - down["landmarks"], axis=1).mean() / io < 0.05
    assert np.abs(full["box"] - down["box"]).max() < 0.2 * (full["box"][2] - full["box"][0])


def test_largest_face_is_kept(face_crop):
    import cv2

    large = cv2.resize(face_crop, (315, 330), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((360, 560, 3), 90, np.uint8)
    canvas[10:230, 10:220] = face_crop     # a face of about 86 px (left)
    canvas[20:350, 240:555] = large        # the same face 1.5x larger (right)
    assert len(D.detect(canvas, "hog", upsample=1)) == 2
    face, _ = find_face(canvas, AlignConfig(upsample=1, detect_max_side=0))
    assert face.box[0] > 240  # the large one


def test_mtcnn_fallback_when_hog_misses(tilted_face, face_crop):
    frame, m = tilted_face
    assert D.detect(frame, "hog", upsample=1) == []
    rec = align_frame(frame, AlignConfig())
    assert rec is not None and rec["detector"] == "mtcnn"
    # landmarks of the tilted face agree with the upright face's landmarks rotated in
    upright = align_frame(face_crop, AlignConfig())["landmarks"]
    truth = transform_points(m, upright)
    io = np.linalg.norm(truth[36] - truth[45])
    assert np.linalg.norm(rec["landmarks"] - truth, axis=1).mean() / io < 0.06
    # and the DefakeHop face is upright again: eyes level in its frame
    from dfdetect.faces.align import eyes_level_matrix

    lm = transform_points(eyes_level_matrix(rec["landmarks"], 128), rec["landmarks"])
    assert abs(lm[RIGHT_EYE].mean(0)[1] - lm[LEFT_EYE].mean(0)[1]) < 1.0
    assert align_frame(frame, AlignConfig(fallback="")) is None


def test_fallback_recorded_when_hog_returns_nothing(monkeypatch, face_crop):
    monkeypatch.setitem(D._FUNCS, "hog", lambda rgb, upsample=1: [])
    rec = align_frame(face_crop, AlignConfig())
    assert rec["detector"] == "mtcnn"


def test_no_face_frames_are_recorded_not_fatal(face_crop):
    blank = np.zeros_like(face_crop)
    out = align_frames([face_crop, blank, face_crop], [0, 5, 9], AlignConfig())
    assert out["frame_index"].tolist() == [0, 9]
    assert out["misses"] == [(5, "no face found by hog nor mtcnn")]
    assert out["face"].shape == (2, 224, 224, 3) and out["detector"].tolist() == ["hog", "hog"]
    none = align_frames([blank], [3], AlignConfig(fallback=""))
    assert none["frame_index"].size == 0 and none["face"].shape == (0, 224, 224, 3)
    assert none["misses"] == [(3, "no face found by hog")]


def test_bad_frame_and_bad_config_raise_clear_errors(face_crop):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        align_frame(face_crop[..., 0], AlignConfig())
    with pytest.raises(ValueError, match="unknown face detector"):
        AlignConfig(detector="haar")


def test_worker_reads_its_video_from_the_shard(tmp_path, face_crop, write_frames_shard):
    path = tmp_path / "shard-0.h5"
    write_frames_shard(path, {"a/b.mp4": ([2, 4], [face_crop, face_crop[::-1].copy()])})
    out = align_video_task((str(path), "a/b.mp4", AlignConfig().to_dict()))
    assert out["frames"] == 2 and out["attrs"]["fps"] == 25.0
    assert out["frame_index"].tolist() == [2]  # the upside-down face is not found
    assert out["misses"] == [(4, "no face found by hog nor mtcnn")]
