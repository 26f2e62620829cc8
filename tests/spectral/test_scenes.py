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
