"""Display orientation of a video: the container's display matrix, applied to decoded pixels.

Phone videos are usually stored in the sensor's orientation with a display matrix (MP4/MOV
``tkhd`` matrix, exported by libav as ``AV_FRAME_DATA_DISPLAYMATRIX`` side data) that tells a
player to rotate (and possibly mirror) them. Decoders output the coded pixels; we turn them into
what a player shows, exactly (a permutation of pixels: transpose and flips, no resampling).

The matrix is the 3x3 int32 array of ``libavutil/display.h`` (16.16 fixed point, row-vector
convention): a coded pixel ``(p, q)`` (column, row) is shown at ``p' = a p + c q + x``,
``q' = b p + d q + y`` with ``[a b u; c d v; x y w]``. Only right angles (optionally mirrored)
map pixels onto pixels; other matrices are ignored with a note. ``rotation`` is the angle
libav's ``av_display_rotation_get`` (and ffprobe's ``rotation`` field) reports: degrees
counter-clockwise, so ``rotation == 90`` is ``np.rot90(frame, 1)``.

PyAV exposes the matrix only on decoded frames (``frame.side_data``; recent PyAV has no stream
accessor), so :func:`read_display_matrix` decodes the first packet once. ffprobe's
``side_data_list`` text (``displaymatrix``) is parsed by :func:`parse_ffprobe_matrix` for the
fallback without PyAV.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

IDENTITY = (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)


@dataclass(frozen=True)
class Orientation:
    """Transpose, then flip rows (vertical) and/or columns (horizontal), of a coded frame."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False
    note: str = ""                  # why a matrix was not applied ("" when it was or is absent)

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    @property
    def mirrored(self) -> bool:
        """True when the display image is a mirror image of the coded one (determinant < 0)."""
        return self.transpose == (self.flip_rows == self.flip_cols)

    @property
    def rotation(self) -> int:
        """Counter-clockwise degrees (-90, 0, 90, 180) of the rotation part, libav's convention
        (after removing a horizontal mirror when :attr:`mirrored`)."""
        t, fr, fc = self.transpose, self.flip_rows, self.flip_cols
        if self.mirrored:           # remove the horizontal mirror applied last
            fc = not fc
        if not t:
            return 180 if (fr and fc) else 0
        return 90 if fr else -90

    def display_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the shown image for a coded ``width`` x ``height``."""
        return (int(height), int(width)) if self.transpose else (int(width), int(height))

    def apply(self, img: np.ndarray) -> np.ndarray:
        """The displayed image (C-contiguous; ``img`` itself when there is nothing to do)."""
        if self.identity:
            return img
        out = img.swapaxes(0, 1) if self.transpose else img
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def attrs(self, coded_width: int, coded_height: int) -> dict:
        """Shard/manifest attributes that describe a non-identity orientation ({} otherwise)."""
        if self.identity:
            return {}
        return {"rotation": int(self.rotation), "hflip": bool(self.mirrored),
                "coded_width": int(coded_width), "coded_height": int(coded_height)}


NONE = Orientation()


def from_matrix(matrix) -> Orientation:
    """The :class:`Orientation` of a 9-entry libav display matrix (None: identity)."""
    if matrix is None:
        return NONE
    m = [float(v) for v in matrix]
    if len(m) != 9:
        return Orientation(note=f"display matrix with {len(m)} entries ignored")
    a, b, c, d = m[0], m[1], m[3], m[4]
    scale = max(abs(a), abs(b), abs(c), abs(d))
    if scale == 0 or not all(math.isfinite(v) for v in (a, b, c, d)):
        return Orientation(note="degenerate display matrix ignored")
    a, b, c, d = (v / scale for v in (a, b, c, d))
    tol = 1e-3
    if abs(b) < tol and abs(c) < tol and abs(abs(a) - 1) < tol and abs(abs(d) - 1) < tol:
        return Orientation(transpose=False, flip_rows=d < 0, flip_cols=a < 0)
    if abs(a) < tol and abs(d) < tol and abs(abs(b) - 1) < tol and abs(abs(c) - 1) < tol:
        # p' = c q, q' = b p: out[b p, c q] = img[q, p] -> transpose, then flip by the signs
        return Orientation(transpose=True, flip_rows=b < 0, flip_cols=c < 0)
    angle = -math.degrees(math.atan2(b, a))
    return Orientation(note=f"display matrix rotates by {angle:.1f} degrees (not a multiple of "
                            "90); frames are stored as coded")


def matrix_from_side_data(frame) -> tuple[int, ...] | None:
    """The display matrix attached to a decoded PyAV frame, or None."""
    for sd in frame.side_data:
        if "DISPLAYMATRIX" in str(sd.type).upper():
            raw = bytes(sd)
            if len(raw) >= 36:
                return tuple(int(v) for v in np.frombuffer(raw[:36], dtype="=i4"))
    return None


def first_frame_matrix(ctx, packet) -> tuple[bool, tuple[int, ...] | None]:
    """Decode ``packet`` alone (then flush) with codec context ``ctx``: ``(decoded, matrix)``.

    ``decoded`` is False when no frame came out (the caller may try the next packet). Costs one
    frame's decode; ``ctx`` is drained afterwards (use it for nothing else).
    """
    import av  # noqa: PLC0415

    if not ctx.is_open:
        ctx.thread_count = 1
    try:
        frames = ctx.decode(packet) or ctx.decode(None)
    except (av.error.FFmpegError, ValueError):
        frames = []
    if not frames:
        try:
            ctx.flush_buffers()
        except (av.error.FFmpegError, ValueError):
            pass
        return False, None
    return True, matrix_from_side_data(frames[0])


def read_display_matrix(container, stream, max_packets: int = 16) -> tuple[tuple[int, ...] | None, str]:
    """The display matrix of ``stream``, from its first decodable frame (one of the first
    ``max_packets`` packets). Returns ``(matrix or None, error text)``; the container is left
    positioned after the packets read."""
    import av  # noqa: PLC0415

    try:
        for i, packet in enumerate(container.demux(stream)):
            if packet.size == 0 or i >= max_packets:
                break
            decoded, matrix = first_frame_matrix(stream.codec_context, packet)
            if decoded:
                return matrix, ""
    except av.error.FFmpegError as err:
        return None, f"demuxing stopped: {err}"
    return None, "no frame decodes from the first packets"


_HEX_ROW = re.compile(r"^\s*[0-9a-fA-F]{8}:\s*(-?\d+)\s+(-?\d+)\s+(-?\d+)\s*$")


def parse_ffprobe_matrix(text: str) -> tuple[int, ...] | None:
    """The 9 entries of ffprobe's ``displaymatrix`` text (``00000000: a b u`` rows), or None."""
    rows = [_HEX_ROW.match(line) for line in str(text or "").splitlines() if line.strip()]
    if len(rows) != 3 or not all(rows):
        return None
    return tuple(int(v) for r in rows for v in r.groups())
