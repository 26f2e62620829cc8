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

from dfdetect.config import StageCLI, load_params, num_shards, section  # noqa: E402
from dfdetect.data.ingest import ingest, summary  # noqa: E402
from dfdetect.data.layouts import all_options  # noqa: E402
from dfdetect.data.manifest import write_manifest, write_shard_manifests  # noqa: E402
from dfdetect.failures import failed_items  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    common.setup()
    test_set = common.probe_flag(argv, "--set")
    sets = [f"test_sets.{test_set}"] if test_set else []
    paths = common.set_paths(test_set) if test_set else {
        "manifest": common.MANIFEST, "manifest_shards": common.MANIFEST_SHARDS,
        "failures": common.FAILURES}
    cli = StageCLI("ingest", __doc__, sections=["ingest", *sets, "executor"], shared=common.PER_ITEM)
    cli.add("--set", default=None, help="ingest test set NAME (params test_sets.NAME over the "
            "ingest params) into data/sets/NAME/")
    cli.add("--out", default=str(paths["manifest"]), help="manifest CSV")
    cli.add("--shard-dir", default=str(paths["manifest_shards"]), help="per-shard manifests folder")
    cli.add("--failures", default=str(paths["failures"] / "ingest.csv"), help="failures table CSV")
    cfg, args = cli.parse(argv)
    if test_set and not section(load_params(args.params), f"test_sets.{test_set}"):
        print(f"ingest: no test set {test_set!r} in params test_sets", file=sys.stderr)
        return 2
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
                              checksum=bool(cfg.get("checksum", True)),
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
    failures.items = len(df) + len(set(failed_items(failures.rows)) - set(df["video_id"]))
    return common.failure_guard(cli.parser.prog, failures, cfg.get("max_failure_ratio"), args.failures)


if __name__ == "__main__":
    sys.exit(main())
