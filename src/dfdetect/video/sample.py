"""The ``sample_frames`` stage as library functions: one video, then one shard of a manifest.

:func:`sample_video` picks the frame indices of a video (:mod:`.indices`) from the frame count
found by demuxing (not the header's), decodes only those (:mod:`.decode`) and, when the end of
the video does not decode (truncated or damaged file), samples again from the frames that do
exist and says so. Frames are in display orientation (rotated phone videos are turned upright;
``width``/``height`` attrs are the displayed size). :func:`sample_shard` maps it over a manifest
shard with :func:`dfdetect.parallel.imap` and writes each video to the HDF5 shard as soon as it
arrives, in manifest order, so memory stays flat however many videos the shard has. Within a
video too: the worker compresses each frame as it is decoded and, past ``STREAM_FRAMES``
frames, appends the chunks to a spill file that the writer copies into the shard one chunk at a
time (``strategy: all`` on a long 4K clip costs the same memory as on a short one).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import config as _cfg
from ..failures import Failures, ItemError
from ..parallel import default_workers, imap
from ..resume import ResumableShard, file_identity
from ..store import COMPRESSION, Encoded, ShardWriter, SpillFile, Spilled, encode_items
from .decode import DECODERS, ReadResult, iter_frames
from .indices import STRATEGIES, indices_from_params
from .keyframes import probe

log = logging.getLogger("dfdetect")
STAGE = "sample_frames"

# params schema of the ``sample_frames`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "strategy": _cfg.Choice(*STRATEGIES),
    "num_frames": _cfg.Int(ge=1),
    "every_k": _cfg.Int(ge=1),
    "fps": _cfg.Float(gt=0),
    "max_side": _cfg.Int(ge=0),
    "decoder": _cfg.Choice(*DECODERS),
    "threads": _cfg.Int(ge=0),
    "compression": COMPRESSION,
})


# a worker holds at most this many sampled frames (compressed) before it streams them to a
# spill file that the writing process copies into the shard chunk by chunk
STREAM_FRAMES = 32
STREAM_BYTES = 64 << 20


class _Frames:
    """Where a video's sampled frames go as they are decoded (one frame in flight at a time).

    ``encode=False`` keeps raw frames (:func:`sample_video`). Otherwise each frame becomes its
    HDF5 chunk for codec ``spec`` at once (:func:`~dfdetect.store.encode_items`, or raw bytes for codecs that need
    a filter plugin); past ``STREAM_FRAMES`` frames or ``STREAM_BYTES`` bytes the chunks go to a
    spill file in ``spill_dir``, so memory does not grow with the number of frames.
    """

    def __init__(self, path: str, encode: bool = False, spec: Mapping | str | None = None,
                 spill_dir: str | Path | None = None):
        self.path = path
        self.encode = bool(encode)
        self.spec = spec
        self.spill_dir = spill_dir
        self.held: dict[int, np.ndarray | bytes] = {}
        self.held_bytes = 0
        self.spill: SpillFile | None = None
        self.shape: tuple | None = None
        self.dtype = None
        self.encoded = True            # chunks made here (False: raw bytes, writer compresses)
        self.first = -1

    def __contains__(self, i: int) -> bool:
        return i in self.held or (self.spill is not None and i in self.spill)

    def add(self, i: int, frame: np.ndarray) -> None:
        if self.shape is None:
            self.shape, self.dtype, self.first = frame.shape, frame.dtype, i
        elif frame.shape != self.shape:
            raise ItemError(f"frame {i} is {frame.shape[1]}x{frame.shape[0]} but frame {self.first} "
                            f"was {self.shape[1]}x{self.shape[0]}: the frame size changes "
                            "mid-video", path=self.path)
        if not self.encode:
            self.held[i] = frame
            return
        enc = encode_items(frame[None], self.spec)
        if isinstance(enc, Encoded):
            data = enc.chunks[0]
        else:
            self.encoded = False
            data = np.ascontiguousarray(frame).tobytes()
        if self.spill is not None:
            self.spill.append(i, data)
            return
        self.held[i] = data
        self.held_bytes += len(data)
        if self.spill_dir is not None and (len(self.held) > STREAM_FRAMES
                                           or self.held_bytes > STREAM_BYTES):
            fd, name = tempfile.mkstemp(prefix="video.", suffix=".chunks", dir=self.spill_dir)
            os.close(fd)
            self.spill = SpillFile(name)
            for k, v in self.held.items():
                self.spill.append(k, v)
            self.held.clear()
            self.held_bytes = 0

    def finish(self, kept: list[int]):
        """The ``frames`` field for the rows ``kept``: array, Encoded or Spilled."""
        if not self.encode:
            return np.stack([self.held[i] for i in kept])
        if self.spill is not None:
            return self.spill.take(kept, self.shape, self.dtype, self.spec, self.encoded)
        if not self.encoded:
            return np.stack([np.frombuffer(self.held[i], self.dtype).reshape(self.shape)
                             for i in kept])
        return Encoded((len(kept),) + tuple(self.shape), self.dtype, [self.held[i] for i in kept],
                       self.spec)

    def discard(self) -> None:
        self.held.clear()
        if self.spill is not None:
            self.spill.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.spill.path)


def _read_into(sink: _Frames, path: str, wanted, info, decoder: str, threads: int,
               max_side: int) -> ReadResult:
    res = ReadResult()
    for i, frame in iter_frames(path, wanted, info=info, decoder=decoder, threads=threads,
                                max_side=max_side, result=res):
        sink.add(i, frame)
    return res


def _sample(path: str, params: Mapping, threads: int, sink: _Frames) -> dict:
    info = probe(path)
    if info.n_frames == 0:
        reason = "zero-frame video (no video packets)"
        if info.demux_error:
            reason += f"; {info.demux_error}"
        raise ItemError(reason, path=path)
    decoder = str(params.get("decoder", "pyav"))
    max_side = int(params.get("max_side", 0) or 0)
    notes = list(info.notes)
    try:
        wanted = indices_from_params(info.n_frames, params, video_fps=info.fps)
    except ValueError as err:
        raise ItemError(str(err), path=path) from None
    res = _read_into(sink, path, wanted, info, decoder, threads, max_side)
    n_valid = info.n_frames
    if res.end is not None and any(i not in sink for i in wanted):
        # the stream stopped before a wanted frame: sample again from what exists
        n_valid = int(res.end)
        if n_valid == 0:
            raise ItemError("no frame decodes (corrupt or truncated video)"
                            + (f": {res.errors[0]}" if res.errors else ""), path=path)
        notes.append(f"only the first {n_valid} of {info.n_frames} frames decode; "
                     f"sampled from those {n_valid}")
        wanted = indices_from_params(n_valid, params, video_fps=info.fps)
        todo = [i for i in wanted if i not in sink]
        if todo:
            _read_into(sink, path, todo, info, decoder, threads, max_side)
    missing = [int(i) for i in wanted if i not in sink]
    if missing:
        notes.append(f"{len(missing)} sampled frame(s) do not decode: {missing[:10]}")
    if res.errors and res.end is None:
        # decoder errors that did not end the stream (when they did, the note above says so;
        # their wording depends on decoder threading, the outputs do not)
        notes.extend(e for e in res.errors if e not in notes)
    kept = [int(i) for i in wanted if i in sink]
    if not kept:
        raise ItemError("no sampled frame decodes (corrupt video)", path=path)
    fh, fw = int(sink.shape[0]), int(sink.shape[1])
    width, height = info.display_width, info.display_height
    attrs = {"fps": float(info.fps), "width": int(width), "height": int(height),
             "n_frames": int(n_valid), "n_frames_container": int(info.n_frames_reported),
             "n_frames_demuxed": int(info.n_frames), "codec": info.codec,
             "frame_height": fh, "frame_width": fw,
             "scale": float(fw / width) if width else 1.0}
    # only rotated/mirrored videos get these (the others' shards are unchanged)
    attrs.update(info.orientation.attrs(info.width, info.height))
    if info.n_frames_reported and info.n_frames_reported != info.n_frames:
        log.info("%s: header says %d frames, demuxing finds %d", path, info.n_frames_reported,
                 info.n_frames)
    return {"frame_index": np.asarray(kept, dtype=np.int64), "frames": sink.finish(kept),
            "attrs": attrs, "notes": notes}


def sample_video(path: str | Path, params: Mapping, threads: int = 0) -> dict:
    """Sample one video. Returns ``{"frame_index", "frames", "attrs", "notes"}`` (frames: an
    (n, h, w, 3) uint8 array in display orientation).

    Raises :class:`ItemError` for a missing, unreadable, zero-frame or undecodable video.
    """
    path = str(path)
    return _sample(path, params, threads, _Frames(path))


def _work(row: tuple[str, str], params: Mapping, threads: int,
          spill_dir: str | None = None) -> dict:
    """One video in a worker: frames are compressed here as they are decoded (the writing
    process only copies bytes); a long video streams into a spill file in ``spill_dir``.
    Returns plain data (arrays, :class:`~dfdetect.store.Encoded` or
    :class:`~dfdetect.store.Spilled`)."""
    video_id, path = row
    sink = _Frames(path, encode=True, spec=params.get("compression"), spill_dir=spill_dir)
    try:
        return _sample(path, params, threads, sink)
    except BaseException:
        sink.discard()
        raise


def _resolve(path: str, video_id: str, root: str | Path | None) -> str:
    p = Path(path or video_id)
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    return str(p)


def decoder_threads(params: Mapping, executor: str, workers: int) -> int:
    """Decoder threads per video: ``params.threads``, or (0) all cores for one worker, else 1."""
    threads = int(params.get("threads", 0) or 0)
    if threads:
        return threads
    if executor == "serial" or workers <= 1:
        return 0
    return max(1, default_workers() // workers)


def sample_shard(manifest, out_path: str | Path, failures_path: str | Path, params: Mapping,
                 executor: str = "process", workers: int | None = None, root: str | Path | None = None,
                 progress: bool = True, address: str | None = None) -> Failures:
    """Sample every video of a manifest (DataFrame or CSV path) into one HDF5 shard.

    ``executor``/``workers``/``address`` go to :func:`dfdetect.parallel.imap`; they change how
    fast, never what is written (the shard is byte-identical for any executor).
    """
    from ..data.manifest import read_manifest  # noqa: PLC0415

    df = read_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest
    workers = int(workers or default_workers())
    params = dict(params)
    threads = decoder_threads(params, executor, workers)
    rows = [(str(v), _resolve(str(p), str(v), root)) for v, p in zip(df["video_id"], df["path"])]
    stored = {k: v for k, v in params.items() if k not in ("sharding",)}
    failures = Failures(STAGE, items=len(rows))
    compression = {"frame": params["compression"]} if "compression" in params else None
    out_path = Path(out_path)
    # an interrupted run's finished videos are reused (dfdetect.resume): the records are keyed
    # by the params (not the executor: it never changes the bytes) and by
    # each video's id, path, size and mtime; long videos spill into the resume folder
    with ResumableShard(out_path, STAGE, {"params": params, "root": str(root or "")}) as rs:
        fn = functools.partial(_work, params=params, threads=threads, spill_dir=str(rs.spill_dir))
        with ShardWriter(out_path, stage=STAGE, params=stored, compression=compression) as writer:
            for (video_id, path), result, error in rs.imap(
                    fn, rows, key=lambda row: [row[0], *file_identity(row[1])], executor=executor,
                    workers=workers, desc=f"{STAGE} {out_path.name}", progress=progress,
                    address=address or None):
                if error is not None:
                    failures.add_error(video_id, error, path=path)
                    continue
                if result["notes"]:
                    failures.add(video_id, "partial: " + "; ".join(result["notes"]), path=path)
                writer.add_video(video_id, result["frame_index"], attrs=result["attrs"],
                                 frame=result["frames"])
        failures.write(failures_path)
    # (the resume folder, spill files included, goes once both outputs are in place)
    return failures
