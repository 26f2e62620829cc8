"""The HSI cache: bytes vs fp32, warm read time per face (float32 tensor), read vs recompute.

    python benchmarks/hsi_cache.py [--weights models/mst/mst_flexi.pt] [--faces 12] [--size 128]

Cubes are real MST++ reconstructions of real face photos (faces shipped by scikit-image and
matplotlib, or data/faces when present) by the trained weights when given, else by MST++ with
random weights (less smooth, so a pessimistic compression case). Every candidate codec is
written with :class:`HSIWriter` (one chunk per face, float16) and read back with
:class:`HSICache` on one thread; read times are the median over repeated warm reads (file open,
chunk in the OS page cache). Recompute = MST++ on one face on the CPU, same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BLOSC_NTHREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

CODECS = {
    "none": "none",
    "gzip-4+shuffle": {"codec": "gzip", "level": 4, "shuffle": True},
    "lzf+shuffle": {"codec": "lzf", "shuffle": True},
    "zstd-3 (no shuffle)": {"codec": "zstd", "level": 3},
    "blosc-lz4+shuffle": {"codec": "blosc-lz4", "level": 5, "shuffle": True},
    "blosc-lz4hc+shuffle": {"codec": "blosc-lz4hc", "level": 5, "shuffle": True},
    "blosc-zstd-1+shuffle": {"codec": "blosc-zstd", "level": 1, "shuffle": True},
    "blosc-zstd-3+shuffle": {"codec": "blosc-zstd", "level": 3, "shuffle": True},
    "blosc-zstd-1+bitshuffle": {"codec": "blosc-zstd", "level": 1, "bitshuffle": True},
    "bitshuffle-lz4": {"codec": "bitshuffle-lz4"},
}


def face_photos(n: int, size: int):
    import cv2
    import numpy as np
    from skimage import data as skd

    imgs = [skd.astronaut()[30:230, 140:340]]
    try:
        import matplotlib

        gh = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
        imgs.append(cv2.cvtColor(gh, cv2.COLOR_BGR2RGB)[60:400, 90:430])
    except Exception:  # noqa: BLE001
        pass
    try:
        lfw = skd.lfw_subset()
        imgs.extend((np.clip(f, 0, 1) * 255).astype(np.uint8)[..., None].repeat(3, -1) for f in lfw[: n])
    except Exception:  # noqa: BLE001
        pass
    out = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in imgs]
    # small shifts/flips for more distinct faces
    k = 0
    while len(out) < n:
        out.append(np.ascontiguousarray(np.roll(out[k][:, ::-1], 3 * k + 1, axis=0)))
        k += 1
    return np.stack(out[:n])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="models/mst/mst_flexi.pt")
    ap.add_argument("--faces", type=int, default=12)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--reads", type=int, default=30)
    args = ap.parse_args()
    import numpy as np
    import torch

    from dfdetect.spectral import cache, mst
    from dfdetect.spectral.reconstruct import prepare_faces

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()}; 1 torch thread, BLOSC_NTHREADS={os.environ['BLOSC_NTHREADS']}")
    if Path(args.weights).exists():
        model, what = mst.load_weights(args.weights), f"trained weights {args.weights}"
    else:
        torch.manual_seed(0)
        model, what = mst.build("flexi").eval(), "random MST++ weights (no trained weights found)"
    faces = face_photos(args.faces, args.size)
    x = torch.from_numpy(prepare_faces(faces, args.size))
    t = time.perf_counter()
    with torch.inference_mode():
        cubes = torch.cat([model(x[i:i + 4]) for i in range(0, len(x), 4)]).numpy()
    t_batch = (time.perf_counter() - t) / len(x)
    with torch.inference_mode():
        model(x[:1])
        rec = []
        for _ in range(3):
            t = time.perf_counter()
            model(x[:1])
            rec.append(time.perf_counter() - t)
    t_recompute = min(rec)
    print(f"{len(cubes)} faces {cubes.shape[1:]} from {what}; MST++ on CPU: {1e3 * t_recompute:.0f} ms "
          f"per face alone, {1e3 * t_batch:.0f} ms per face in batches of 4")
    fp32_bytes = cubes[0].size * 4
    tmp = Path(tempfile.mkdtemp())
    rows = []
    for name, codec in CODECS.items():
        d = tmp / name.replace("+", "_").replace(" ", "")
        path = d / "shard-0.h5"
        try:
            with cache.HSIWriter(path, codec=codec) as w:
                w.add("faces.mp4", list(range(len(cubes))), cubes)
        except Exception as exc:  # noqa: BLE001
            print(f"  {name}: unavailable ({exc})")
            continue
        lay = cache.chunk_layout(path, "faces.mp4")
        ratio = lay["stored_bytes"] / (fp32_bytes * len(cubes))
        c = cache.HSICache(d)
        ref = cache.to_fp16(cubes)
        assert all(np.array_equal(c.read_numpy("faces.mp4", i), ref[i]) for i in range(len(cubes)))
        for i in range(len(cubes)):
            c.read("faces.mp4", i)  # warm: file open, chunk index and pages cached
        ts = []
        for r in range(args.reads):
            i = r % len(cubes)
            t = time.perf_counter()
            out = c.read("faces.mp4", i)
            ts.append(time.perf_counter() - t)
        assert out.dtype == torch.float32
        ms = 1e3 * float(np.median(ts))
        c.close()
        rows.append((name, ratio, ms, 1e3 * min(ts)))
    print(f"\n{'codec':26s} {'bytes/fp32':>10s} {'warm read ms (median)':>22s} {'best':>7s}  read vs recompute")
    for name, ratio, ms, best in rows:
        print(f"{name:26s} {ratio:10.3f} {ms:22.3f} {best:7.3f}  {1e3 * t_recompute / ms:8.0f}x")
    default = [r for r in rows if CODECS[r[0]] == cache.DEFAULT_CODEC]
    if default:
        name, ratio, ms, _ = default[0]
        print(f"\ndefault codec {name}: {ratio:.3f} of fp32 bytes, warm read {ms:.3f} ms per face as a float32 "
              f"tensor; cached read {1e3 * t_recompute / ms:.0f}x faster than recomputing one face on CPU")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
