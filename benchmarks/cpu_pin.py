"""Cost of the CPU dispatch pin (dfdetect.determinism, applied by stages/common.py), side by side.

    python benchmarks/cpu_pin.py [--repeats 3] [--only demo,mst,saab,whisper]

Each workload is one slice of an expensive cache, run in a fresh process (the pin must be in the
environment before numpy/cv2/torch are imported) with the pin (AVX2+FMA3, IPP off) and without it
(DFDETECT_PIN_CPU=0: each library's native dispatch), alternating, ``--repeats`` times each:

- ``demo``: make_demo for 2 identities, 1 clip of 1 s each (render, face swap, reenactment,
  x264 + AAC), serial;
- ``mst``: MST++ (FlexiAttention) forward over 16 faces of 64 x 64 (hyperspectral);
- ``saab``: one Saab fit + transform of 20,000 flattened 3x3x3 patches (saab_features);
- ``whisper``: Whisper tiny.en encoder over one 30 s log-mel (transcribe).

Prints the median seconds of each, the pinned/native ratio, and whether the two give the same
bytes on this machine (on an AVX-512 machine they should not: that difference is what the pin
removes). The machine may be shared: compare the ratios of one run, not absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import hashlib, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import common  # noqa: F401  (the pin, unless DFDETECT_PIN_CPU=0)
import numpy as np
name = sys.argv[2]
def h(b): return hashlib.md5(b).hexdigest()[:12]
if name == "demo":
    from dfdetect.data.demo.build import build
    from dfdetect.failures import Failures
    cfg = {"identities": 2, "clips": 1, "seconds": 1.0, "lfw": [1, 18], "split_fractions": [1, 0, 0]}
    out = Path(tempfile.mkdtemp()) / "demo"
    t = time.perf_counter()
    build(out, cfg, 20261125, Failures("make_demo"), executor="serial", progress=False)
    dt = time.perf_counter() - t
    digest = h(b"".join(p.read_bytes() for p in sorted(out.rglob("*.mp4"))))
elif name == "mst":
    import torch
    from dfdetect.spectral import mst
    torch.manual_seed(0)
    net = mst.build("flexi").eval()
    x = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net(x[:2])
        t = time.perf_counter()
        y = torch.cat([net(x[i:i + 8]) for i in range(0, 16, 8)])
        dt = time.perf_counter() - t
    digest = h(y.numpy().tobytes())
elif name == "saab":
    from dfdetect.saab.saab import Saab
    x = np.random.default_rng(0).random((20000, 27)).astype(np.float32)
    t = time.perf_counter()
    s = Saab().fit(x)
    y = s.transform(x)
    dt = time.perf_counter() - t
    digest = h(np.ascontiguousarray(y).tobytes())
elif name == "whisper":
    import torch, whisper
    from dfdetect.audio.whisper_engine import packaged_checkpoint
    m = whisper.load_model(str(packaged_checkpoint()), device="cpu")
    wave = (np.sin(np.arange(16000 * 30) * 0.05) * 0.1).astype(np.float32)
    t = time.perf_counter()
    with torch.no_grad():
        enc = m.encoder(whisper.log_mel_spectrogram(torch.from_numpy(wave))[None])
    dt = time.perf_counter() - t
    digest = h(enc.numpy().tobytes())
print(json.dumps({"seconds": dt, "digest": digest}))
"""


def run_one(name: str, pinned: bool) -> dict:
    env = dict(os.environ)
    env["DFDETECT_PIN_CPU"] = "1" if pinned else "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run = subprocess.run([sys.executable, "-c", WORKER, str(ROOT / "stages"), name], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"{name} ({'pinned' if pinned else 'native'}) failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="demo,mst,saab,whisper")
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'workload':9s} {'native s':>9s} {'pinned s':>9s} {'ratio':>6s}  same bytes")
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        res: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(args.repeats):
            for pinned in (False, True):
                res[pinned].append(run_one(name, pinned))
        med = {p: statistics.median(r["seconds"] for r in res[p]) for p in res}
        digests = {p: {r["digest"] for r in res[p]} for p in res}
        stable = len(digests[True]) == 1 and len(digests[False]) == 1
        same = "yes" if digests[True] == digests[False] else "no"
        print(f"{name:9s} {med[False]:9.3f} {med[True]:9.3f} {med[True] / med[False]:6.2f}  {same}"
              f"{'' if stable else '  (UNSTABLE between repeats)'}", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
