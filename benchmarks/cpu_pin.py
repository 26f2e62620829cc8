"""Cost of the CPU dispatch pin (dfdetect.determinism, applied by stages/common.py), side by side.

    python benchmarks/cpu_pin.py [--repeats 3] [--only demo,mst,saab,whisper,minilm]

Each workload is one slice of an expensive cache, run in a fresh process (the pin must be in the
environment before numpy/cv2/torch are imported) with the pin (AVX2+FMA3, IPP off, MKL in its
COMPATIBLE branch), without it (DFDETECT_PIN_CPU=0: each library's native dispatch), and with the
pin but MKL in its AVX2 branch (the pin before 2026-12-03; honoured on Intel only, AUTO on AMD),
in turn, ``--repeats`` times each:

- ``demo``: make_demo for 2 identities, 1 clip of 1 s each (render, face swap, reenactment,
  x264 + AAC), serial;
- ``mst``: MST++ (FlexiAttention) forward over 16 faces of 64 x 64 (hyperspectral);
- ``saab``: one Saab fit + transform of 20,000 flattened 3x3x3 patches (saab_features);
- ``whisper``: Whisper tiny.en encoder over one 30 s log-mel (transcribe);
- ``minilm``: all-MiniLM-L6-v2 features of 64 sentences (DADA's text branch).

Prints the median seconds of each, the pinned/native and pinned/(pin with MKL AVX2) ratios, and
whether pinned and native give the same bytes on this machine (on an AVX-512 machine they should
not: that difference is what the pin removes). The machine may be shared: compare the ratios of one run, not absolutes.
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
import os
os.environ.update(json.loads(sys.argv[3]))      # variables set over the pin (MKL's old branch)
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
elif name == "minilm":
    import torch
    from dfdetect.text.encoder import TextEncoder
    enc = TextEncoder("packaged").eval()
    texts = [f"Sentence number {i} says that the weather in city {i % 7} was {'fine' if i % 2 else 'wet'}."
             for i in range(64)]
    enc.features(texts[:4])
    t = time.perf_counter()
    f = enc.features(texts)
    dt = time.perf_counter() - t
    digest = h(np.ascontiguousarray(f).tobytes())
print(json.dumps({"seconds": dt, "digest": digest}))
"""


MODES = {"native": ("0", {}), "pinned": ("1", {}), "mkl_avx2": ("1", {"MKL_CBWR": "AVX2"})}


def run_one(name: str, mode: str) -> dict:
    switch, over = MODES[mode]
    env = dict(os.environ)
    env["DFDETECT_PIN_CPU"] = switch
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run = subprocess.run([sys.executable, "-c", WORKER, str(ROOT / "stages"), name, json.dumps(over)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"{name} ({mode}) failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="demo,mst,saab,whisper,minilm")
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'workload':9s} {'native s':>9s} {'pinned s':>9s} {'ratio':>6s} {'MKL AVX2 s':>10s} "
          f"{'ratio':>6s}  same bytes pinned/native")
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        res: dict[str, list[dict]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                res[mode].append(run_one(name, mode))
        med = {m: statistics.median(r["seconds"] for r in res[m]) for m in res}
        digests = {m: {r["digest"] for r in res[m]} for m in res}
        stable = all(len(d) == 1 for d in digests.values())
        same = "yes" if digests["pinned"] == digests["native"] else "no"
        print(f"{name:9s} {med['native']:9.3f} {med['pinned']:9.3f} {med['pinned'] / med['native']:6.2f} "
              f"{med['mkl_avx2']:10.3f} {med['pinned'] / med['mkl_avx2']:6.2f}  {same}"
              f"{'' if stable else '  (UNSTABLE between repeats)'}", flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
