import numpy as np
import pytest

from dfdetect.faces.align import (PATCH_GROUPS, TEMPLATE_112, align_face, align_matrix,
                                  defakehop_align, eyes_level_matrix, five_points, template,
                                  transform_points, warp)
from dfdetect.faces.landmarks import LEFT_EYE, MOUTH, RIGHT_EYE, detect_landmarks


@pytest.fixture(scope="module")
def landmarks(astronaut):
    return detect_landmarks(astronaut, upsample=1)[0][1]


def test_template_margin_shrinks_about_the_centre():
    t0 = template(112, 0.0)
    np.testing.assert_allclose(t0, TEMPLATE_112)
    t = template(224, 0.3)
    centre = np.array([112.0, 112.0])
    np.testing.assert_allclose(t - centre, (TEMPLATE_112 * 2 - centre) / 1.3)


def test_aligned_face_puts_the_points_on_the_template(astronaut, landmarks):
    face, m = align_face(astronaut, landmarks, 224, 0.3)
    assert face.shape == (224, 224, 3) and face.dtype == np.uint8
    pts = transform_points(m, five_points(landmarks))
    res = np.linalg.norm(pts - template(224, 0.3), axis=1)
    # a least-squares fit of a real (broadly smiling) face: eyes within 6 px of the template,
    # mouth corners within 12 px (her smile is wider than the template's mouth)
    assert res[:2].max() < 6 and res.max() < 12
    # and it is the least-squares optimum: nudging scale, angle or shift makes it worse
    sse = (res ** 2).sum()
    for d in ([[1.01, 0, 0], [0, 1.01, 0]], [[1, -0.01, 0], [0.01, 1, 0]], [[1, 0, 1], [0, 1, 0]]):
        d = np.vstack([np.array(d, float), [0, 0, 1]])
        m2 = (d @ np.vstack([m, [0, 0, 1]]))[:2]
        assert ((transform_points(m2, five_points(landmarks)) - template(224, 0.3)) ** 2).sum() > sse
    lm = transform_points(m, landmarks)
    assert abs(lm[RIGHT_EYE].mean(0)[1] - lm[LEFT_EYE].mean(0)[1]) < 2.0  # nearly level
    assert face.std() > 20  # real content, not the zero border


def test_defakehop_eyes_are_level_and_patches_centred(astronaut, landmarks):
    face128, patches, m = defakehop_align(astronaut, landmarks, 128, 32)
    assert face128.shape == (128, 128, 3) and face128.dtype == np.uint8
    assert patches.shape == (3, 32, 32, 3) and patches.dtype == np.uint8
    lm = transform_points(m, landmarks)
    right_eye, left_eye = lm[RIGHT_EYE].mean(0), lm[LEFT_EYE].mean(0)
    assert abs(right_eye[1] - left_eye[1]) < 1.0          # eyes horizontal (within 1 px)
    assert right_eye[0] < 64 < left_eye[0]                # subject's right eye on the image left
    assert np.all((lm >= -8) & (lm <= 136))               # the whole face is in the 128 frame
    assert [name for name, _ in PATCH_GROUPS] == ["left_eye", "right_eye", "mouth"]
    for (name, group), patch in zip(PATCH_GROUPS, patches):
        # the patch is the 128 frame shifted so that the group's centre is the patch centre
        c = lm[group].mean(0)
        mp = m.copy()
        mp[:, 2] -= c - 15.5
        np.testing.assert_allclose(transform_points(mp, landmarks)[group].mean(0), [15.5, 15.5], atol=1e-9)
        # and its pixels are the 128 face's pixels around that centre (interpolated separately)
        x0, y0 = int(round(c[0] - 15.5)), int(round(c[1] - 15.5))
        crop = face128[y0:y0 + 32, x0:x0 + 32].astype(float)
        assert crop.shape == patch.shape, name
        assert np.abs(crop - patch).mean() < 12, name
    # the mouth patch is below the eye patches
    assert lm[MOUTH].mean(0)[1] > right_eye[1] + 20


def test_eyes_level_even_for_a_tilted_face(astronaut, landmarks):
    import cv2

    rot = cv2.getRotationMatrix2D((256, 256), 20, 1.0)
    tilted = cv2.warpAffine(astronaut, rot, (512, 512))
    lm = transform_points(rot, landmarks)
    m = eyes_level_matrix(lm, 128)
    out = transform_points(m, lm)
    assert abs(out[RIGHT_EYE].mean(0)[1] - out[LEFT_EYE].mean(0)[1]) < 1e-6
    # same face, same place, whatever the tilt
    np.testing.assert_allclose(out, transform_points(eyes_level_matrix(landmarks, 128), landmarks), atol=1e-6)
    face, _, _ = defakehop_align(tilted, lm)
    ref, _, _ = defakehop_align(astronaut, landmarks)
    assert np.abs(face.astype(float) - ref).mean() < 12


def test_downscaling_warp_is_antialiased():
    """Shrinking a fine checkerboard 8x gives its mean grey, not aliased stripes."""
    board = ((np.indices((800, 800)).sum(0) % 2) * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=2)
    m = np.array([[0.125, 0, 0], [0, 0.125, 0]])
    out = warp(rgb, m, 96)
    assert abs(out[5:90, 5:90].mean() - 127.5) < 3 and out[5:90, 5:90].std() < 3


def test_similarity_alignment_is_deterministic(astronaut, landmarks):
    a, _ = align_face(astronaut, landmarks)
    b, _ = align_face(astronaut.copy(), landmarks.copy())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(align_matrix(landmarks, 224, 0.3)[:, :2], align_face(astronaut, landmarks)[1][:, :2])
