"""HyperFake ablations over seeds: what the 31-band MST++ front end adds, on the demo data.

    python benchmarks/hyperfake_ablation.py [--seeds 0 1 2] [--data data] [--models models]
                                            [--epochs 3] [--out metrics/hyperfake_ablation.json]

Three arms, each trained and scored with every seed on the same manifest split (test video AUC,
mean of the frame scores per video; mean +- sd over seeds printed side by side):

- ``rgb``: EfficientNet-B0 on the aligned RGB faces at the cube size (``hyperspectral.size``),
  the paper's RGB baseline at HyperFake's resolution;
- ``linear``: HyperFake on cubes made by the least-squares linear RGB -> 31 map (the map
  train_mst fits, from ``models/mst/linear_map.npy``; clipped to [0, 1]) instead of MST++;
- ``mst``: HyperFake on the MST++ cache (``data/hsi``), as the pipeline runs it.

The ``linear`` cache is written once to a temporary folder by the hyperspectral stage's own
code (:func:`dfdetect.spectral.reconstruct.reconstruct_shard` with a 1 x 1 convolution holding
the map). Every arm uses the detector params of ``params.yaml`` (``models.hyperfake`` /
``models.efficientnet_b0``) with ``--epochs`` and the seed overridden. Needs the demo's
``data/faces``, ``data/hsi``, ``data/manifest.csv`` and ``models/mst`` (``dvc repro`` or copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def linear_cache(faces: Path, out: Path, w: np.ndarray, size: int, field: str) -> Path:
    """An HSI cache of ``clip(rgb @ w)`` cubes for every face shard, written like the stage's."""
    import torch  # noqa: PLC0415

    from dfdetect.spectral.reconstruct import reconstruct_shard  # noqa: PLC0415

    conv = torch.nn.Conv2d(3, w.shape[1], 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32)[:, :, None, None])
    for shard in sorted(faces.glob("shard-*.h5")):
        reconstruct_shard(shard, out / shard.name, conv, size=size, field=field, progress=False,
                          model_info={"variant": "linear-map"})
    return out


def video_auc(det, data) -> float:
    from dfdetect import metrics  # noqa: PLC0415

    scores = det.score(data, "test")
    return float(metrics.evaluate(scores, data.manifest)["video"]["auc"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--data", default=str(REPO / "data"))
    ap.add_argument("--models", default=str(REPO / "models"))
    ap.add_argument("--params", default=str(REPO / "params.yaml"))
    ap.add_argument("--epochs", type=int, default=0, help="0 = params.yaml's")
    ap.add_argument("--arms", nargs="+", default=["rgb", "linear", "mst"])
    ap.add_argument("--out", default="", help="JSON of the results ('' = print only)")
    args = ap.parse_args(argv)

    from dfdetect.data.manifest import read_manifest  # noqa: PLC0415
    from dfdetect.detectors.base import DetectorData, create  # noqa: PLC0415

    params = yaml.safe_load(Path(args.params).read_text())
    hs = params["hyperspectral"]
    size = int(hs.get("size", 64))
    data_dir, models = Path(args.data), Path(args.models)
    manifest = read_manifest(data_dir / "manifest.csv")
    tmp = Path(tempfile.mkdtemp(prefix="hyperfake_ablation_"))
    sources = {"mst": data_dir / "hsi", "rgb": data_dir / "faces"}
    if "linear" in args.arms:
        w = np.load(models / "mst" / "linear_map.npy")
        t = time.process_time()
        sources["linear"] = linear_cache(data_dir / "faces", tmp / "hsi_linear", w, size,
                                         str(hs.get("field", "face128")))
        print(f"linear-map cache: {time.process_time() - t:.1f} CPU s", file=sys.stderr)
    results: dict = {"seeds": args.seeds, "size": size, "arms": {}}
    for arm in args.arms:
        name = "efficientnet_b0" if arm == "rgb" else "hyperfake"
        p = dict(params["models"].get(name, {}))
        if arm == "rgb":
            p["image_size"] = size
        if args.epochs:
            p["epochs"] = args.epochs
        aucs = []
        for seed in args.seeds:
            key = "faces" if arm == "rgb" else "hsi"
            data = DetectorData(manifest, sources={key: sources[arm]}, seed=seed)
            det = create(name, p)
            t = time.process_time()
            det.fit(data)
            aucs.append(video_auc(det, data))
            print(f"{arm} seed {seed}: test video AUC {aucs[-1]:.3f} ({time.process_time() - t:.0f} CPU s)",
                  file=sys.stderr, flush=True)
        results["arms"][arm] = {"auc": aucs, "mean": float(np.mean(aucs)),
                                "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0}
    print(f"HyperFake ablation, test video AUC over seeds {args.seeds} (cube size {size}):")
    for arm, r in results["arms"].items():
        print(f"  {arm:7s} {r['mean']:.3f} +- {r['sd']:.3f}   ({', '.join(f'{a:.3f}' for a in r['auc'])})")
    if args.out:
        from dfdetect.store import write_json_atomic  # noqa: PLC0415

        write_json_atomic(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
