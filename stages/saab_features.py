"""Saab (PixelHop++) features of the face patches, for DefakeHop.

Fits one channel-wise PixelHop++ tree per facial region (left eye, right eye, mouth) on the
32x32 patches of TRAIN videos only (at most saab.fit_max_images frames, sampled with the seed),
saves the fitted trees to models/saab/<region>.{npz,json}, then transforms every frame of every
split, face shard by face shard, into data/saab/shard-NNN.h5 (fields <region>_hop<h>).
Only the `saab` params section (and the seed) affect this stage, so changing the classifier's
params (models.defakehop) does not rerun it. Example:

    python stages/saab_features.py --max_channels 8 --executor.backend serial
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.data.manifest import read_manifest  # noqa: E402
from dfdetect.failures import Failures  # noqa: E402
from dfdetect.parallel import imap  # noqa: E402
from dfdetect.saab import features as F  # noqa: E402


def _transform(shard: Path, out_dir: Path, model_dir: Path, regions, params, batch_frames, compression):
    out = out_dir / shard.name
    failures = F.transform_shard(shard, out, model_dir, regions, stage_params=params,
                                 batch_frames=batch_frames, compression=compression)
    return failures.rows, failures.items


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("saab_features", __doc__, sections=["saab"], shared=common.PER_ITEM)
    cli.add("--faces", default=str(common.FACES), help="face store folder (shard-*.h5)")
    cli.add("--manifest", default=str(common.MANIFEST), help="manifest CSV (splits)")
    cli.add("--out", default=str(common.SAAB), help="Saab feature store folder")
    cli.add("--models", default=str(common.SOURCES["saab_model"]), help="fitted PixelHop folder")
    cli.add("--failures", default=str(common.FAILURES / "saab_features.csv"), help="failures CSV")
    cfg, args = cli.parse(argv)
    max_ratio = cfg.pop("max_failure_ratio", None)
    seed = int(cfg.get("seed", 0))
    regions = list(cfg.get("regions", F.PATCH_REGIONS))
    t0 = time.perf_counter()
    manifest = read_manifest(args.manifest)
    items = F.train_items(args.faces, manifest, int(cfg.get("fit_max_images", 10000)), seed)
    patches = F.read_patches(args.faces, items)
    executor = cfg.get("executor", {}) or {}
    models = F.fit_region_models(patches, regions, cfg, seed, executor=executor.get("backend", "process"),
                                 workers=executor.get("workers"))
    del patches
    F.save_models(models, args.models)
    t_fit = time.perf_counter() - t0

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("shard-*.h5"):
        stale.unlink()
    shards = sorted(Path(args.faces).glob("shard-*.h5"))
    fn = partial(_transform, out_dir=out_dir, model_dir=Path(args.models), regions=regions,
                 params=cfg, batch_frames=int(cfg.get("batch_frames", 2048)),
                 compression=cfg.get("compression", "none"))
    failures = Failures("saab_features", items=0)
    for shard, result, err in imap(fn, shards, executor=executor.get("backend", "process"),
                                   workers=executor.get("workers"), desc="saab_features"):
        if err is not None:
            failures.add("*", f"shard failed: {type(err).__name__}: {err}", path=str(shard))
        else:
            rows, n_items = result
            failures.rows.extend(rows)
            failures.items += int(n_items or 0)
    failures.write(args.failures)
    print(f"saab_features: fitted {len(regions)} PixelHop trees on {len(items)} train frames in "
          f"{t_fit:.1f} s; transformed {len(shards)} shards -> {out_dir} in "
          f"{time.perf_counter() - t0 - t_fit:.1f} s; {len(failures.rows)} failures",
          file=sys.stderr)
    if any(r["video_id"] == "*" for r in failures.rows):
        return 1
    return common.failure_guard(cli.parser.prog, failures, max_ratio, args.failures)


if __name__ == "__main__":
    sys.exit(main())
