"""ARAD-1K / NTIRE 2022 layout loader, on a tiny fake dataset in the released format."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest

from pathlib import Path

from dfdetect.spectral import arad

REPO_ARAD = Path(__file__).resolve().parents[2] / "data" / "arad"


def _make(root, names, h=10, w=12, spec_dir="Train_spectral"):
    (root / spec_dir).mkdir(parents=True)
    (root / "Train_RGB").mkdir()
    (root / "split_txt").mkdir()
    cubes = {}
    for i, n in enumerate(names):
        cube = np.random.default_rng(i).uniform(0, 1, (31, h, w)).astype(np.float32)
        with h5py.File(root / spec_dir / f"{n}.mat", "w") as f:   # MATLAB v7.3 stores transposed
            f["cube"] = cube.transpose(0, 2, 1)
        rgb = (np.random.default_rng(i).uniform(0, 1, (h, w, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(root / "Train_RGB" / f"{n}.jpg"), rgb[:, :, ::-1])
        cubes[n] = cube
    return cubes


@pytest.mark.parametrize("spec_dir", ["Train_spectral", "Train_Spec"])
def test_load_pairs(tmp_path, spec_dir):
    cubes = _make(tmp_path, ["ARAD_1K_0001", "ARAD_1K_0002", "ARAD_1K_0901"], spec_dir=spec_dir)
    (tmp_path / "split_txt" / "train_list.txt").write_text("ARAD_1K_0001\nARAD_1K_0002\n")
    (tmp_path / "split_txt" / "valid_list.txt").write_text("ARAD_1K_0901\n")
    rgb, cube = arad.load_pairs(tmp_path, "train")
    assert rgb.shape == (2, 3, 10, 12) and cube.shape == (2, 31, 10, 12)
    assert np.array_equal(cube[1], cubes["ARAD_1K_0002"])
    assert rgb.min() == 0.0 and rgb.max() == 1.0
    vr, vc = arad.load_pairs(tmp_path, "valid", size=8)
    assert vc.shape == (1, 31, 8, 8)


def test_missing_files_are_clear(tmp_path):
    _make(tmp_path, ["A"])
    (tmp_path / "split_txt" / "train_list.txt").write_text("B\n")
    with pytest.raises(FileNotFoundError, match="B.mat"):
        arad.load_pairs(tmp_path, "train")


def test_the_train_split_is_streamed_not_loaded(tmp_path, monkeypatch):
    from dfdetect.spectral import train

    _make(tmp_path, [f"S{i}" for i in range(6)], h=16, w=16)
    (tmp_path / "split_txt" / "train_list.txt").write_text("\n".join(f"S{i}" for i in range(6)))
    (tmp_path / "split_txt" / "valid_list.txt").write_text("S0\n")
    reads = []
    real = arad.read_cube
    monkeypatch.setattr(arad, "read_cube", lambda p: reads.append(p) or real(p))
    pairs = arad.ARADPairs(tmp_path, "train")
    assert len(pairs) == 6 and reads == []                   # opening reads no cube
    rgb, cube = pairs[4]
    assert rgb.shape == (3, 16, 16) and cube.shape == (31, 16, 16) and len(reads) == 1
    reads.clear()
    model, summary = train.train(pairs, steps=2, batch_size=2, seed=0, attention="smsa", loss="l1")
    assert len(reads) == 4 and summary["steps"] == 2          # one batch of scenes per step
    assert arad.configured_root(REPO_ARAD) is None           # the README-only placeholder
    assert arad.configured_root(tmp_path) == tmp_path


def test_configured_root_rejects_a_folder_that_is_not_arad(tmp_path):
    (tmp_path / "something.mat").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="split list missing"):
        arad.configured_root(tmp_path)
