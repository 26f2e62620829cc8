"""The ``sample_frames`` stage as library functions: one video, then one shard of a manifest.

:func:`sample_video` picks the frame indices of a video (:mod:`.indices`) from the frame count
found by demuxing (not the header's), decodes only those (:mod:`.decode`) and, when the end of
the video does not decode (truncated or damaged file), samples again from the frames that do
exist and says so. :func:`sample_shard` maps it over a manifest shard with
:func:`dfdetect.parallel.imap` and writes each video to the HDF5 shard as soon as it arrives,
in manifest order, so memory stays flat however many videos the shard has.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import config as _cfg
from ..failures import Failures, ItemError
from ..parallel import default_workers, imap
from ..store import COMPRESSION, ShardWriter, encode_items
from .decode import DECODERS, read_frames
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


def sample_video(path: str | Path, params: Mapping, threads: int = 0) -> dict:
    """Sample one video. Returns ``{"frame_index", "frames", "attrs", "notes"}``.

    Raises :class:`ItemError` for a missing, unreadable, zero-frame or undecodable video.
    """
    path = str(path)
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
    res = read_frames(path, wanted, info=info, decoder=decoder, threads=threads, max_side=max_side)
    frames = dict(res.frames)
    n_valid = info.n_frames
    if res.end is not None and any(i not in frames for i in wanted):
        # the stream stopped before a wanted frame: sample again from what exists
        n_valid = int(res.end)
        if n_valid == 0:
            raise ItemError("no frame decodes (corrupt or truncated video)"
                            + (f": {res.errors[0]}" if res.errors else ""), path=path)
        notes.append(f"only the first {n_valid} of {info.n_frames} frames decode; "
                     f"sampled from those {n_valid}")
        wanted = indices_from_params(n_valid, params, video_fps=info.fps)
        todo = [i for i in wanted if i not in frames]
        if todo:
            more = read_frames(path, todo, info=info, decoder=decoder, threads=threads,
                               max_side=max_side)
            frames.update(more.frames)
    missing = [int(i) for i in wanted if i not in frames]
    if missing:
        notes.append(f"{len(missing)} sampled frame(s) do not decode: {missing[:10]}")
    if res.errors and res.end is None:
        # decoder errors that did not end the stream (when they did, the note above says so;
        # their wording depends on decoder threading, the outputs do not)
        notes.extend(e for e in res.errors if e not in notes)
    kept = np.asarray([i for i in wanted if i in frames], dtype=np.int64)
    if len(kept) == 0:
        raise ItemError("no sampled frame decodes (corrupt video)", path=path)
    stack = np.stack([frames[int(i)] for i in kept])
    attrs = {"fps": float(info.fps), "width": int(info.width), "height": int(info.height),
             "n_frames": int(n_valid), "n_frames_container": int(info.n_frames_reported),
             "n_frames_demuxed": int(info.n_frames), "codec": info.codec,
             "frame_height": int(stack.shape[1]), "frame_width": int(stack.shape[2]),
             "scale": float(stack.shape[2] / info.width) if info.width else 1.0}
    if info.n_frames_reported and info.n_frames_reported != info.n_frames:
        log.info("%s: header says %d frames, demuxing finds %d", path, info.n_frames_reported,
                 info.n_frames)
    return {"frame_index": kept, "frames": stack, "attrs": attrs, "notes": notes}


def _work(row: tuple[str, str], params: Mapping, threads: int) -> dict:
    video_id, path = row
    result = sample_video(path, params, threads=threads)
    # compress the chunks here, in the worker: the writing process only copies bytes
    result["frames"] = encode_items(result["frames"], params.get("compression"))
    return result


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
    fn = functools.partial(_work, params=params, threads=threads)
    compression = {"frame": params["compression"]} if "compression" in params else None
    with ShardWriter(out_path, stage=STAGE, params=stored, compression=compression) as writer:
        for (video_id, path), result, error in imap(fn, rows, executor=executor, workers=workers,
                                                     desc=f"{STAGE} {Path(out_path).name}",
                                                     progress=progress, address=address or None):
            if error is not None:
                failures.add_error(video_id, error, path=path)
                continue
            if result["notes"]:
                failures.add(video_id, "partial: " + "; ".join(result["notes"]), path=path)
            writer.add_video(video_id, result["frame_index"], attrs=result["attrs"],
                             frame=result["frames"])
    failures.write(failures_path)
    return failures
