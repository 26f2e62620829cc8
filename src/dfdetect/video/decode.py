"""Decode only what the sampled frames need.

Measured facts that decide the method (10 s 720p H.264, x264 defaults = one GOP, 2 cores):

- Any seek restarts decoding at the keyframe before the target, so seeking to each of 32
  frames inside one GOP decodes the GOP up to 32 times (4.3x slower than decoding everything).
- Decoding forward and converting only the wanted frames to RGB costs one decode of the span
  (OpenCV: ``grab()`` every frame, ``retrieve()`` the wanted ones).
- PyAV with frame threading decodes faster than OpenCV's ``grab()`` loop and than the
  ``ffmpeg -f null`` program (measured by ``benchmarks/sample_frames.py``), so it is the default.

Hence the plan (:func:`plan`): walk the wanted frames in order; before each one, seek only if
a keyframe lies strictly after the current decode position and at or before the target
(seeking then skips decoding the frames in between); otherwise decode forward. Dense sampling
inside one GOP never seeks, sparse sampling across many GOPs decodes one partial GOP per frame.

Positions are exact: keyframes and the pts of every frame come from demuxing
(:mod:`.keyframes`), a decoded frame's index is found from its pts, and a seek that lands
after its target (broken index) is retried from an earlier keyframe. Frames are RGB uint8, in
display orientation: the container's display matrix (rotated phone videos) is applied to the
pixels exactly, identically for both decoders (:mod:`.orientation`; OpenCV's own
auto-rotation is switched off). :func:`iter_frames` yields frames one at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..failures import ItemError
from .keyframes import VideoInfo, probe

log = logging.getLogger("dfdetect")
DECODERS = ("pyav", "opencv")


def keyframe_between(keyframes: np.ndarray, pos: int, target: int) -> int | None:
    """The last keyframe ``k`` with ``pos < k <= target``, or None when there is none."""
    j = int(np.searchsorted(keyframes, target, side="right")) - 1
    if j >= 0 and keyframes[j] > pos:
        return int(keyframes[j])
    return None


def plan(wanted: Iterable[int], keyframes: np.ndarray, start: int = 0) -> list[tuple[int, int | None]]:
    """``[(target, seek_to_keyframe_or_None), ...]`` for sorted ``wanted`` frames.

    ``start`` is the index the decoder would output next without seeking (0 for a fresh open).
    """
    keyframes = np.asarray(keyframes, dtype=np.int64)
    out = []
    pos = start
    for t in wanted:
        t = int(t)
        k = keyframe_between(keyframes, pos, t)
        out.append((t, k))
        pos = t + 1
    return out


def resize_max_side(img: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (cv2.INTER_AREA) so that the longer side is at most ``max_side`` (0: keep)."""
    if not max_side:
        return img
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


@dataclass
class ReadResult:
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    end: int | None = None          # frames >= end could not be decoded (stream ended/broke)
    seeks: int = 0
    decoded: int = 0                # frames the decoder produced (a measure of the work done)
    errors: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- PyAV
def _iter_pyav(path: str, wanted: list[int], info: VideoInfo, threads: int, max_side: int,
               seek: bool, res: ReadResult) -> Iterator[tuple[int, np.ndarray]]:
    import av  # noqa: PLC0415

    from .keyframes import _open  # noqa: PLC0415

    if not wanted:
        return
    orient = info.orientation
    use_pts = info.pts is not None
    index_of = {int(p): i for i, p in enumerate(info.pts)} if use_pts else {}
    keyframes = info.keyframes if (use_pts and seek) else np.zeros(1, dtype=np.int64)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = int(threads)
        frames = None               # decode generator
        pending = None              # a decoded (index, frame) not consumed yet
        pos = 0                     # index the decoder outputs next without seeking
        count = 0                   # sequential index when timestamps are unusable

        def restart(k: int):
            nonlocal frames, pending, pos, count
            if frames is not None or k > 0:
                offset = int(info.pts[k]) if use_pts else 0
                container.seek(offset, stream=stream, backward=True, any_frame=False)
                res.seeks += 1
            frames = container.decode(stream)
            pending = None
            pos = k
            count = 0

        def next_frame():
            nonlocal pending, count
            if pending is not None:
                item, pending = pending, None
                return item
            while True:
                try:
                    f = next(frames)
                except StopIteration:
                    return None
                except av.error.FFmpegError as err:
                    res.errors.append(f"decoding stopped: {err}")
                    return None
                res.decoded += 1
                if use_pts:
                    i = index_of.get(f.pts)
                    if i is None:           # a frame the demuxer did not list: no exact index
                        res.errors.append(f"decoded frame with unknown pts {f.pts} skipped")
                        continue
                else:
                    i = count
                    count += 1
                return i, f

        for t in wanted:
            k = keyframe_between(keyframes, pos, t)
            if frames is None or k is not None:
                restart(k if k is not None else 0)
            tries = 0
            while True:
                item = next_frame()
                if item is None:
                    res.end = pos if res.end is None else min(res.end, pos)
                    break
                i, f = item
                pos = i + 1
                if i < t:
                    continue
                if i == t:
                    yield t, resize_max_side(orient.apply(f.to_ndarray(format="rgb24")), max_side)
                    break
                # overshoot: the seek landed after t (index and stream disagree)
                j = int(np.searchsorted(keyframes, t, side="right")) - 1 - tries - 1
                if use_pts and j >= 0 and tries < 3:
                    tries += 1
                    restart(int(keyframes[j]))
                    continue
                res.errors.append(f"frame {t} is not produced by the decoder")
                pending = (i, f)
                break
            if res.end is not None:
                break


# ----------------------------------------------------------------------------- OpenCV
def _open_cv(path: str, threads: int = 0):
    """cv2.VideoCapture with OpenCV's own auto-rotation off: we apply the display matrix
    ourselves (mirrors included, which OpenCV ignores), the same way for both decoders."""
    params = [cv2.CAP_PROP_N_THREADS, int(threads)] if threads else []
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if cap.isOpened():
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    return cap


def _iter_opencv(path: str, wanted: list[int], info: VideoInfo, threads: int, max_side: int,
                 seek: bool, res: ReadResult) -> Iterator[tuple[int, np.ndarray]]:
    if not wanted:
        return
    cap = _open_cv(path, threads)
    if not cap.isOpened():
        raise ItemError("OpenCV cannot open the video", path=str(path))
    orient = info.orientation
    keyframes = info.keyframes if seek else np.zeros(1, dtype=np.int64)
    try:
        pos = 0
        for t in wanted:
            if keyframe_between(keyframes, pos, t) is not None:
                cap.set(cv2.CAP_PROP_POS_FRAMES, t)   # decodes from the keyframe to t
                res.seeks += 1
                pos = t
            ok = True
            while pos <= t:
                ok = cap.grab()
                if not ok:
                    break
                res.decoded += 1
                pos += 1
            if not ok:
                res.end = pos
                break
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                res.errors.append(f"frame {t}: retrieve failed")
                continue
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield t, resize_max_side(orient.apply(rgb), max_side)
    finally:
        cap.release()


def iter_frames(path: str | Path, indices: Iterable[int], info: VideoInfo | None = None,
                decoder: str = "pyav", threads: int = 0, max_side: int = 0, seek: bool = True,
                result: ReadResult | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for the frames ``indices`` of ``path``, in ascending order,
    one at a time (memory does not grow with the number of frames).

    Frames are shown as a player shows them (display matrix applied, :mod:`.orientation`).
    ``result`` (a :class:`ReadResult`) receives ``end``/``seeks``/``decoded``/``errors`` as
    decoding goes; its ``frames`` stay empty.
    """
    info = info or probe(path)
    res = result if result is not None else ReadResult()
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < max(info.n_frames, 0)})
    if decoder == "pyav":
        return _iter_pyav(str(path), wanted, info, threads, max_side, seek, res)
    if decoder == "opencv":
        return _iter_opencv(str(path), wanted, info, threads, max_side, seek, res)
    raise ValueError(f"unknown decoder {decoder!r}; expected one of {DECODERS}")


def read_frames(path: str | Path, indices: Iterable[int], info: VideoInfo | None = None,
                decoder: str = "pyav", threads: int = 0, max_side: int = 0,
                seek: bool = True) -> ReadResult:
    """Decode the frames ``indices`` (any order; duplicates ignored) of ``path``.

    ``threads``: decoder threads (0 = FFmpeg's choice). ``seek=False`` decodes forward only.
    Frames that cannot be decoded are absent from ``result.frames``; ``result.end`` tells where
    the decodable part of the video ended when the stream stopped before a wanted frame.
    """
    res = ReadResult()
    for i, frame in iter_frames(path, indices, info=info, decoder=decoder, threads=threads,
                                max_side=max_side, seek=seek, result=res):
        res.frames[i] = frame
    return res


def decode_all(path: str | Path, decoder: str = "pyav", threads: int = 0) -> np.ndarray:
    """Every frame of ``path`` by a plain sequential decode (the reference for exactness tests),
    with the display matrix applied as :func:`read_frames` does."""
    from .keyframes import display_orientation  # noqa: PLC0415

    orient = display_orientation(path)
    out = []
    if decoder == "pyav":
        import av  # noqa: PLC0415

        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = int(threads)
            out = [orient.apply(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
    elif decoder == "opencv":
        cap = _open_cv(str(path))
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            out.append(orient.apply(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        cap.release()
    else:
        raise ValueError(f"unknown decoder {decoder!r}")
    if not out:
        return np.empty((0, 0, 0, 3), dtype=np.uint8)
    return np.stack(out)
