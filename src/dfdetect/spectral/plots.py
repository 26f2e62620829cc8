"""Figures of HyperFake: spectral bands of real vs fake faces (paper Fig. 3) and band weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .mst import WAVELENGTHS_NM


def pick_examples(items: pd.DataFrame, n: int = 2, seed: int = 0) -> pd.DataFrame:
    """Up to ``n`` real and ``n`` fake items (first frame of distinct videos, seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    for y in (0, 1):
        vids = items.loc[items["y"] == y, "video_id"].drop_duplicates().to_numpy()
        for vid in rng.permutation(vids)[:n]:
            out.append(items[items["video_id"] == vid].iloc[0])
    return pd.DataFrame(out).reset_index(drop=True)


def bands_figure(path: str | Path, cubes: list[np.ndarray], labels: list[str],
                 rgbs: list[np.ndarray | None] | None = None, bands=(8, 16, 31)) -> None:
    """One row per face: the RGB face (when given) and bands ``bands`` (1-based, as the paper)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from ..store import atomic_path  # noqa: PLC0415

    cols = len(bands) + 1
    fig, axes = plt.subplots(len(cubes), cols, figsize=(2.2 * cols, 2.2 * len(cubes)), squeeze=False)
    for r, cube in enumerate(cubes):
        rgb = rgbs[r] if rgbs else None
        ax = axes[r, 0]
        if rgb is not None:
            ax.imshow(rgb)
        else:  # a pseudo-colour rendering of the cube (bands 25, 15, 5)
            pc = np.stack([cube[24], cube[14], cube[4]], -1)
            ax.imshow(np.clip(pc / max(pc.max(), 1e-6), 0, 1))
        ax.set_title(labels[r], fontsize=8)
        lo, hi = np.percentile(cube, [1, 99])
        for c, b in enumerate(bands, start=1):
            axes[r, c].imshow(cube[b - 1], cmap="gray", vmin=lo, vmax=hi)
            axes[r, c].set_title(f"band {b} ({WAVELENGTHS_NM[b - 1]} nm)", fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def band_weights_table(alpha: np.ndarray) -> pd.DataFrame:
    """alpha (channels, 31) -> long table band, wavelength, alpha_c<k> (for dvc plots)."""
    df = pd.DataFrame({"band": np.arange(1, alpha.shape[1] + 1), "wavelength_nm": WAVELENGTHS_NM})
    for c in range(alpha.shape[0]):
        df[f"alpha_c{c}"] = alpha[c]
    return df


def band_weights_figure(path: str | Path, alpha_prior: np.ndarray, alpha_mean: np.ndarray | None) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    from ..store import atomic_path  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2 if alpha_mean is not None else 1, figsize=(10, 3), squeeze=False)
    for ax, (a, title) in zip(axes[0], [(alpha_prior, "learned prior softmax(w)"),
                                        (alpha_mean, "mean alpha over test faces")]):
        if a is None:
            continue
        for c, colour in zip(range(a.shape[0]), ("tab:red", "tab:green", "tab:blue", "k", "gray")):
            ax.plot(WAVELENGTHS_NM, a[c], marker=".", color=colour, label=f"output channel {c}")
        ax.set_xlabel("wavelength (nm)")
        ax.set_ylabel("alpha_i (Eq. 3)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
