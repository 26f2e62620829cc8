"""Ingest an audio dataset into the audio manifest (data/audio_manifest.csv + one per shard).

Layouts: asvspoof2019 (LA, CM protocols, official train/dev/eval -> train/val/test),
asvspoof2021 (LA eval + keys/LA/CM/trial_metadata.txt, all test), itw (In-the-Wild
release_in_the_wild/meta.csv), mlaad (fake/<language>/<model>/meta.csv + M-AILABS bona fide),
generic (CSV path,label[,speaker,split,method,source_id,text] or real/ + fake/ folders),
demo_audio (the embedded audio demo, generic layout). Rows: video_id = file path relative to the
root, label real (bona fide) / fake (spoof), method = attack / TTS / VC system, identity =
(claimed) speaker, source_id = converted speaker, split (speaker-grouped where the dataset has
none), duration (ffprobe), has_audio, text (reference transcript where known). Missing or
unreadable files go to the failures table. Example:

    python stages/ingest_audio.py --layout asvspoof2019 --root /data/LA
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.audio.ingest import ingest_audio, summary  # noqa: E402
from dfdetect.config import StageCLI, num_shards  # noqa: E402
from dfdetect.data.manifest import write_manifest, write_shard_manifests  # noqa: E402
from dfdetect.failures import failed_items  # noqa: E402

LAYOUT_KEYS = ("csv", "partitions", "phases", "keys", "languages", "mailabs")


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("ingest_audio", __doc__, sections=["ingest_audio"], shared=common.PER_ITEM)
    cli.add("--out", default=str(common.AUDIO_MANIFEST), help="audio manifest CSV")
    cli.add("--shard-dir", default=str(common.AUDIO_MANIFEST_SHARDS), help="per-shard manifests")
    cli.add("--failures", default=str(common.FAILURES / "ingest_audio.csv"), help="failures CSV")
    cfg, args = cli.parse(argv)
    options = {k: cfg[k] for k in LAYOUT_KEYS if k in cfg and cfg[k] not in (None, "")}
    if "csv" in cfg:   # csv '' (read back as null) = label by real/ + fake/; a name must exist
        options["csv"] = str(cfg["csv"]) if cfg["csv"] else ""
    executor = cfg.get("executor") or {}
    try:
        df, failures = ingest_audio(cfg.get("layout", "demo_audio"), cfg.get("root", "data/demo_audio"),
                                    probe=bool(cfg.get("probe", True)), seed=int(cfg.get("seed", 0)),
                                    split_fractions=cfg.get("split_fractions", (0.6, 0.2, 0.2)),
                                    executor=executor.get("backend", "process"),
                                    workers=executor.get("workers"),
                                    follow_external_symlinks=cfg.get("follow_external_symlinks", False),
                                    **options)
    except ValueError as err:   # LayoutError (wrong root, missing CSV) or a bad param value
        print(f"ingest_audio: {err}", file=sys.stderr)
        return 2
    shards = num_shards(cfg)
    write_manifest(df, args.out)
    write_shard_manifests(df, args.shard_dir, shards)
    failures.write(args.failures)
    print(f"ingest_audio: {cfg.get('layout')} {cfg.get('root')} -> {args.out}", file=sys.stderr)
    print(summary(df, failures), file=sys.stderr)
    if df.empty:
        print("ingest_audio: no usable audio; see the failures table", file=sys.stderr)
        return 1
    failures.items = len(df) + len(set(failed_items(failures.rows)) - set(df["video_id"]))
    return common.failure_guard(cli.parser.prog, failures, cfg.get("max_failure_ratio"), args.failures)


if __name__ == "__main__":
    sys.exit(main())
