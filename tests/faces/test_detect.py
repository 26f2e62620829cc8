import numpy as np
import pytest

from dfdetect.faces import detect as D
from dfdetect.faces.landmarks import detect_landmarks, predict_landmarks


def test_hog_finds_the_astronaut(astronaut):
    faces = D.detect(astronaut, "hog", upsample=1)
    assert faces and faces[0].detector == "hog"
    x0, y0, x1, y1 = faces[0].box
    # her face is around (220, 125) in the 512 x 512 photo
    assert x0 < 220 < x1 and y0 < 125 < y1
    assert 60 < x1 - x0 < 140
    assert faces == D.largest_first(faces)


def test_blank_image_has_no_face():
    blank = np.full((120, 160, 3), 127, np.uint8)
    for name in D.DETECTORS:
        assert D.detect(blank, name, upsample=0) == []


def test_mtcnn_gives_boxes_and_five_points(face_crop):
    faces = D.detect(face_crop, "mtcnn")
    assert len(faces) >= 1
    f = faces[0]
    assert f.detector == "mtcnn" and f.points5.shape == (5, 2) and f.score > 0.9
    le, re, nose, ml, mr = f.points5
    assert le[0] < nose[0] < re[0] and le[1] < nose[1] < ml[1]


def test_cnn_detector_finds_the_face(face_crop):
    import cv2

    small = cv2.resize(face_crop, (105, 110), interpolation=cv2.INTER_AREA)
    faces = D.detect(small, "cnn", upsample=1)
    assert faces and faces[0].detector == "cnn"
    hog = D.detect(small, "hog", upsample=1)[0]
    box = D.landmark_box(faces[0])
    # the MMOD box mapped to a HOG-shaped one lands near the HOG box (within 20% of its side)
    assert np.abs(box - hog.box).max() < 0.2 * (hog.box[2] - hog.box[0])


def test_unknown_detector_is_rejected(face_crop):
    with pytest.raises(ValueError, match="unknown face detector"):
        D.detect(face_crop, "viola-jones")


def test_mtcnn_box_gives_the_same_landmarks_as_hog(face_crop):
    """The calibrated 5-point template turns an MTCNN detection into a HOG-like box: the 68
    landmarks predicted from it match those predicted from HOG's own box."""
    from dfdetect.faces.pipeline import face_landmarks

    hog = D.detect(face_crop, "hog", upsample=1)[0]
    mt = D.detect(face_crop, "mtcnn")[0]
    box = D.landmark_box(mt)
    side = hog.box[2] - hog.box[0]
    assert np.abs(box - hog.box).max() < 0.25 * side
    a, b = face_landmarks(face_crop, hog), face_landmarks(face_crop, mt)
    inter_ocular = np.linalg.norm(a[36] - a[45])
    assert np.linalg.norm(a - b, axis=1).mean() / inter_ocular < 0.05


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (7, 2))
    ang, s, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = D.similarity_fit(src, dst)
    np.testing.assert_allclose(m[:, :2], s * rot, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-8)


def test_lead_landmark_helpers_still_work(face_crop):
    found = detect_landmarks(face_crop, upsample=1)
    assert found
    box, lm = found[0]
    assert box.shape == (4,) and lm.shape == (68, 2) and lm.dtype == np.float32
    np.testing.assert_array_equal(predict_landmarks(face_crop, box), lm)
