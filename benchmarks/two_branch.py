"""two_branch throughput: images/s for training and inference, beside a plain DenseNet-121.

    python benchmarks/two_branch.py [--size 224] [--batch 2] [--seq-len 8] [--rounds 3]
                                    [--threads 0] [--device auto]

Builds the two_branch network (RGB + Deep LoG branches, grouped fusion, DenseNet-121 trunk,
BiLSTM; random init) and timm's plain ``densenet121`` frame classifier (the paper's Encoder
baseline, the same trunk without the second branch, the LoG and the LSTM). Per round, interleaved
so machine load hits both alike: one training step (forward + backward + Adam with the
per-block parameter groups; hypersphere loss for two_branch, BCE for DenseNet-121) on
``batch`` sequences of ``seq_len`` faces (``batch * seq_len`` images for the DenseNet), and one
no-grad forward of the same images in eval mode. Prints the best and median images/s of each
and the ratio two_branch / DenseNet-121, with the device, threads and load average.

``--device auto`` uses CUDA when present (then ``--batch`` sequences per step; add ``--bf16`` for
bf16 autocast); on CPU the default is the paper's 224 px.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=2, help="sequences per step")
    ap.add_argument("--seq-len", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    args = ap.parse_args(argv)

    import torch

    from dfdetect.nn.losses import hypersphere_loss
    from dfdetect.nn.train import resolve_device
    from dfdetect.nn.two_branch import build
    from dfdetect.nn.weights import create_model

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    net, _ = build({"hub": "false"}, "none", 0)
    dense, _ = create_model("densenet121", "none", num_classes=1, hub="false", seed=0)
    net.to(device), dense.to(device)
    opt_net = torch.optim.Adam(net.param_groups(1e-3), lr=1e-3, weight_decay=1e-6)
    opt_dense = torch.optim.Adam(dense.parameters(), lr=1e-3, weight_decay=1e-6)
    b, f, s = args.batch, args.seq_len, args.size
    x = torch.randn(b, f, 3, s, s, device=device)
    y = (torch.arange(b, device=device) % 2).float()
    yf = y.repeat_interleave(f)
    bce = torch.nn.BCEWithLogitsLoss()
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if args.bf16 and device.startswith("cuda")
           else torch.autocast("cpu", enabled=False))

    def step_net():
        net.train()
        with amp:
            loss = hypersphere_loss(net(x).float(), y, 0.042, 1.638)
        opt_net.zero_grad(set_to_none=True)
        loss.backward()
        opt_net.step()

    def step_dense():
        dense.train()
        with amp:
            loss = bce(dense(x.flatten(0, 1))[:, 0].float(), yf)
        opt_dense.zero_grad(set_to_none=True)
        loss.backward()
        opt_dense.step()

    def infer_net():
        net.eval()
        with torch.no_grad(), amp:
            net(x)

    def infer_dense():
        dense.eval()
        with torch.no_grad(), amp:
            dense(x.flatten(0, 1))

    jobs = {"two_branch train": step_net, "densenet121 train": step_dense,
            "two_branch infer": infer_net, "densenet121 infer": infer_dense}
    for fn in jobs.values():                  # warm-up (allocator, cuDNN, lazy init)
        fn()
    _sync(device)
    rates: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(max(1, args.rounds)):
        for name, fn in jobs.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            rates[name].append(b * f / (time.perf_counter() - t0))
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else ""
    print(f"device {device} {gpu} | threads {torch.get_num_threads()} | {s} px, {b} x {f} images per step"
          f"{' | bf16' if args.bf16 and gpu else ''} | load average {os.getloadavg()[0]:.2f}")
    for name, r in rates.items():
        print(f"{name:20s} best {max(r):8.2f} images/s   median {statistics.median(r):8.2f} images/s")
    for what in ("train", "infer"):
        ratio = statistics.median(rates[f"two_branch {what}"]) / statistics.median(rates[f"densenet121 {what}"])
        print(f"{what}: two_branch / densenet121 = {ratio:.2f}x (median images/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
