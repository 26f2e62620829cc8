"""ARAD-1K (NTIRE 2022 spectral recovery) in its released layout.

::

    <root>/Train_spectral/ARAD_1K_0001.mat ...   31 x 482 x 512 cubes (MATLAB v7.3 = HDF5),
                                                 key 'cube' (h5py sees it as 31 x 512 x 482),
                                                 400-700 nm at 10 nm
    <root>/Train_RGB/ARAD_1K_0001.jpg ...        the matching RGB renderings (482 x 512)
    <root>/split_txt/train_list.txt              scene names, one per line (train: 900)
    <root>/split_txt/valid_list.txt              (validation: 50)

The MST++ reference code calls the cube folder ``Train_Spec``; both names are accepted. As in
that code, a cube is read with h5py and transposed to (31, 482, 512), and the RGB image is read
with OpenCV, converted to RGB and min-max normalised to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECTRAL_DIRS = ("Train_spectral", "Train_Spec", "Valid_spectral", "Valid_Spec")
RGB_DIRS = ("Train_RGB", "Valid_RGB")


def _find(root: Path, names: tuple[str, ...], filename: str) -> Path:
    for d in names:
        p = root / d / filename
        if p.exists():
            return p
    raise FileNotFoundError(f"{root}: {filename} not found in any of {', '.join(names)}")


def read_split(root: str | Path, split: str) -> list[str]:
    """Scene names of the official split (``train`` or ``valid``), without extensions."""
    name = {"train": "train_list.txt", "valid": "valid_list.txt", "val": "valid_list.txt",
            "heldout": "valid_list.txt"}[split]
    path = Path(root) / "split_txt" / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: ARAD-1K split list missing")
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            out.append(Path(line).stem if line.endswith((".mat", ".jpg")) else line)
    return out


def read_cube(path: str | Path) -> np.ndarray:
    """float32 (31, H, W) from an ARAD .mat (HDF5, key 'cube')."""
    import h5py  # noqa: PLC0415

    with h5py.File(path, "r") as f:
        if "cube" not in f:
            raise KeyError(f"{path}: no 'cube' dataset (keys: {list(f)})")
        cube = np.asarray(f["cube"], dtype=np.float32)
    if cube.ndim != 3 or cube.shape[0] != 31:
        raise ValueError(f"{path}: expected a 31-band cube, got shape {cube.shape}")
    return np.ascontiguousarray(cube.transpose(0, 2, 1))


def read_rgb(path: str | Path) -> np.ndarray:
    """float32 (3, H, W) RGB in [0, 1], min-max normalised (the reference loader)."""
    import cv2  # noqa: PLC0415

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot read image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
    rgb = (rgb - rgb.min()) / max(float(rgb.max() - rgb.min()), 1e-8)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))


def load_pairs(root: str | Path, split: str, limit: int = 0, size: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (n, 3, H, W), cube (n, 31, H, W)) of a split; ``limit`` > 0 keeps the first scenes,
    ``size`` > 0 centre-crops each scene to ``size`` x ``size`` (memory)."""
    root = Path(root)
    names = read_split(root, split)
    if limit:
        names = names[: int(limit)]
    rgbs, cubes = [], []
    for name in names:
        cube = read_cube(_find(root, SPECTRAL_DIRS, f"{name}.mat"))
        rgb = read_rgb(_find(root, RGB_DIRS, f"{name}.jpg"))
        if rgb.shape[1:] != cube.shape[1:]:
            raise ValueError(f"{name}: RGB {rgb.shape[1:]} and cube {cube.shape[1:]} differ in size")
        if size:
            h, w = cube.shape[1:]
            i, j = max(0, (h - size) // 2), max(0, (w - size) // 2)
            cube, rgb = cube[:, i:i + size, j:j + size], rgb[:, i:i + size, j:j + size]
        rgbs.append(rgb)
        cubes.append(cube)
    if not names:
        raise ValueError(f"{root}: the {split} list is empty")
    return np.stack(rgbs), np.stack(cubes)
