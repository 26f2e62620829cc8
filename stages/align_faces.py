"""Detect, landmark and align the largest face of every sampled frame of one shard.

Reads data/frames/shard-N.h5 (field `frame`), writes data/faces/shard-N.h5 with, for each
frame where a face was found: `face` (aligned by similarity transform, face_size x face_size),
`box` (x0, y0, x1, y1, full frame), `landmarks` (68 x 2, full frame), `detector` (which one
found it), `face128` (DefakeHop alignment) and `patches` (3 x 32 x 32: left eye, right eye,
mouth). Frames and videos without a face go to data/failures/align_faces/shard-N.csv.
Detection runs on the frame downscaled to detect_max_side; landmarks at full resolution; the
fallback detector is tried when the first finds no face. Parallel over videos (executor section).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from dfdetect.failures import Failures  # noqa: E402
from dfdetect.faces.stage import run_align_faces  # noqa: E402
from dfdetect.store import shard_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    from dfdetect.config import StageCLI  # noqa: PLC0415

    cli = StageCLI("align_faces", __doc__, sections=["align_faces", "executor"], shared=common.PER_ITEM)
    cli.add("--shard", type=int, required=True, help="shard number N (data/frames/shard-N.h5)")
    cli.add("--frames-dir", default=str(common.FRAMES), help="directory of the frames shards")
    cli.add("--out-dir", default=str(common.FACES), help="directory of the faces shards")
    cli.add("--failures-dir", default=str(common.FAILURES / "align_faces"),
            help="directory of the per-shard failures tables")
    cfg, args = cli.parse(argv)
    run, max_ratio = common.pop_executor(cfg)
    table = shard_path(args.failures_dir, args.shard, ".csv")
    failures = Failures("align_faces")
    run_align_faces(shard_path(args.frames_dir, args.shard), shard_path(args.out_dir, args.shard),
                    table, cfg, failures=failures, **run)
    return common.failure_guard(cli.parser.prog, failures, max_ratio, table)


if __name__ == "__main__":
    sys.exit(main())
