"""metric_learning.txt Figs. 5-6: a seeded t-SNE of test face embeddings before (the frozen
face-recognition embeddings, data/face_emb) and after the trained triplet head.

Writes metrics/plots/triplet_tsne.png (two panels, real vs fake) and metrics/triplet_tsne.csv
(embedding, x, y, label, video_id, frame_index; wired into `dvc plots`). Example:

    python stages/triplet_plots.py --detector triplet_rf --max_faces 200
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("triplet_plots", __doc__, sections=["triplet_plots"])
    cli.add("--face-emb", default=str(common.FACE_EMB))
    cli.add("--manifest", default=str(common.MANIFEST))
    cli.add("--models", default=str(common.MODELS), help="folder of the trained detectors")
    cli.add("--png", default=str(common.METRICS / "plots" / "triplet_tsne.png"))
    cli.add("--csv", default=str(common.METRICS / "triplet_tsne.csv"))
    cfg, args = cli.parse(argv)

    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.detectors.base import DetectorData, ModelLoadError, get  # noqa: PLC0415
    from dfdetect.detectors.metric_learning import tsne_plot, tsne_table  # noqa: PLC0415
    from dfdetect.store import write_csv_atomic  # noqa: PLC0415

    name = str(cfg.get("detector", "triplet_sgd"))
    seed = int(cfg.get("seed", 0))
    try:
        det = get(name).load(Path(args.models) / name)
    except ModelLoadError as exc:
        print(f"{cli.parser.prog}: {exc}", file=sys.stderr)
        return 2
    data = DetectorData(read_manifest(args.manifest), sources={"face_emb": Path(args.face_emb)}, seed=seed)
    split = str(cfg.get("split", "test"))
    try:
        table = tsne_table(det, data, split, int(cfg.get("max_faces", 400)), float(cfg.get("perplexity", 30.0)),
                           seed)
    except ValueError as exc:
        print(f"{cli.parser.prog}: {exc}", file=sys.stderr)
        return 2
    tsne_plot(table, args.png, title=f"{name}: {split} faces, t-SNE (seed {seed})")
    write_csv_atomic(args.csv, table)
    print(f"triplet_plots: t-SNE of {len(table) // 2} {split} faces -> {args.png}, {args.csv}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
