"""Extract 16 kHz mono audio of one shard into data/audio/shard-N.h5.

Reads data/audio_manifest/shard-N.csv (audio datasets) and data/manifest/shard-N.csv (the
video manifest: only videos with an audio track) and decodes every item with ffmpeg to mono
float32 at sample_rate Hz (at most max_seconds). Per item the shard holds field `wave` (1, T)
and attrs sample_rate, duration, rms, source (audio | video), truncated. Missing, corrupt,
empty (shorter than min_seconds) and silent (RMS below min_rms) items go to
data/failures/extract_audio/shard-N.csv with the reason; the stage finishes the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.audio.extract import extract_shard  # noqa: E402
from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.store import shard_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("extract_audio", __doc__, sections=["extract_audio"], shared=common.PER_ITEM)
    cli.add("--shard", type=int, required=True, help="shard number N")
    cli.add("--audio-manifest-dir", default=str(common.AUDIO_MANIFEST_SHARDS),
            help="per-shard audio manifests")
    cli.add("--video-manifest-dir", default=str(common.MANIFEST_SHARDS),
            help="per-shard video manifests ('' to skip videos)")
    cli.add("--out-dir", default=str(common.AUDIO), help="audio shards")
    cli.add("--failures-dir", default=str(common.FAILURES / "extract_audio"), help="failure tables")
    cfg, args = cli.parse(argv)
    executor = cfg.pop("executor", None) or {}
    params = {k: v for k, v in cfg.items() if k not in common.PER_ITEM}
    video = shard_path(args.video_manifest_dir, args.shard, ".csv") if args.video_manifest_dir else None
    table = shard_path(args.failures_dir, args.shard, ".csv")
    failures = extract_shard(shard_path(args.audio_manifest_dir, args.shard, ".csv"), video,
                             shard_path(args.out_dir, args.shard), table, params,
                             executor=str(executor.get("backend", "process")),
                             workers=executor.get("workers"))
    print(f"extract_audio: shard {args.shard}: {len(failures)} failure row(s)", file=sys.stderr)
    return common.failure_guard(cli.parser.prog, failures, cfg.get("max_failure_ratio"), table)


if __name__ == "__main__":
    sys.exit(main())
