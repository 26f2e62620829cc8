"""HyperFake figures: spectral bands 8, 16, 31 of real and fake test faces (hyperfake.txt Fig. 3)
and the learned band weights alpha_i of Eq. 3 (the prior and their mean over the test faces).

Writes metrics/plots/hyperfake_bands.png, metrics/plots/hyperfake_band_weights.png and
metrics/hyperfake_band_weights.csv (wired into `dvc plots`). Example:

    python stages/hyperfake_plots.py --examples 3
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("hyperfake_plots", __doc__, sections=["hyperfake_plots"])
    cli.add("--hsi", default=str(common.HSI))
    cli.add("--faces", default=str(common.FACES))
    cli.add("--manifest", default=str(common.MANIFEST))
    cli.add("--model", default=str(common.MODELS / "hyperfake"))
    cli.add("--out-dir", default=str(common.METRICS / "plots"))
    cli.add("--csv", default=str(common.METRICS / "hyperfake_band_weights.csv"))
    cfg, args = cli.parse(argv)

    import torch  # noqa: PLC0415

    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.detectors.base import DetectorData, get  # noqa: PLC0415
    from dfdetect.spectral import plots  # noqa: PLC0415
    from dfdetect.spectral.cache import HSICache  # noqa: PLC0415
    from dfdetect.store import Store, write_csv_atomic  # noqa: PLC0415

    seed = int(cfg.get("seed", 0))
    data = DetectorData(read_manifest(args.manifest), sources={"hsi": Path(args.hsi)}, seed=seed)
    items = data.items("hsi", str(cfg.get("split", "test")))
    if len(items) == 0:
        items = data.items("hsi")
    ex = plots.pick_examples(items, int(cfg.get("examples", 2)), seed)
    cache = HSICache(args.hsi)
    faces = Store(args.faces) if Path(args.faces).exists() else None
    cubes, rgbs, labels = [], [], []
    for _, r in ex.iterrows():
        cubes.append(cache.read(r.video_id, int(r.row), shard=int(r.shard)).numpy())
        rgb = None
        if faces is not None:
            try:
                rgb = faces.read_item(r.video_id, int(r.frame_index), str(cfg.get("face_field", "face128")))
            except KeyError:
                rgb = None
        rgbs.append(rgb)
        labels.append(f"{'fake' if r.y else 'real'}: {Path(r.video_id).name} #{int(r.frame_index)}")
    out = Path(args.out_dir)
    plots.bands_figure(out / "hyperfake_bands.png", cubes, labels, rgbs, bands=tuple(cfg.get("bands", [8, 16, 31])))
    det = get("hyperfake").load(Path(args.model))
    prior = det.band_weights()
    all_items = data.items("hsi", str(cfg.get("split", "test")))
    sample = all_items.head(int(cfg.get("max_faces", 64)))
    mean = None
    if len(sample):
        batch = torch.stack([cache.read(r.video_id, int(r.row), shard=int(r.shard)) for r in sample.itertuples()])
        mean = det.band_weights(batch)
    plots.band_weights_figure(out / "hyperfake_band_weights.png", prior, mean)
    write_csv_atomic(args.csv, plots.band_weights_table(mean if mean is not None else prior))
    print(f"hyperfake_plots: {len(cubes)} example faces, band weights of {len(sample)} faces -> {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
