"""Cost of the detectors' NaN/inf check (``InputChecks.check``) against reading the same arrays
from the store, measured side by side in one run (goal: cheap, a small fraction of the read).

    python benchmarks/nonfinite_check.py [--videos 250] [--frames 32] [--repeat 3]

Writes a temporary Saab-like store (gzip-compressed float32 hop 1 and hop 2 responses, 15x15x10
and 7x7x10 per frame, the saab_features layout), reads each field for every item as DefakeHop
does, and checks the arrays just read; prints the best of ``--repeat`` times and their ratio,
and the load average (the machine may be shared: compare ratios, not absolutes).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=250)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from dfdetect.detectors.base import InputChecks
    from dfdetect.detectors.defakehop import DefakeHop
    from dfdetect.store import ShardWriter, Store

    rng = np.random.default_rng(0)
    shapes = {"mouth_hop1": (15, 15, 10), "mouth_hop2": (7, 7, 10)}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with ShardWriter(root / "shard-0.h5", stage="saab_features") as w:
            for v in range(args.videos):
                w.add_video(f"v{v:05d}", np.arange(args.frames),
                            **{k: rng.random((args.frames, *s), dtype=np.float32) for k, s in shapes.items()})
        store = Store(root)
        items = store.index().assign(split="train")
        for field in shapes:
            read, check = float("inf"), float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                x = DefakeHop._read_field(store, items, field)
                read = min(read, time.perf_counter() - t)
                t = time.perf_counter()
                bad = InputChecks().check(items, x, field, root)
                check = min(check, time.perf_counter() - t)
            assert not bad.any()
            print(f"{field}: {len(items)} rows x {x[0].size} float32: read {1e3 * read:.1f} ms, "
                  f"check {1e3 * check:.2f} ms, check/read {check / read:.3f}")
        store.close()
    print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
