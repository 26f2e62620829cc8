"""The ``align_faces`` stage body: one frames shard in, one faces shard + failures table out.

Videos are processed in parallel (:func:`dfdetect.parallel.imap`; each worker reads its own
video's frames from the shard, so only a path and a video id are sent to it) and written in
input order as they arrive, so memory stays flat however many videos the shard holds. A frame
without a face and a video without any face are rows of the failures table; a video with no
face is left out of the faces shard. Both outputs are written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .. import config as _cfg
from ..failures import Failures
from ..resume import ResumableShard
from ..store import COMPRESSION, ShardReader, ShardWriter
from .pipeline import DETECTORS, FIELDS, AlignConfig, align_video_task

log = logging.getLogger("dfdetect")
STAGE = "align_faces"

# params schema of the ``align_faces`` section (checked by the stage before any work)
PARAMS = _cfg.Section({
    "detector": _cfg.Choice(*DETECTORS),
    "fallback": _cfg.Choice("", *DETECTORS, nullable=True),   # "" / null: no fallback
    "detect_max_side": _cfg.Int(ge=16),
    "coarse_side": _cfg.Int(ge=0),           # 0: off
    "upsample": _cfg.Int(ge=0, le=4),
    "face_size": _cfg.Int(ge=16),
    "margin": _cfg.Float(ge=0),
    "defakehop_size": _cfg.Int(ge=16),
    "patch_size": _cfg.Int(ge=4),
    "compression": COMPRESSION,
})


def run_align_faces(frames_path: str | Path, out_path: str | Path, failures_path: str | Path,
                    params: dict, executor: str = "process", workers: int | None = None,
                    progress: bool = True, compression=None, address: str | None = None,
                    failures: Failures | None = None) -> dict:
    """Align every video of ``frames_path``; returns counts (videos, frames, faces, misses).
    ``failures`` (optional) receives the failures table's rows (and ``items``).

    ``compression`` (or ``params["compression"]``) is the codec of the image fields (see
    :func:`dfdetect.store.compression_kwargs`); gzip level 4 when neither gives one."""
    cfg = AlignConfig.from_params(params)
    frames_path = Path(frames_path)
    failures = Failures(STAGE) if failures is None else failures
    with ShardReader(frames_path) as reader:
        videos = reader.videos()
    failures.items = len(videos)
    tasks = [(str(frames_path), vid, cfg.to_dict()) for vid in videos]
    counts = {"videos": len(videos), "frames": 0, "faces": 0, "misses": 0, "videos_without_face": 0,
              "by_detector": {}}
    if compression is None:
        compression = params.get("compression", {"codec": "gzip", "level": 4, "shuffle": True})
    written = dict(cfg.to_dict(), compression=compression)
    # an interrupted run's finished videos are reused (dfdetect.resume): records keyed by
    # these params, the frames shard's identity (path, size, mtime) and the video id
    with ResumableShard(out_path, STAGE, written, inputs=[frames_path]) as rs:
        with ShardWriter(out_path, stage=STAGE, params=written, default_compression=compression) as writer:
            for (_, vid, _), res, err in rs.imap(align_video_task, tasks, key=lambda task: task[1],
                                                 executor=executor, workers=workers,
                                                 desc=f"{STAGE} {frames_path.name}", progress=progress,
                                                 **({"address": address} if address else {})):
                if err is not None:
                    failures.add_error(vid, err, path=str(frames_path))
                    continue
                counts["frames"] += res["frames"]
                for fi, reason in res["misses"]:
                    failures.add(vid, reason, path=str(frames_path), frame_index=fi, warn=False)
                counts["misses"] += len(res["misses"])
                n = len(res["frame_index"])
                if n == 0:
                    counts["videos_without_face"] += 1
                    failures.add(vid, f"no face in any of its {res['frames']} frames "
                                      f"({cfg.miss_reason()})", path=str(frames_path))
                    continue
                counts["faces"] += n
                for d in res["detector"]:
                    counts["by_detector"][str(d)] = counts["by_detector"].get(str(d), 0) + 1
                writer.add_video(vid, res["frame_index"], attrs=res.get("attrs"),
                                 **{k: res[k] for k in FIELDS})
        failures.write(failures_path)
    counts.update(reused=rs.reused, computed=rs.computed)
    log.info("%s: %d videos, %d frames, %d faces %s, %d frames without a face, %d videos without one",
             STAGE, counts["videos"], counts["frames"], counts["faces"], counts["by_detector"],
             counts["misses"], counts["videos_without_face"])
    return counts
