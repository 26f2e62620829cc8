"""Synthetic spectral scenes: physical ranges, spatial structure, seeding, disjoint held-out split."""

from __future__ import annotations

import numpy as np

from dfdetect.spectral import scenes


def test_library_is_31_bands_of_measured_spectra():
    lib = scenes.library()
    assert lib.reflectances.shape[1] == 31 and len(lib.reflectances) >= 300
    assert {"colorchecker", "rawtoaces", "cie2017"} <= set(lib.sources)
    assert lib.illuminants.shape == (len(scenes.ILLUMINANTS), 31)
    assert lib.cameras.shape == (len(scenes.CAMERAS), 31, 3)
    assert (lib.reflectances > 0).all() and (lib.reflectances <= 1).all()


def test_scenes_are_structured_seeded_and_rendered():
    rgb, cube = scenes.make_scenes(3, 32, seed=5)
    assert rgb.shape == (3, 3, 32, 32) and cube.shape == (3, 31, 32, 32)
    assert rgb.dtype == np.float32 and cube.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1 and cube.min() > 0 and cube.max() <= 1
    # spatially structured: not one spectrum per image
    spectra = cube[0].reshape(31, -1).T
    assert np.linalg.matrix_rank(spectra - spectra.mean(0), tol=1e-3) >= 2
    assert np.std(cube[0].mean(0)) > 0.01
    rgb2, cube2 = scenes.make_scenes(3, 32, seed=5)
    assert np.array_equal(cube, cube2) and np.array_equal(rgb, rgb2)
    assert not np.array_equal(cube, scenes.make_scenes(3, 32, seed=6)[1])


def test_heldout_materials_are_disjoint():
    sp = scenes.split_reflectances(seed=1)
    assert len(np.intersect1d(sp["train"], sp["heldout"])) == 0
    assert len(sp["train"]) + len(sp["heldout"]) == len(scenes.library().reflectances)


def test_camera_rendering_is_srgb_video_like():
    """Faces reach MST++ as sRGB video: the synthetic inputs go through WB, the sRGB curve and
    JPEG (darker tones lifted), not the old linear camera response."""
    cam, cube = scenes.make_scenes(4, 32, seed=2, render="camera")
    lin, cube2 = scenes.make_scenes(4, 32, seed=2, render="linear")
    assert np.array_equal(cube[0], cube2[0])                  # same first scene, other rendering
    assert cam.min() >= 0 and cam.max() <= 1 and cam.dtype == np.float32
    assert np.median(cam) > np.median(lin) + 0.1             # the sRGB transfer curve
    from colour.models import eotf_inverse_sRGB
    v = np.linspace(0, 1, 101)
    assert np.abs(scenes.srgb_encode(v) - eotf_inverse_sRGB(v)).max() < 1e-6   # colour-science's
    # white balance: a grey card under tungsten light comes out (almost) neutral
    lib = scenes.library()
    grey = np.full((31, 8, 8), 0.5)
    ill = lib.illuminants[list(lib.illuminant_names).index("A")]
    raw = np.einsum("bhw,bc->chw", grey * ill[:, None, None], lib.cameras[0])
    assert np.ptp(raw.mean((1, 2)) / raw.mean()) > 0.3       # the raw response is strongly tinted
    x = scenes.camera_rgb(np.random.default_rng(0), np.concatenate([grey, 0.25 * grey], 2) * ill[:, None, None],
                          ill, lib.cameras[0], lib.ccms[0], noise=0.0, jpeg=(0, 0), wb_error=0.0)
    assert x.shape == (3, 8, 16)
    bright = x[:, :, :8].mean((1, 2))
    assert np.ptp(bright) < 0.02                              # neutral after WB + CCM
