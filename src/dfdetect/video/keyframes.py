"""Frame table and keyframe positions of a video, read by demuxing only (no decoding).

Reading the packets of a video costs milliseconds (a 60 s 720p H.264 clip: 1,500 packets in
about 30 ms) where decoding it costs seconds. The packets give, exactly:

- the number of frames present (a container's header count, OpenCV's CAP_PROP_FRAME_COUNT,
  is an estimate from duration x rate for some formats and wrong for truncated files);
- the presentation timestamp of every frame, so frame ``i`` (the i-th frame a full decode
  outputs) has the i-th smallest pts, which makes seeking by timestamp exact;
- which frames are keyframes, i.e. where a seek lands and decoding can restart.

The display orientation (rotation/mirror matrix of phone videos, :mod:`.orientation`) is the one
thing demuxing does not give with PyAV: the first packet is decoded once to read it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..failures import ItemError
from .orientation import NONE, Orientation, first_frame_matrix, from_matrix, read_display_matrix

log = logging.getLogger("dfdetect")


@dataclass
class VideoInfo:
    path: str
    fps: float                      # average frame rate (0.0 when unknown)
    width: int
    height: int
    n_frames: int                   # frames found by demuxing (packets shown by a decoder)
    n_frames_reported: int          # the container header's count (0 when absent)
    keyframes: np.ndarray           # display indices of keyframes, ascending (always holds 0)
    pts: np.ndarray | None = None   # pts of frame i; None when timestamps are missing/duplicated
    time_base: Fraction | None = None
    codec: str = ""
    demux_error: str = ""           # why demuxing stopped early ("" when it reached the end)
    notes: list[str] = field(default_factory=list)
    orientation: Orientation = NONE  # display matrix; width/height above are the coded size

    @property
    def display_width(self) -> int:
        return self.orientation.display_size(self.width, self.height)[0]

    @property
    def display_height(self) -> int:
        return self.orientation.display_size(self.width, self.height)[1]

    @property
    def seekable(self) -> bool:
        return self.pts is not None and len(self.keyframes) > 1


def _open(path: str | Path):
    import av  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise ItemError("video file not found", path=str(path))
    if path.stat().st_size == 0:
        raise ItemError("empty file (0 bytes)", path=str(path))
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise ItemError(f"cannot open video (corrupt or not a video): {err}", path=str(path)) from None
    if not container.streams.video:
        container.close()
        raise ItemError("no video stream in file", path=str(path))
    return container


def probe(path: str | Path) -> VideoInfo:
    """Demux every video packet of ``path`` (no decoding) and return its frame table."""
    import av  # noqa: PLC0415

    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        pts: list[int | None] = []
        key: list[bool] = []
        discarded = 0
        error = ""
        matrix, looking = None, 16    # packets left to find a decodable first frame
        try:
            for packet in container.demux(stream):
                if packet.size == 0:          # the flush packet at the end
                    continue
                if looking:                   # display matrix: on decoded frames only
                    decoded, matrix = first_frame_matrix(ctx, packet)
                    looking = 0 if decoded else looking - 1
                if getattr(packet, "is_discard", False):   # dropped by the edit list
                    discarded += 1
                    continue
                pts.append(packet.pts)
                key.append(bool(packet.is_keyframe))
        except av.error.FFmpegError as err:
            error = f"demuxing stopped after {len(pts)} packets: {err}"
        info = VideoInfo(path=str(path), fps=fps, width=int(ctx.width or 0),
                         height=int(ctx.height or 0), n_frames=len(pts),
                         n_frames_reported=int(stream.frames or 0),
                         keyframes=np.zeros(1, dtype=np.int64), time_base=stream.time_base,
                         codec=str(ctx.name or ""), demux_error=error)
    if error:
        info.notes.append(error)
    info.orientation = from_matrix(matrix)
    if info.orientation.note:
        info.notes.append(info.orientation.note)
    listed = info.n_frames_reported
    if listed and listed > info.n_frames + discarded:
        info.notes.append(f"header lists {listed} frames but only {info.n_frames} are present "
                          "(truncated file?)")
    if not pts:
        return info
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        # no usable timestamps (raw elementary streams, some AVIs): decode sequentially
        log.info("%s: packets lack unique timestamps; frames are read sequentially", path)
        return info
    arr = np.asarray(pts, dtype=np.int64)
    order = np.argsort(arr, kind="stable")
    info.pts = arr[order]
    kpos = np.sort(np.flatnonzero(np.asarray(key)[order]))
    if len(kpos) == 0 or kpos[0] != 0:
        kpos = np.concatenate([[0], kpos])
    info.keyframes = kpos.astype(np.int64)
    return info


def display_orientation(path: str | Path) -> Orientation:
    """The display :class:`~.orientation.Orientation` of the first video stream of ``path``
    (identity when there is no display matrix or the first frame does not decode)."""
    with _open(path) as container:
        matrix, _err = read_display_matrix(container, container.streams.video[0])
    return from_matrix(matrix)
