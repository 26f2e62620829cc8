"""Saab (PixelHop++) features of the face patches, for DefakeHop.

Fits one channel-wise PixelHop++ tree per facial region (left eye, right eye, mouth) on the
32x32 patches of TRAIN videos only (at most saab.fit_max_images frames, sampled with the seed),
saves the fitted trees to models/saab/<region>.{npz,json}, then transforms every frame of every
split, face shard by face shard, into data/saab/shard-N.h5 (fields <region>_hop<h>). Frames
whose patches reach outside the video frame are dropped (fit and transform) and listed in the
failures table.
Only the `saab` params section (and the seed) affect this stage, so changing the classifier's
params (models.defakehop) does not rerun it. Example:

    python stages/saab_features.py --max_channels 8 --executor.backend serial
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.data.manifest import read_manifest  # noqa: E402
from dfdetect.saab import features as F  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("saab_features", __doc__, sections=["saab"], shared=common.PER_ITEM)
    cli.add("--faces", default=str(common.FACES), help="face store folder (shard-*.h5)")
    cli.add("--manifest", default=str(common.MANIFEST), help="manifest CSV (splits)")
    cli.add("--out", default=str(common.SAAB), help="Saab feature store folder")
    cli.add("--models", default=str(common.SOURCES["saab_model"]), help="fitted PixelHop folder")
    cli.add("--failures", default=str(common.FAILURES / "saab_features.csv"), help="failures CSV")
    cli.add("--transform-only", action="store_true",
            help="never fit: transform with the trees already in --models (test sets)")
    cfg, args = cli.parse(argv)
    max_ratio = cfg.pop("max_failure_ratio", None)
    executor = cfg.get("executor", {}) or {}
    backend, workers = executor.get("backend", "process"), executor.get("workers")
    t0 = time.perf_counter()
    fitted = "transform only"
    if not args.transform_only:
        info = F.fit(args.faces, read_manifest(args.manifest), args.models, cfg, int(cfg.get("seed", 0)),
                     executor=backend, workers=workers)
        fitted = f"fitted {len(info['regions'])} PixelHop trees on {info['train_frames']} train frames"
    t_fit = time.perf_counter() - t0
    try:
        failures, n_shards = F.transform_store(args.faces, args.out, args.models, cfg,
                                               executor=backend, workers=workers)
    except FileNotFoundError as err:
        print(f"saab_features: {err}", file=sys.stderr)
        return 2
    failures.write(args.failures)
    print(f"saab_features: {fitted} in {t_fit:.1f} s; transformed {n_shards} shards -> {args.out} in "
          f"{time.perf_counter() - t0 - t_fit:.1f} s; {len(failures.rows)} failures", file=sys.stderr)
    if any(r["video_id"] == "*" for r in failures.rows):
        return 1
    return common.failure_guard(cli.parser.prog, failures, max_ratio, args.failures)


if __name__ == "__main__":
    sys.exit(main())
