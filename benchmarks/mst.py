"""MST++ throughput: this project's implementation vs the authors' code, same machine, same run.

    python benchmarks/mst.py [--batch 8] [--size 128] [--rounds 3] [--threads 0]
                             [--official /path/to/MST_Plus_Plus.py | --mirror GIT_DIR]

The authors' architecture file (caiyuanhao1998/MST-plus-plus, train_code/architecture/
MST_Plus_Plus.py) is read at run time from a local git mirror or a path you give; it is never
part of this repository. Both models get the same weights (the authors' state dict is mapped
onto ours by ``load_official_checkpoint``) and the outputs are compared first. Rounds are
interleaved (authors, ours S-MSA, ours FlexiAttention) so machine load hits all of them alike;
the best and median faces/s of each are printed with the ratio, and the load average.
On CUDA (when present) the same comparison runs on the GPU with ``--gpu-batch`` faces per batch
(fp32 and bf16 autocast).

``--engines`` adds the inference engines of the hyperspectral stage (``hyperspectral.engine`` x
``hyperspectral.precision``: torch fp32 / bf16 autocast, OpenVINO fp32 / bf16, each built by
:func:`dfdetect.spectral.reconstruct.make_engine` exactly as the stage builds it), timed in the
same interleaved rounds on FlexiAttention weights, with each engine's max |output - torch fp32|
and its faces/s relative to torch fp32 and to the authors' code.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

DEFAULT_MIRROR = "/work/.mirror/caiyuanhao1998+MST-plus-plus/repo"
ARCH_PATH = "train_code/architecture/MST_Plus_Plus.py"


def load_official(path: str | None, mirror: str | None):
    if path is None:
        git_dir = mirror or DEFAULT_MIRROR
        if not Path(git_dir).exists():
            return None, f"no mirror at {git_dir}"
        src = subprocess.run(["git", "--git-dir", git_dir, "show", f"HEAD:{ARCH_PATH}"],
                             capture_output=True, text=True)
        if src.returncode:
            return None, src.stderr.strip()
        tmp = Path(tempfile.mkdtemp()) / "MST_Plus_Plus.py"
        tmp.write_text(src.stdout)
        path = str(tmp)
    try:
        import einops  # noqa: F401
    except ImportError:  # the file needs only rearrange('b n (h d) -> b h n d')
        shim = types.ModuleType("einops")

        def rearrange(t, pattern, h):
            assert pattern == "b n (h d) -> b h n d", pattern
            b, n, hd = t.shape
            return t.reshape(b, n, h, hd // h).permute(0, 2, 1, 3)

        shim.rearrange = rearrange
        sys.modules["einops"] = shim
    spec = importlib.util.spec_from_file_location("official_mst_plus_plus", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, path


def timed(fn, sync=None):
    t = time.perf_counter()
    fn()
    if sync:
        sync()
    return time.perf_counter() - t


def engines_table(model, x, args, authors_times=None) -> None:
    """faces/s of each (engine, precision) of the hyperspectral stage, interleaved rounds."""
    import numpy as np

    from dfdetect.spectral.reconstruct import make_engine

    xn = x.numpy()
    runs, notes = {}, {}
    for engine in ("torch", "openvino"):
        for precision in ("fp32", "bf16"):
            try:
                runs[f"{engine} {precision}"] = make_engine(model, engine, precision, "cpu",
                                                            args.batch, args.size)
            except ImportError as exc:
                notes[f"{engine} {precision}"] = str(exc)
    ref = runs["torch fp32"](xn)
    err = {k: float(np.abs(r(xn) - ref).max()) for k, r in runs.items()}
    ts: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.rounds):
        for k, r in runs.items():
            ts[k].append(timed(lambda: r(xn)))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"\nhyperspectral engines (Flexi weights), CPU, batch {args.batch}, {args.size}x{args.size}, "
          f"{args.rounds} interleaved rounds:")
    for k, v in ts.items():
        line = (f"  {k:14s} median {args.batch / med(v):6.2f} faces/s  x{med(ts['torch fp32']) / med(v):.2f} "
                f"vs torch fp32")
        if authors_times:
            line += f"  x{med(authors_times) / med(v):.2f} vs authors"
        print(line + f"   max |out - torch fp32| {err[k]:.1e}")
    for k, why in notes.items():
        print(f"  {k:14s} unavailable: {why}")
    print(f"  load average after: {os.getloadavg()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--official", default=None, help="path of the authors' MST_Plus_Plus.py")
    ap.add_argument("--mirror", default=None, help="git dir of a MST-plus-plus mirror")
    ap.add_argument("--gpu-batch", type=int, default=64)
    ap.add_argument("--cpu", action="store_true", help="skip the GPU part even when CUDA is present")
    ap.add_argument("--engines", action="store_true", help="also time the stage's inference engines")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from dfdetect.spectral import mst

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()}")
    off_mod, where = load_official(args.official, args.mirror)
    torch.manual_seed(0)
    ours = mst.build("smsa").eval()
    flexi = mst.build("flexi").eval()
    models = {"ours_smsa": ours, "ours_flexi": flexi}
    print(f"parameters: ours {mst.count_parameters(ours):,} (S-MSA), {mst.count_parameters(flexi):,} (Flexi)")
    fl = mst.count_flops(ours, args.size, args.size)
    fl2 = mst.count_flops(flexi, args.size, args.size)
    print(f"FLOPs per face at {args.size}x{args.size}: S-MSA {fl['gflops']:.2f} G ({fl['gmacs']:.2f} GMACs), "
          f"Flexi {fl2['gflops']:.2f} G ({fl2['gmacs']:.2f} GMACs)")
    if off_mod is None:
        print(f"authors' code unavailable ({where}): timing ours only")
    else:
        off = off_mod.MST_Plus_Plus(in_channels=3, out_channels=31, n_feat=31, stage=3).eval()
        n_off = sum(p.numel() for p in off.parameters())
        with torch.no_grad():
            for name, p in off.named_parameters():
                if "norm" in name or "rescale" in name or "bias" in name:
                    p.add_(0.1 * torch.randn_like(p))
        tmp = Path(tempfile.mkdtemp()) / "mst_plus_plus.pth"
        torch.save({"state_dict": {f"module.{k}": v for k, v in off.state_dict().items()}}, tmp)
        ours = mst.load_official_checkpoint(tmp)
        flexi = mst.load_official_checkpoint(tmp, attention="flexi")
        models = {"authors": off, "ours_smsa": ours, "ours_flexi": flexi}
        x = torch.rand(2, 3, args.size - 3, args.size + 5)
        with torch.no_grad():
            diff = (off(x) - ours(x)).abs().max().item()
        print(f"authors' code: {where}; {n_off:,} parameters; same weights -> max |output diff| {diff:.2e}")

    x = torch.rand(args.batch, 3, args.size, args.size)
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for m in models.values():
            m(x[:2])
        for _ in range(args.rounds):
            for k, m in models.items():
                times[k].append(timed(lambda: m(x)))
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    print(f"\nCPU, fp32, batch {args.batch}, {args.size}x{args.size}, {args.rounds} interleaved rounds:")
    for k, v in times.items():
        print(f"  {k:11s} best {args.batch / min(v):6.2f} faces/s   median {args.batch / med(v):6.2f} faces/s")
    if "authors" in times:
        for k in ("ours_smsa", "ours_flexi"):
            print(f"  speed-up {k} / authors: best {min(times['authors']) / min(times[k]):.2f}x, "
                  f"median {med(times['authors']) / med(times[k]):.2f}x")
    print(f"  load average after: {os.getloadavg()}")
    if args.engines:
        engines_table(flexi, x, args, times.get("authors"))

    if torch.cuda.is_available() and not args.cpu:
        dev = torch.device("cuda")
        print(f"\nGPU: {torch.cuda.get_device_name(0)}, batch {args.gpu_batch}, {args.size}x{args.size}")
        xg = torch.rand(args.gpu_batch, 3, args.size, args.size, device=dev)
        for k, m in models.items():
            m.to(dev)
            for dtype in (None, torch.bfloat16):
                ctx = torch.autocast("cuda", dtype=dtype) if dtype else torch.no_grad()
                with torch.inference_mode(), ctx:
                    for _ in range(3):
                        m(xg)
                    torch.cuda.synchronize()
                    ts = [timed(lambda: m(xg), torch.cuda.synchronize) for _ in range(10)]
                print(f"  {k:11s} {'bf16 autocast' if dtype else 'fp32':13s} "
                      f"{args.gpu_batch / min(ts):9.1f} faces/s (best of 10)")
            m.to("cpu")
    else:
        print("\nGPU: none here (CUDA unavailable); run this script on a GPU machine for the GPU figure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
