"""Reconstruct 31-band hyperspectral cubes of every aligned face with frozen MST++ (one shard).

Reads data/faces/shard-N.h5 (field `hyperspectral.field`, resized to `hyperspectral.size`),
runs the MST++ variant `hyperspectral.variant` trained by train_mst (models/mst/mst_<variant>.pt)
or an official MST++ checkpoint (`hyperspectral.checkpoint`: the authors' mst_plus_plus.pth, or a
folder holding one; the default folder data/mst_checkpoint holds only a README) in batches with
the inference engine `hyperspectral.engine` (torch, on the GPU when present with `device: auto`,
or openvino on the CPU) at `hyperspectral.precision` (fp32; bf16 opt-in), clips the cubes to
[0, 1] and writes data/hsi/shard-N.h5: float16
31 x H x W per face, one HDF5 chunk per face, lossless compression, per-band statistics.
Only the `hyperspectral` params section and the MST++ weights affect this stage: changing a
classifier's params (models.hyperfake) never reruns it. Example:

    python stages/hyperspectral.py --shard 0 --size 128 --batch_size 32
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.failures import Failures  # noqa: E402
from dfdetect.store import shard_path  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("hyperspectral", __doc__, sections=["hyperspectral"], shared=common.PER_ITEM)
    cli.add("--shard", type=int, required=True, help="shard index")
    cli.add("--faces", default=str(common.FACES), help="face store folder")
    cli.add("--models", default=str(common.SOURCES["mst"]), help="train_mst's model folder")
    cli.add("--out", default=str(common.HSI), help="HSI cache folder")
    cli.add("--failures", default=None, help="failures CSV (default data/failures/hyperspectral/shard-N.csv)")
    cfg, args = cli.parse(argv)
    max_ratio = cfg.pop("max_failure_ratio", None)

    import torch  # noqa: PLC0415

    from dfdetect.spectral import mst  # noqa: PLC0415
    from dfdetect.spectral.reconstruct import reconstruct_shard, resolve_checkpoint  # noqa: PLC0415

    device = str(cfg.get("device", "auto"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    variant = str(cfg.get("variant", "flexi"))
    ckpt = resolve_checkpoint(str(cfg.get("checkpoint") or ""))
    if ckpt is not None:
        model = mst.load_official_checkpoint(ckpt, attention=variant)
        weights = Path(ckpt)
    else:
        weights = Path(args.models) / f"mst_{variant}.pt"
        model = mst.load_weights(weights)
    info = {"variant": variant, "weights": str(weights),
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()[:16],
            "parameters": mst.count_parameters(model)}
    failures = Failures("hyperspectral")
    faces = shard_path(args.faces, args.shard)
    out = shard_path(args.out, args.shard)
    t0 = time.perf_counter()
    summary = reconstruct_shard(faces, out, model, size=int(cfg.get("size", 64)),
                                batch_size=int(cfg.get("batch_size", 8)),
                                field=str(cfg.get("field", "face128")), device=device,
                                params=cfg, model_info=info, codec=cfg.get("codec"),
                                failures=failures, engine=str(cfg.get("engine", "torch")),
                                precision=str(cfg.get("precision", "fp32")),
                                threads=int(cfg.get("threads", 0) or 0))
    fail_path = args.failures or shard_path(common.FAILURES / "hyperspectral", args.shard, ".csv")
    failures.write(fail_path)
    print(f"hyperspectral shard {args.shard}: {summary['faces']} faces of {summary['videos']} videos "
          f"-> {out} in {time.perf_counter() - t0:.1f} s ({summary['faces_per_s']:.2f} faces/s on "
          f"{device}, {summary['engine']} {summary['precision']}); {len(failures)} failures", file=sys.stderr)
    return common.failure_guard(cli.parser.prog, failures, max_ratio, fail_path)


if __name__ == "__main__":
    sys.exit(main())
