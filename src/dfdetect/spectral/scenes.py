"""Physically based synthetic spectral scenes: the offline stand-in for ARAD-1K.

No visible-range hyperspectral image set can be downloaded here, so ``train_mst`` renders its
own: every scene is a radiance cube ``L(x, y, lambda) = s(x, y) * R(x, y, lambda) * E(lambda)``
on the 31 bands 400-700 nm (10 nm) where

- ``R`` mixes measured reflectance spectra shipped by colour-science (BabelColor average
  ColorChecker, 190 rawtoaces training patches, the 99 CIE 2017 colour-fidelity samples) over a
  spatial layout of soft-edged regions (random Voronoi cells and Gaussian blobs, linearly mixed at
  their boundaries) with a fine multiplicative texture;
- ``E`` is one of colour-science's measured CIE illuminants (daylights, A, fluorescents, LEDs);
- ``s`` is smooth shading (a directional gradient times a light fall-off blob);

and the RGB input is what a camera would deliver for ``L`` (``render="camera"``, the default), since
the faces MST++ later reconstructs arrive as sRGB video frames: ``L`` integrated against a real
camera's spectral sensitivities (Nikon D5100, Sigma SD Merrill; NPL measurements) with a random
exposure, shot and read noise, an auto white balance (per-channel gains from the illuminant's
camera response, with a few per cent estimation error), the camera's colour-correction matrix to
linear sRGB (a least-squares fit on the ColorChecker under D65, computed once), the sRGB transfer
curve, 8-bit quantisation and JPEG compression (random quality), then min-max normalised per
image exactly as :func:`dfdetect.spectral.reconstruct.prepare_faces` normalises faces.
``render="linear"`` keeps the old linear-RGB rendering (for comparison). The cube is scaled to a
maximum of 1 as ARAD's radiance cubes are. Reflectances are split (seeded) into disjoint train
and held-out sets so the held-out metrics measure generalisation to unseen materials.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

WAVELENGTHS = np.arange(400, 701, 10)
N_BANDS = len(WAVELENGTHS)  # 31

ILLUMINANTS = ("D50", "D55", "D65", "D75", "A", "FL2", "FL7", "FL11", "LED-B3", "LED-BH1", "LED-V1")
CAMERAS = ("Nikon 5100 (NPL)", "Sigma SDMerill (NPL)")


def _at_bands(wavelengths: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sample spectra (wavelength axis 0) at the 31 band centres (linear interpolation)."""
    values = np.asarray(values, dtype=np.float64)
    wl = np.asarray(wavelengths, dtype=np.float64)
    if values.ndim == 1:
        return np.interp(WAVELENGTHS, wl, values)
    return np.stack([np.interp(WAVELENGTHS, wl, values[:, j]) for j in range(values.shape[1])], 1)


@dataclass(frozen=True)
class SpectralLibrary:
    reflectances: np.ndarray   # (M, 31) in [0, 1]
    sources: tuple[str, ...]   # which set each reflectance came from
    illuminants: np.ndarray    # (I, 31), each scaled to max 1
    illuminant_names: tuple[str, ...]
    cameras: np.ndarray        # (C, 31, 3), each scaled so the green channel sums to 1
    camera_names: tuple[str, ...]
    ccms: np.ndarray | None = None   # (C, 3, 3): white-balanced camera RGB -> linear sRGB (rows)


@functools.lru_cache(maxsize=1)
def library() -> SpectralLibrary:
    """The measured spectra, sampled at 400-700 nm / 10 nm (loaded once per process)."""
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import colour  # noqa: PLC0415
        from colour.characterisation import (  # noqa: PLC0415
            MSDS_CAMERA_SENSITIVITIES, SDS_COLOURCHECKERS, read_training_data_rawtoaces_v1)
        from colour.quality.cfi2017 import load_TCS_CIE2017  # noqa: PLC0415

        refl, src = [], []
        for sd in SDS_COLOURCHECKERS["BabelColor Average"].values():
            refl.append(_at_bands(sd.wavelengths, sd.values))
            src.append("colorchecker")
        raw = read_training_data_rawtoaces_v1()
        refl.extend(_at_bands(raw.wavelengths, raw.values).T)
        src.extend(["rawtoaces"] * raw.values.shape[1])
        tcs = load_TCS_CIE2017(colour.SpectralShape(380, 780, 5))
        refl.extend(_at_bands(tcs.wavelengths, tcs.values).T)
        src.extend(["cie2017"] * tcs.values.shape[1])
        ill = []
        for name in ILLUMINANTS:
            sd = colour.SDS_ILLUMINANTS[name]
            e = _at_bands(sd.wavelengths, sd.values)
            ill.append(e / e.max())
        cams = []
        for name in CAMERAS:
            ms = MSDS_CAMERA_SENSITIVITIES[name]
            c = np.clip(_at_bands(ms.wavelengths, ms.values), 0, None)
            cams.append(c / c[:, 1].sum())
        cmf = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
        cmf = _at_bands(cmf.wavelengths, cmf.values)                                # (31, 3)
        d65 = colour.SDS_ILLUMINANTS["D65"]
        d65 = _at_bands(d65.wavelengths, d65.values)
        checker = np.array(refl[:24])                                              # ColorChecker
        ccms = np.stack([colour_correction_matrix(checker, d65, cam, cmf) for cam in cams])
    return SpectralLibrary(np.clip(np.array(refl), 1e-3, 1.0), tuple(src), np.array(ill),
                           ILLUMINANTS, np.array(cams), CAMERAS, ccms)


#: CIE XYZ -> linear sRGB (IEC 61966-2-1, D65 white)
XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415],
                        [0.0557, -0.2040, 1.0570]])


def colour_correction_matrix(reflectances: np.ndarray, illuminant: np.ndarray, camera: np.ndarray,
                             cmf: np.ndarray) -> np.ndarray:
    """3 x 3 ``M`` with ``srgb_linear ~= wb_camera_rgb @ M`` fitted (least squares) on patches.

    Camera RGB is white-balanced so a perfect white gives (1, 1, 1); the targets are the
    patches' linear sRGB under the same illuminant with its white at Y = 1, as a camera's
    colour-correction matrix is calibrated on a chart."""
    radiance = reflectances * illuminant[None]                                     # (n, 31)
    cam = (radiance @ camera) / (illuminant @ camera)[None]
    xyz = (radiance @ cmf) / (illuminant @ cmf)[1]
    target = xyz @ XYZ_TO_SRGB.T
    return np.linalg.lstsq(cam, target, rcond=None)[0]


def srgb_encode(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on linear values in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def jpeg_roundtrip(rgb8: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (H, W, 3) RGB through an in-memory JPEG at ``quality`` (OpenCV's libjpeg)."""
    import cv2  # noqa: PLC0415

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb8[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def camera_rgb(rng: np.random.Generator, cube: np.ndarray, ill: np.ndarray, cam: np.ndarray,
               ccm: np.ndarray, noise: float = 0.01, jpeg: tuple[int, int] = (70, 95),
               wb_error: float = 0.03, wb: str = "auto", d65: np.ndarray | None = None) -> np.ndarray:
    """What a camera delivers for a radiance ``cube`` (31, H, W): float32 (3, H, W) in [0, 1].

    Sensor response, random exposure, shot + read noise, auto white balance from the
    illuminant's camera response (``wb_error`` relative error per channel), colour correction to
    linear sRGB, the sRGB curve, 8 bits, JPEG at a quality drawn from ``jpeg`` (``(0, 0)``: no
    JPEG), then per-image min-max normalisation as the face pipeline does."""
    raw = np.einsum("bhw,bc->hwc", cube, cam)
    white = (ill if wb == "auto" else d65) @ cam                       # a perfect white's response
    raw = raw / max(float(raw.max()), 1e-8) * rng.uniform(0.6, 1.0)    # exposure
    raw = raw + noise * np.sqrt(np.clip(raw, 0, None)) * rng.normal(size=raw.shape) \
        + 0.2 * noise * rng.normal(size=raw.shape)                     # shot + read noise
    gains = white[1] / white * (1.0 + wb_error * rng.normal(size=3))   # auto white balance
    lin = (raw * gains) @ ccm
    lin = lin / max(float(np.percentile(lin, 99.5)), 1e-8) * rng.uniform(0.8, 1.0)
    rgb8 = np.round(srgb_encode(lin) * 255).astype(np.uint8)
    if jpeg and jpeg[1] > 0:
        rgb8 = jpeg_roundtrip(rgb8, int(rng.integers(jpeg[0], jpeg[1] + 1)))
    x = rgb8.astype(np.float32)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def split_reflectances(seed: int, holdout_fraction: float = 0.2) -> dict[str, np.ndarray]:
    """Disjoint indices into ``library().reflectances`` for the train and held-out scenes."""
    n = len(library().reflectances)
    perm = np.random.default_rng([int(seed), 7]).permutation(n)
    k = max(1, int(round(n * holdout_fraction)))
    return {"heldout": np.sort(perm[:k]), "train": np.sort(perm[k:])}


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Band-limited noise: random Fourier features (smooth, cheap, seeded)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((h, w))
    for _ in range(6):
        f = rng.normal(0, 1.0 / scale, 2)
        out += np.cos(f[0] * yy + f[1] * xx + rng.uniform(0, 2 * np.pi))
    return out / 6


RENDERS = ("camera", "linear")


def render_scene(rng: np.random.Generator, size: int | tuple[int, int], pool: np.ndarray,
                 lib: SpectralLibrary | None = None, noise: float = 0.01,
                 camera: int | None = None, render: str = "camera",
                 jpeg: tuple[int, int] = (70, 95)) -> tuple[np.ndarray, np.ndarray]:
    """One scene: ``rgb`` float32 (3, H, W) in [0, 1] and ``cube`` float32 (31, H, W) in (0, 1].

    ``render="camera"``: the RGB is :func:`camera_rgb` of the cube (sRGB video-like);
    ``"linear"``: the cube's linear camera response with shot noise and 8 bits (the old one)."""
    if render not in RENDERS:
        raise ValueError(f"render must be one of {RENDERS}, got {render!r}")
    lib = lib or library()
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    k = int(rng.integers(3, 9))
    mats = lib.reflectances[rng.choice(pool, size=k, replace=len(pool) < k)]      # (k, 31)
    # soft region memberships: Voronoi cells (softmax of negative distances) and blobs
    cx, cy = rng.uniform(0, w, k), rng.uniform(0, h, k)
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    sharp = rng.uniform(0.02, 0.3) * 64.0 / max(h, w)
    logits = -np.sqrt(d2) * sharp + 0.8 * np.stack([_smooth_noise(rng, h, w, max(h, w) / 6)
                                                     for _ in range(k)])
    if rng.random() < 0.5:  # a few round objects on top
        for j in rng.choice(k, size=min(k, 2), replace=False):
            r = rng.uniform(0.08, 0.25) * min(h, w)
            bx, by = rng.uniform(0, w), rng.uniform(0, h)
            logits[j] += 6.0 / (1.0 + np.exp(((xx - bx) ** 2 + (yy - by) ** 2) ** 0.5 / r * 4 - 4))
    weights = np.exp(logits - logits.max(0, keepdims=True))
    weights /= weights.sum(0, keepdims=True)
    refl = np.einsum("khw,kb->bhw", weights, mats)
    texture = 1.0 + rng.uniform(0.0, 0.08) * _smooth_noise(rng, h, w, rng.uniform(1.0, 3.0))
    # shading: directional gradient times a soft light fall-off
    ang = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(ang) * (xx / w - 0.5) + np.sin(ang) * (yy / h - 0.5))
    lx, ly, lr = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.5, 1.5) * max(h, w)
    shade = (0.75 + rng.uniform(0.1, 0.5) * grad) * np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * lr ** 2))
    shade = np.clip(shade * texture, 0.05, None)
    ill = lib.illuminants[rng.integers(len(lib.illuminants))]
    ill = ill * (1.0 + 0.05 * rng.normal(size=ill.shape)).clip(0.8, 1.2)      # lamp variation
    cube = shade[None] * refl * ill[:, None, None]
    cube = cube / cube.max()
    ci = int(rng.integers(len(lib.cameras))) if camera is None else int(camera)
    cam = lib.cameras[ci]                                                         # (31, 3)
    if render == "camera":
        rgb = camera_rgb(rng, cube, ill, cam, lib.ccms[ci], noise=noise, jpeg=jpeg)
        return rgb, np.clip(cube, 1e-4, 1).astype(np.float32)
    rgb = np.einsum("bhw,bc->chw", cube, cam)
    rgb = rgb / max(rgb.max(), 1e-8)
    rgb = rgb + noise * np.sqrt(np.clip(rgb, 0, None)) * rng.normal(size=rgb.shape)
    rgb = np.round(np.clip(rgb, 0, 1) * 255) / 255                               # 8-bit
    rgb = (rgb - rgb.min()) / max(rgb.max() - rgb.min(), 1e-8)                   # as the reference loader
    return rgb.astype(np.float32), np.clip(cube, 1e-4, 1).astype(np.float32)


def make_scenes(n: int, size: int, seed: int, split: str = "train",
                holdout_fraction: float = 0.2, noise: float = 0.01, render: str = "camera",
                jpeg: tuple[int, int] = (70, 95)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes of one split: rgb (n, 3, S, S), cube (n, 31, S, S), float32, deterministic."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    lib = library()
    pool = split_reflectances(seed, holdout_fraction)[split]
    rng = np.random.default_rng([int(seed), 0 if split == "train" else 1])
    rgbs, cubes = zip(*(render_scene(rng, size, pool, lib, noise, render=render, jpeg=jpeg)
                        for _ in range(n)))
    return np.stack(rgbs), np.stack(cubes)
