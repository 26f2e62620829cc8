"""Sample frames of every video of one manifest shard into data/frames/shard-N.h5.

Reads data/manifest/shard-N.csv, picks exact frame indices per video (strategy uniform |
every_k | fps | all, spread over the whole video), decodes only what those frames need (seeks
only where a keyframe lies between wanted frames) and writes RGB uint8 frames in display
orientation (rotated phone videos turned upright), one compressed HDF5 chunk per frame, with video
attrs fps/width/height (displayed size)/n_frames; long videos stream through the shard in bounded
memory. Videos that are missing,
corrupt, truncated or have zero frames go to data/failures/sample_frames/shard-N.csv; the
stage finishes the rest. Executor settings come from the params `executor` section.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.store import shard_path  # noqa: E402
from dfdetect.video.sample import sample_shard  # noqa: E402

EXECUTOR_KEYS = ("backend", "workers", "address")


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("sample_frames", __doc__, sections=["sample_frames", "executor"], shared=common.PER_ITEM)
    cli.add("--shard", type=int, required=True, help="shard number N (data/manifest/shard-N.csv)")
    cli.add("--manifest-dir", default=str(common.MANIFEST_SHARDS), help="per-shard manifests")
    cli.add("--out-dir", default=str(common.FRAMES), help="frame shards")
    cli.add("--failures-dir", default=str(common.FAILURES / "sample_frames"), help="failure tables")
    cfg, args = cli.parse(argv)
    params = {k: v for k, v in cfg.items() if k not in EXECUTOR_KEYS + common.PER_ITEM}
    table = shard_path(args.failures_dir, args.shard, ".csv")
    failures = sample_shard(shard_path(args.manifest_dir, args.shard, ".csv"),
                            shard_path(args.out_dir, args.shard), table,
                            params, executor=str(cfg.get("backend", "process")), workers=cfg.get("workers"),
                            address=cfg.get("address") or None)
    return common.failure_guard(cli.parser.prog, failures, cfg.get("max_failure_ratio"), table)


if __name__ == "__main__":
    sys.exit(main())
