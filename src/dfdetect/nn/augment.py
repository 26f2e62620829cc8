"""Training augmentations that survive real-world video, seeded and deterministic.

Deepfakes met in the wild have been re-encoded, rescaled and colour-graded after they were made,
so a detector trained on one compression level learns the codec, not the manipulation. Each
augmentation below maps a uint8 ``H x W x 3`` RGB face to another of the same shape, drawing
every random choice from the ``numpy.random.Generator`` it is given (the training dataset seeds
it from ``(seed, epoch, item)``), so the same seed gives the same bytes:

- ``resize``: down-scale by a factor in ``resize_scale`` and back up (lost resolution);
- ``blur``: Gaussian blur, sigma in ``blur_sigma`` pixels (defocus, denoising);
- ``color``: brightness, contrast, saturation and hue jitter (colour grading, white balance);
- ``jpeg``: JPEG re-compression at a quality in ``jpeg_quality`` (libjpeg through OpenCV);
- ``video``: H.264-like degradation: JPEG at a quality in ``video_quality`` of a copy
  down-scaled by ``video_scale``, then scaled back up (what a streaming re-encode of a small
  face region does: blocking at a lower resolution, smoothed by the upscale);
- ``hflip`` stays the existing horizontal-flip probability of the detectors.

Each has a probability (``augment.<name>``, 0 = off). With every probability 0 (the default)
:class:`Augment` returns its input unchanged and draws nothing, which is today's behaviour. The
order is fixed: resize, blur, color, jpeg, video (compression last, as in a real pipeline). The
generator draws the same number of values per call whatever is applied, so turning one
augmentation on does not reshuffle the random choices of the others.
"""

from __future__ import annotations

from typing import Any, Mapping

import cv2
import numpy as np

from .. import config as _cfg

#: ``augment`` section of every frame-level detector's params (probabilities 0: off)
DEFAULTS: dict[str, Any] = {
    "resize": 0.0,                 # probability of a down/up-scale
    "resize_scale": [0.5, 1.0],    # scale factor range of the down-scale
    "blur": 0.0,                   # probability of a Gaussian blur
    "blur_sigma": [0.2, 1.5],      # sigma range (pixels of the stored face)
    "color": 0.0,                  # probability of colour jitter
    "brightness": 0.2,             # +- fraction
    "contrast": 0.2,               # +- fraction
    "saturation": 0.2,             # +- fraction
    "hue": 0.03,                   # +- fraction of the hue circle
    "jpeg": 0.0,                   # probability of a JPEG re-compression
    "jpeg_quality": [40, 95],      # quality range
    "video": 0.0,                  # probability of the H.264-like degradation
    "video_scale": [0.4, 0.8],     # down-scale range before the compression
    "video_quality": [30, 80],     # JPEG quality range of the down-scaled copy
}

NAMES = ("resize", "blur", "color", "jpeg", "video")


def _range(lo: float, hi: float, integer: bool = False):
    item = _cfg.Int(ge=int(lo), le=int(hi)) if integer else _cfg.Float(ge=lo, le=hi)
    return _cfg.List(item, length=2)


#: schema overrides (``checks``) of the ``augment`` section, dotted under ``augment.``
CHECKS: dict[str, Any] = {
    **{f"augment.{n}": _cfg.Float(ge=0, le=1) for n in NAMES},
    "augment.resize_scale": _range(0.05, 1.0), "augment.blur_sigma": _range(0.0, 20.0),
    "augment.brightness": _cfg.Float(ge=0, le=1), "augment.contrast": _cfg.Float(ge=0, le=1),
    "augment.saturation": _cfg.Float(ge=0, le=1), "augment.hue": _cfg.Float(ge=0, le=0.5),
    "augment.jpeg_quality": _range(1, 100, integer=True), "augment.video_scale": _range(0.05, 1.0),
    "augment.video_quality": _range(1, 100, integer=True),
}


def _check_range(name: str, value) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ValueError(f"augment.{name} = {list(value)}: the first value must not exceed the second")
    return lo, hi


# ----------------------------------------------------------------------------- operations
def _by_channels(fn):
    """Apply an OpenCV filter to images of any channel count (OpenCV takes at most 4 at once):
    the spatial augmentations also run on HyperFake's 31-band cubes (``H x W x 31`` float)."""
    def wrapper(image: np.ndarray, *args):
        if image.ndim == 3 and image.shape[2] > 4:
            return np.concatenate([fn(np.ascontiguousarray(image[..., c:c + 4]), *args).reshape(
                *image.shape[:2], -1) for c in range(0, image.shape[2], 4)], axis=2)
        return fn(image, *args)
    wrapper.__doc__, wrapper.__name__ = fn.__doc__, fn.__name__
    return wrapper


@_by_channels
def rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """Down-scale by ``scale`` (area averaging) and back up to the original size (bilinear)."""
    h, w = image.shape[:2]
    sh, sw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    if (sh, sw) == (h, w):
        return image.copy()
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@_by_channels
def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return image.copy()
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101)


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float,
                 hue: float) -> np.ndarray:
    """Multiplicative brightness, contrast about the mean grey, saturation about the grey image,
    and a hue rotation (fraction of the circle), in that order, on float32 values."""
    x = image.astype(np.float32)
    x = x * (1.0 + brightness)
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = (x - grey.mean()) * (1.0 + contrast) + grey.mean()
    grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    x = grey + (x - grey) * (1.0 + saturation)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if hue != 0.0:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)            # OpenCV hue: 0..179
        shift = int(round(hue * 180.0))
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return x


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode as baseline JPEG at ``quality`` (4:2:0 chroma) and decode."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("JPEG encoding failed")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def video_like(image: np.ndarray, scale: float, quality: int) -> np.ndarray:
    """H.264-like: JPEG of a down-scaled copy, scaled back up."""
    h, w = image.shape[:2]
    sh, sw = max(8, int(round(h * scale))), max(8, int(round(w * scale)))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    small = jpeg(small, quality)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class Augment:
    """The seeded augmentation chain of an ``augment`` params section."""

    def __init__(self, params: Mapping[str, Any] | None = None):
        p = {**DEFAULTS, **dict(params or {})}
        unknown = set(p) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"augment: unknown keys {sorted(unknown)}; known: {sorted(DEFAULTS)}")
        self.prob = {n: float(p[n]) for n in NAMES}
        for n, v in self.prob.items():
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{n} = {v}: a probability must be in [0, 1]")
        self.resize_scale = _check_range("resize_scale", p["resize_scale"])
        self.blur_sigma = _check_range("blur_sigma", p["blur_sigma"])
        self.jpeg_quality = _check_range("jpeg_quality", p["jpeg_quality"])
        self.video_scale = _check_range("video_scale", p["video_scale"])
        self.video_quality = _check_range("video_quality", p["video_quality"])
        self.jitter = tuple(float(p[k]) for k in ("brightness", "contrast", "saturation", "hue"))

    @property
    def active(self) -> bool:
        return any(v > 0 for v in self.prob.values())

    def __call__(self, image: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if not self.active or rng is None:
            return image
        image = np.ascontiguousarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        # a fixed number of draws per call: (apply?, value) per operation, 4 jitter values
        u = rng.random(len(NAMES))
        v = rng.random(len(NAMES))
        j = rng.uniform(-1.0, 1.0, 4)
        q = rng.random()
        lerp = (lambda r, t: r[0] + (r[1] - r[0]) * t)
        if u[0] < self.prob["resize"]:
            image = rescale(image, lerp(self.resize_scale, v[0]))
        if u[1] < self.prob["blur"]:
            image = gaussian_blur(image, lerp(self.blur_sigma, v[1]))
        if u[2] < self.prob["color"]:
            image = color_jitter(image, *(a * b for a, b in zip(self.jitter, j)))
        if u[3] < self.prob["jpeg"]:
            image = jpeg(image, int(round(lerp(self.jpeg_quality, v[3]))))
        if u[4] < self.prob["video"]:
            scale = lerp(self.video_scale, v[4])
            quality = int(round(lerp(self.video_quality, q)))
            image = video_like(image, scale, quality)
        return image
