"""Train MST++ (baseline S-MSA and FlexiAttention) for HyperFake's RGB -> 31-band step.

Data: ARAD-1K / NTIRE 2022 (official train / valid lists, streamed from disk a batch at a time)
when the folder `train_mst.arad_root` (a dvc.yaml dependency, default data/arad) holds it; while
that folder holds nothing but its README (or the param is ""), physically based synthetic
spectral scenes rendered from colour-science's measured reflectances, illuminants and camera
sensitivities through a camera pipeline (white balance, sRGB, noise, JPEG:
dfdetect.spectral.scenes), with a held-out split of unseen materials. Every variant in
`train_mst.variants` is trained in the same run with the same data, seed and schedule (Adam,
cosine decay; `loss`, `init`: from scratch or from the least-squares linear map) and evaluated on
the held-out split (MRAE, RMSE, PSNR) beside the two baselines it must beat: the constant mean
training spectrum and the least-squares linear RGB -> 31 map.

Writes models/mst/mst_<variant>.pt (state dict + config; torch.load(weights_only=True)),
models/mst/linear_map.npy (the baseline's 3 x 31 map), models/mst/config.json and metrics/mst.json. Which variant the hyperspectral stage uses is
`hyperspectral.variant`. Example:

    python stages/train_mst.py --steps 400 --scenes.size 128
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

from dfdetect.config import StageCLI  # noqa: E402
from dfdetect.store import write_json_atomic, write_text_atomic  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    common.setup()
    cli = StageCLI("train_mst", __doc__, sections=["train_mst"])
    cli.add("--out", default=str(common.SOURCES["mst"]), help="model folder")
    cli.add("--metrics", default=str(common.METRICS / "mst.json"), help="metrics JSON")
    cli.add("--live", default=str(common.METRICS / "train" / "mst"), help="DVCLive folder ('' = off)")
    cfg, args = cli.parse(argv)

    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415

    from dfdetect.spectral import arad, mst, scenes, train  # noqa: PLC0415

    seed = int(cfg.get("seed", 0))
    threads = int(cfg.get("threads", 0) or 0)
    if threads:
        torch.set_num_threads(threads)
    device = str(cfg.get("device", "cpu"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    root = arad.configured_root(str(cfg.get("arad_root") or ""))
    sc = cfg.get("scenes", {}) or {}
    if root:
        lim = cfg.get("arad", {}) or {}
        tr = arad.ARADPairs(root, "train", int(lim.get("limit_train", 0)), int(lim.get("size", 0)))
        va = arad.ARADPairs(root, "valid", int(lim.get("limit_valid", 0)), int(lim.get("size", 0)))
        data = {"source": "arad-1k (streamed)", "root": str(root), "train_scenes": len(tr),
                "heldout_scenes": len(va)}
    else:
        size = int(sc.get("size", 64))
        frac = float(sc.get("holdout_fraction", 0.2))
        noise = float(sc.get("noise", 0.01))
        render = str(sc.get("render", "camera"))
        jpeg = tuple(int(q) for q in sc.get("jpeg", [70, 95]))
        tr = train.as_pairs(*scenes.make_scenes(int(sc.get("train", 32)), size, seed, "train", frac,
                                                noise, render=render, jpeg=jpeg))
        va = train.as_pairs(*scenes.make_scenes(int(sc.get("heldout", 8)), size, seed, "heldout", frac,
                                                noise, render=render, jpeg=jpeg))
        lib = scenes.library()
        data = {"source": "synthetic (colour-science measured spectra)", "size": size,
                "render": render, "jpeg_quality": list(jpeg),
                "train_scenes": len(tr), "heldout_scenes": len(va),
                "reflectances": len(lib.reflectances), "illuminants": list(lib.illuminant_names),
                "cameras": list(lib.camera_names), "holdout_fraction": frac}
    eps = float(cfg.get("mrae_eps", 1e-3))
    linear = train.fit_linear_map(tr, seed=seed)
    base = train.baselines(tr, va, eps=eps, seed=seed, linear=linear)
    t_data = time.perf_counter() - t0

    logger = None
    if args.live:
        from dvclive import Live  # noqa: PLC0415

        logger = Live(dir=args.live, dvcyaml=None, save_dvc_exp=False, report=None)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {"data": data, "baselines": base, "variants": {}}
    init_mode = str(cfg.get("init", "linear"))
    size_flops = int(cfg.get("flops_size", 128))
    for variant in cfg.get("variants", ["smsa", "flexi"]):
        torch.manual_seed(seed)
        untrained = mst.build(variant, int(cfg.get("flexi_factor", 2)))
        if init_mode == "linear":   # "untrained" is then the linear map itself, as training starts
            train.init_linear(untrained, linear)
        before = train.evaluate(untrained, va, batch_size=int(cfg.get("batch_size", 4)), eps=eps,
                                device=device)
        model, summary = train.train(
            tr, attention=variant, flexi_factor=int(cfg.get("flexi_factor", 2)),
            steps=int(cfg.get("steps", 40)), batch_size=int(cfg.get("batch_size", 4)),
            lr=float(cfg.get("lr", 4e-4)), min_lr=float(cfg.get("min_lr", 1e-6)),
            eps=float(cfg.get("mrae_eps", 1e-3)), seed=seed, crop=int(cfg.get("crop", 0)),
            device=device, val=va, eval_every=int(cfg.get("eval_every", 0)),
            logger=logger, prefix=f"{variant}/", loss=str(cfg.get("loss", "mrae")),
            init=linear if init_mode == "linear" else None)
        final = train.evaluate(model, va, batch_size=int(cfg.get("batch_size", 4)), eps=eps,
                               device=device)
        mst.save_weights(model.cpu(), out_dir / f"mst_{variant}.pt", extra={"trained_on": data["source"]})
        results["variants"][variant] = {
            "heldout": {k: final[k] for k in ("mrae", "rmse", "psnr")},
            "heldout_untrained": {k: before[k] for k in ("mrae", "rmse", "psnr")},
            "psnr_minus_linear_map_db": final["psnr"] - base["linear_map"]["psnr"],
            "psnr_minus_mean_spectrum_db": final["psnr"] - base["mean_spectrum"]["psnr"],
            "loss": summary["loss"], "init": summary["init"],
            "history": summary["history"], "train_seconds": round(summary["train_seconds"], 2),
            "steps": summary["steps"], "batch_size": summary["batch_size"],
            **train.describe(model.cpu(), size_flops)}
    if logger is not None:
        logger.end()
    v = results["variants"]
    if "smsa" in v and "flexi" in v:
        results["flexi_minus_smsa"] = {
            "psnr_db": v["flexi"]["heldout"]["psnr"] - v["smsa"]["heldout"]["psnr"],
            "mrae": v["flexi"]["heldout"]["mrae"] - v["smsa"]["heldout"]["mrae"],
            "gflops_ratio": v["flexi"]["gflops"] / v["smsa"]["gflops"]}
    results["data_seconds"] = round(t_data, 2)
    # the linear baseline's map, for ablations (benchmarks/hyperfake_ablation.py); atomic write
    tmp = out_dir / "linear_map.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, linear.astype(np.float64))
    tmp.replace(out_dir / "linear_map.npy")
    write_json_atomic(args.metrics, results)
    write_text_atomic(out_dir / "config.json", json.dumps(
        {"variants": sorted(v), "params": cfg, "data": data}, indent=2, sort_keys=True, default=str) + "\n")
    print(f"train_mst baselines: mean spectrum {base['mean_spectrum']['psnr']:.2f} dB, linear map "
          f"{base['linear_map']['psnr']:.2f} dB", file=sys.stderr)
    print("train_mst: " + "; ".join(f"{k}: held-out MRAE {r['heldout']['mrae']:.4f}, "
                                    f"PSNR {r['heldout']['psnr']:.2f} dB ({r['train_seconds']:.0f} s)"
                                    for k, r in v.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
