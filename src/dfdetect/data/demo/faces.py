"""Real faces for the embedded demo, and how a portrait is framed in the output video.

Offline, installed packages ship only a few real face photos:

* ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain),
  512 x 512 colour;
* ``grace_hopper``: matplotlib's ``mpl-data/sample_data/grace_hopper.jpg`` (public domain),
  512 x 600 colour;
* ``lfw-NNN``: scikit-image's ``lfw_subset.npy``, 100 grayscale 25 x 25 face crops from
  Labeled Faces in the Wild (news photos, research use). They carry no identity labels; the
  default indices were picked by eye to be different people. At 25 px they are upscaled, so
  these identities are blurry and gray.

A :class:`Portrait` is one still photo with the 68 landmarks of its face; every video of the
demo is rendered from portraits (or, with ``make_demo.source``, from real videos).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ...failures import ItemError
from ...faces.landmarks import detect_landmarks

# by-eye distinct people of skimage's lfw_subset (indices < 100 are faces)
DEFAULT_LFW = (1, 2, 6, 12, 18, 24, 27, 35)


@dataclass
class Portrait:
    identity: str
    image: np.ndarray                 # uint8 HxWx3 RGB
    landmarks: np.ndarray             # float32 68x2 in image pixels
    source: str                       # where the photo comes from
    licence: str
    kind: str = "photo"               # photo (high resolution) | lfw (25 px, upscaled)
    extra: dict = field(default_factory=dict)


def _largest_face(rgb: np.ndarray, what: str, upsample: int = 1) -> np.ndarray:
    faces = detect_landmarks(rgb, upsample)
    if not faces:
        raise ItemError("no face found by dlib HOG", path=what)
    return faces[0][1]


def _skimage_file(name: str) -> Path:
    import skimage  # noqa: PLC0415

    return Path(skimage.__file__).parent / "data" / name


def astronaut() -> Portrait:
    from skimage import data  # noqa: PLC0415

    img = np.ascontiguousarray(data.astronaut()[..., :3])
    return Portrait("astronaut", img, _largest_face(img, "skimage.data.astronaut"),
                    "scikit-image data.astronaut() (Eileen Collins, NASA)", "public domain")


def grace_hopper() -> Portrait:
    import matplotlib  # noqa: PLC0415

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = read_image(path)
    return Portrait("grace_hopper", img, _largest_face(img, str(path)),
                    "matplotlib mpl-data/sample_data/grace_hopper.jpg", "public domain")


@functools.lru_cache(maxsize=1)
def _lfw() -> np.ndarray:
    return np.load(_skimage_file("lfw_subset.npy"))


def lfw_face(index: int, size: int = 256) -> Portrait:
    """One LFW crop, upscaled (bicubic) to ``size`` and padded by reflection so the head has
    some surroundings; landmarks found on the upscaled image."""
    arr = _lfw()
    if not 0 <= index < 100:
        raise ItemError(f"lfw_subset index {index} is not a face (faces are 0..99)",
                        path="skimage lfw_subset.npy")
    gray = np.clip(arr[index] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    big = cv2.resize(gray, (size, size), interpolation=cv2.INTER_CUBIC)
    # surroundings: the crop's edges, replicated and strongly blurred (an out-of-focus
    # background), feathered into the crop
    pad = size // 4
    rep = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    blur = cv2.GaussianBlur(rep, (0, 0), size / 12)
    inside = np.zeros(rep.shape, np.float32)
    inside[pad:-pad, pad:-pad] = 1.0
    inside = cv2.GaussianBlur(inside, (0, 0), size / 40)
    big = np.clip(rep * inside + blur * (1 - inside), 0, 255).round().astype(np.uint8)
    rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=2))
    lm = _largest_face(rgb, f"skimage lfw_subset.npy[{index}]")
    return Portrait(f"lfw-{index:03d}", rgb, lm,
                    f"scikit-image lfw_subset.npy[{index}] (Labeled Faces in the Wild, 25x25 gray)",
                    "LFW: news photographs, research use", kind="lfw")


def read_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.exists() else None
    if data is None:
        raise ItemError("file not found", path=str(path))
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise ItemError("unreadable image (cv2.imdecode failed)", path=str(path))
    return np.ascontiguousarray(bgr[..., ::-1])


def photo_portrait(path: str | Path, identity: str, max_side: int = 1024) -> Portrait:
    """A portrait from an image file (largest face); ItemError when unreadable or faceless."""
    img = read_image(path)
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return Portrait(identity, img, _largest_face(img, str(path)), str(path), "see source")


def builtin_portraits(lfw_indices=DEFAULT_LFW, size: int = 256, failures=None,
                      photos: bool = True) -> list[Portrait]:
    """Every portrait installed packages ship: the two colour photos (unless ``photos`` is
    false, e.g. for a test set of other people), then the LFW crops."""
    makers = [("astronaut", astronaut), ("grace_hopper", grace_hopper)] if photos else []
    makers += [(f"lfw-{i:03d}", functools.partial(lfw_face, int(i), size)) for i in lfw_indices]
    out = []
    for name, make in makers:
        try:
            out.append(make())
        except ItemError as err:
            if failures is None:
                raise
            failures.add(name, err.reason, path=err.path)
    return out


# ----------------------------------------------------------------------------- framing
def face_frame_affine(landmarks: np.ndarray, size: int, face_fraction: float = 0.42,
                      image_shape=None) -> np.ndarray:
    """2x3 similarity (no rotation) mapping the photo to a ``size`` frame with the face centred
    slightly above the middle and its landmark span ``face_fraction`` of the frame width.

    With ``image_shape`` the window never leaves the image: a tightly framed source is zoomed
    in (the face then takes more of the frame) and the window slides inside the image, so no
    reflected border shows."""
    lm = np.asarray(landmarks, dtype=np.float64)
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    span = max(x1 - x0, (y1 - y0) * 0.9, 1.0)
    s = face_fraction * size / span
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if image_shape is not None:
        h, w = image_shape[:2]
        s = max(s, size / float(min(h, w)))
        win = size / s
        left = min(max(cx - win / 2, 0.0), w - win)
        top = min(max(cy - win * 0.52, 0.0), h - win)
        return np.array([[s, 0, -s * left], [0, s, -s * top]], dtype=np.float64)
    tx = size / 2 - s * cx
    ty = size * 0.52 - s * cy
    return np.array([[s, 0, tx], [0, s, ty]], dtype=np.float64)


def apply_affine(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Affine ``a`` after ``b`` (both 2x3)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]
