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


def configured_root(root: str | Path) -> Path | None:
    """The ARAD-1K root named by ``train_mst.arad_root``, or None for synthetic scenes: ``""`` or
    a folder that holds nothing but a README (the repository's ``data/arad`` placeholder, kept
    so that dvc.yaml can depend on the folder). A folder with anything else in it must be an
    ARAD-1K root (its split lists are checked); a path that does not exist is an error."""
    if not str(root):
        return None
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: train_mst.arad_root is not a folder")
    entries = [p for p in root.iterdir() if p.name not in ("README.md", ".gitignore")]
    if not entries:
        return None
    read_split(root, "train")
    read_split(root, "valid")
    return root


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


class ARADPairs:
    """A split streamed from disk: ``pairs[i]`` reads scene ``i`` (rgb (3, H, W), cube (31, H, W))
    when asked, so training over all 900 scenes (27.5 GB as float32) holds only the current
    batch in memory. Every file is checked to exist when the split is opened (a missing one is
    named then, not hours into training). ``limit`` > 0 keeps the first scenes, ``size`` > 0
    centre-crops each scene to ``size`` x ``size``."""

    def __init__(self, root: str | Path, split: str, limit: int = 0, size: int = 0):
        self.root = Path(root)
        names = read_split(self.root, split)
        if limit:
            names = names[: int(limit)]
        if not names:
            raise ValueError(f"{self.root}: the {split} list is empty")
        self.names, self.size = names, int(size)
        self.files = [(_find(self.root, SPECTRAL_DIRS, f"{n}.mat"), _find(self.root, RGB_DIRS, f"{n}.jpg"))
                      for n in names]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        cube_path, rgb_path = self.files[int(i)]
        cube, rgb = read_cube(cube_path), read_rgb(rgb_path)
        if rgb.shape[1:] != cube.shape[1:]:
            raise ValueError(f"{self.names[int(i)]}: RGB {rgb.shape[1:]} and cube {cube.shape[1:]} "
                             "differ in size")
        if self.size:
            h, w = cube.shape[1:]
            y, x = max(0, (h - self.size) // 2), max(0, (w - self.size) // 2)
            cube, rgb = cube[:, y:y + self.size, x:x + self.size], rgb[:, y:y + self.size, x:x + self.size]
        return np.ascontiguousarray(rgb), np.ascontiguousarray(cube)


def load_pairs(root: str | Path, split: str, limit: int = 0, size: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (n, 3, H, W), cube (n, 31, H, W)) of a split in memory (small subsets only; the
    train_mst stage streams with :class:`ARADPairs`)."""
    pairs = ARADPairs(root, split, limit, size)
    got = [pairs[i] for i in range(len(pairs))]
    return np.stack([g[0] for g in got]), np.stack([g[1] for g in got])
