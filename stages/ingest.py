"""Ingest a dataset into the manifest: one row per video (id, label, method, quality, split,
identity, fps, frames, duration, size, audio).

Layouts: ffpp (FaceForensics++ incl. DeepFakeDetection, official splits), celebdf (v1/v2,
List_of_testing_videos.txt), uadfv (seeded 80/20), dfdc (dfdc_train_part_*/metadata.json),
generic (labels CSV, real/ + fake/ folders, or a flat folder of one --label), demo (the embedded
demo, generic layout). --use all puts every video in the test split (a test-only set). Every
layout option is a flag (--splits_dir, --test_list, --test_labels, --labels_csv, ...); one set
for a layout that does not take it is an error (exit 2).
Writes the manifest, one manifest per shard (sharding.num_shards) and the failures table
(missing, unreadable, corrupt or zero-frame videos), all atomically. Example:

    python stages/ingest.py --layout ffpp --root /data/ffpp --qualities [c23] --out data/manifest.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI, num_shards  # noqa: E402
from dfdetect.data.ingest import ingest, summary  # noqa: E402
from dfdetect.data.layouts import all_options  # noqa: E402
from dfdetect.data.manifest import write_manifest, write_shard_manifests  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("ingest", __doc__, sections=["ingest", "executor"])
    cli.add("--out", default=str(common.MANIFEST), help="manifest CSV")
    cli.add("--shard-dir", default=str(common.MANIFEST_SHARDS), help="per-shard manifests folder")
    cli.add("--failures", default=str(common.FAILURES / "ingest.csv"), help="failures table CSV")
    cfg, args = cli.parse(argv)
    # every layout option that is a param goes to ingest, which refuses one set for a layout
    # that does not take it; an empty flag (--csv "", read back as null) means ''
    options = {}
    for key, default in all_options().items():
        if key in cfg:
            options[key] = ("" if isinstance(default, str) else default) if cfg[key] is None \
                else cfg[key]
    try:
        df, failures = ingest(cfg.get("layout", "generic"), cfg.get("root", "data/demo"),
                              probe=bool(cfg.get("probe", True)), seed=int(cfg.get("seed", 0)),
                              split_fractions=cfg.get("split_fractions", (0.6, 0.2, 0.2)),
                              executor=cfg.get("backend", "process"), workers=cfg.get("workers"),
                              follow_external_symlinks=cfg.get("follow_external_symlinks", False),
                              use=cfg.get("use") or "split", **options)
    except ValueError as err:   # LayoutError (wrong root, unknown layout) or a bad param value
        print(f"ingest: {err}", file=sys.stderr)
        return 2
    shards = num_shards(cfg)
    write_manifest(df, args.out)
    write_shard_manifests(df, args.shard_dir, shards)
    failures.write(args.failures)
    print(f"ingest: {cfg.get('layout')} {cfg.get('root')} -> {args.out} ({shards} shards in "
          f"{args.shard_dir}), failures -> {args.failures}", file=sys.stderr)
    print(summary(df, failures), file=sys.stderr)
    if df.empty:
        print("ingest: no usable video; see the failures table", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
