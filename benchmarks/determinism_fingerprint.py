"""Which kernels give this machine's bytes: per-component hashes, compared with other machines.

    python benchmarks/determinism_fingerprint.py                 # compare with the recorded machines
    python benchmarks/determinism_fingerprint.py --record LABEL  # add this machine to the record
    python benchmarks/determinism_fingerprint.py --json          # the hashes only (tests/test_determinism.py)
    python benchmarks/determinism_fingerprint.py --configs       # also torch's parts under each candidate
                                                                 # setting of oneDNN and MKL (CANDIDATES)

One small slice of every expensive cache, computed after ``stages/common.py`` has pinned the CPU
dispatch (as in every stage): demo rendering (an upscaled LFW face: OpenCV resize/GaussianBlur),
x264, face alignment (warpAffine), MTCNN (align_faces' fallback detector: torch convolutions at
one thread), numpy transcendental functions and BLAS (Saab), an MST++ forward (torch: ATen,
oneDNN, MKL), dlib's face descriptor (face_embeddings), two training steps of the Lite0 frame
CNN (also split into forward, one backward, and the steps with oneDNN off), Xception and
two-branch forwards, and the Whisper tiny.en encoder and MiniLM features (transcribe, DADA).
Whole-stage hashes say *that* two machines differ (``dvc.lock``); this says *which* library does.

``benchmarks/fingerprints.json`` holds the hashes of the machines they were recorded on (CPU
model, vendor, flags that matter). A component that differs from a recorded machine is a cache
that teammates on those two machines would not share.

``--configs`` is the tool for the one gap measured so far, Intel against AMD: every torch part
differed between the two machines (README "Determinism across machines"). It reruns the torch
parts in one subprocess per candidate setting of torch's two vendor libraries (oneDNN's ISA cap,
MKL's reproducibility branch; ``CANDIDATES``), each with oneDNN's and MKL's verbose logs on, and
records per part its hash, the oneDNN implementations and MKL calls it ran, and the seconds the
parts took. Recorded on one vendor and run on the other, the table names the setting under which
each part is the same on both, and what it costs.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).resolve().parent / "fingerprints.json"
# one thread everywhere: thread counts change float bytes (README "Determinism across machines"),
# and the hashes must differ between machines only where their kernels do
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
sys.path.insert(0, str(ROOT / "stages"))
import common  # noqa: E402,F401  (pins the CPU dispatch before numpy/cv2/torch are imported)
from dfdetect import determinism  # noqa: E402

FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile")
TORCH_PARTS = ("mtcnn", "mst", "cnn_train_steps", "xception_features", "two_branch", "cnn_forward",
               "cnn_grads", "cnn_adamw_step", "cnn_train_steps_aten", "whisper_encoder",
               "minilm_features")
MARK = "DFDETECT_FINGERPRINT_MARKS"     # set: print "@@ part" before each torch part, "@@ end" after
# candidate settings on top of the pin (stages/common.py), for --configs, each spelled out in full
# so that a record stays comparable when the pin changes. oneDNN's AVX2 convolutions are BRGEMM
# and JIT kernels, some of whose blocking oneDNN derives from the cache sizes it reads (they
# differ between the two machines measured), while at AVX it runs older JIT kernels. MKL honours
# MKL_CBWR=AVX2 only on Intel CPUs (its verbose log says CNR:AUTO on AMD); COMPATIBLE (SSE2
# without rcpps/rsqrtps) is the branch it documents as the same on other vendors. The pin has
# been mkl_compatible since 2026-12-03 (mkl_avx2 before: the Intel record's "pin" entry).
CANDIDATES: dict[str, dict[str, str]] = {
    "mkl_avx2": {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "mkl_compatible": {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "onednn_avx": {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX", "DNNL_MAX_CPU_ISA": "AVX"},
    "onednn_avx_mkl_compatible": {"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX",
                                  "DNNL_MAX_CPU_ISA": "AVX"},
}


def pin_values() -> dict[str, str]:
    """The pin's variables and values (dfdetect.determinism), recorded beside each machine."""
    return {k: v for k, (v, _) in determinism._PINS.items()}


def _pin_change(entry: dict) -> str:
    theirs, ours = entry.get("pin", {}), pin_values()
    return ", ".join(f"{k}={theirs.get(k, 'unset')}" for k in sorted(set(ours) | set(theirs))
                     if theirs.get(k) != ours.get(k))


def pinned_candidate() -> str:
    """The candidate whose settings are the pin's (what the stages run), or ''."""
    pins = pin_values()
    return next((n for n, env in CANDIDATES.items() if all(pins.get(k) == v for k, v in env.items())), "")


def _h(a) -> str:
    import numpy as np  # noqa: PLC0415

    if isinstance(a, Path):
        a = a.read_bytes()
    return hashlib.md5(np.ascontiguousarray(a).tobytes() if isinstance(a, np.ndarray) else a).hexdigest()


def _mark(part: str) -> None:
    if os.environ.get(MARK):
        print(f"@@ {part}", flush=True)


def compute() -> dict:
    """The component hashes (and ``_describe``: what each library dispatched to; ``_seconds``:
    the torch parts' time)."""
    import time  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from dfdetect.data.demo import encode, faces, motion  # noqa: PLC0415
    from dfdetect.data.demo.build import _rng  # noqa: PLC0415

    out: dict = {}
    p = faces.lfw_face(1, 256)
    out["lfw_face"] = _h(p.image)
    clip = motion.render_portrait(p, _rng(7, "real:lfw-001/clip0"), 6, 25.0, 256, "clip0")
    out["render"] = _h(clip.frames)
    tmp = Path(tempfile.mkdtemp())
    encode.encode_video(clip.frames, 25.0, "c23", tmp / "v.mp4")
    out["x264"] = _h(tmp / "v.mp4")
    from dfdetect.faces.align import align_face  # noqa: PLC0415

    out["align"] = _h(np.stack([align_face(f, lm, 112, 0.3)[0]
                                for f, lm in zip(clip.frames[:2], clip.landmarks[:2])]))
    x = np.linspace(0.05, 20.0, 20001)
    out["numpy_math"] = _h(np.stack([np.exp(-x), np.log(x), np.arctan(x), np.log1p(x), np.cbrt(x), x ** 1.3]))
    rng = np.random.default_rng(3)
    a = rng.standard_normal((400, 75))
    out["blas"] = _h(np.linalg.eigh(a.T @ a)[1] @ a.T)
    import torch  # noqa: PLC0415

    from dfdetect.faces.detect import detect_mtcnn  # noqa: PLC0415
    from dfdetect.spectral import mst  # noqa: PLC0415

    t0 = time.perf_counter()
    _mark("mtcnn")
    found = detect_mtcnn(clip.frames[0])
    _mark("end")
    out["mtcnn"] = _h(np.concatenate([np.concatenate([f.box.ravel(), f.points5.ravel(),
                                                      np.float32([f.score])]) for f in found])
                      if found else b"none")
    torch.manual_seed(0)
    net = mst.build("smsa").eval()
    _mark("mst")
    with torch.no_grad():
        out["mst"] = _h(net(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))).numpy())
    _mark("end")
    from dfdetect.faceid.embed import crop_landmarks, dlib_descriptor  # noqa: PLC0415
    from dfdetect.nn import two_branch  # noqa: PLC0415
    from dfdetect.nn.train import deterministic  # noqa: PLC0415
    from dfdetect.nn.weights import create_model  # noqa: PLC0415

    t_torch = time.perf_counter() - t0
    face, _ = align_face(clip.frames[0], clip.landmarks[0], 150, 0.25)
    out["dlib_descriptor"] = _h(dlib_descriptor(face, crop_landmarks(clip.landmarks[0], 150, 0.25)))
    g = torch.Generator().manual_seed(2)
    with deterministic(0, num_threads=1):
        cnn, _ = create_model("efficientnet_lite0", "imagenet", hub=False, seed=0)
        opt = torch.optim.AdamW(cnn.parameters(), lr=1e-3)
        xb, y = torch.rand(2, 3, 64, 64, generator=g), torch.tensor([0.0, 1.0])
        t0 = time.perf_counter()
        _mark("cnn_train_steps")
        for _ in range(2):    # the head starts at zero: the backbone gets gradients from step 2
            opt.zero_grad()
            torch.nn.functional.binary_cross_entropy_with_logits(cnn(xb)[:, 0], y).backward()
            opt.step()
        _mark("end")
        part_seconds = {"cnn_train_steps": time.perf_counter() - t0}
        out["cnn_train_steps"] = _h(torch.cat([q.detach().flatten() for q in cnn.parameters()]).numpy())
        xc, _ = create_model("legacy_xception", "none", hub=False, seed=0)
        _mark("xception_features")
        with torch.no_grad():   # the features: the logit of a zero-initialised head is 0 anywhere
            out["xception_features"] = _h(xc.eval().forward_features(torch.rand(1, 3, 71, 71, generator=g)).numpy())
        _mark("end")
        tb, _ = two_branch.build({"hub": False}, "none", seed=0)
        _mark("two_branch")
        with torch.no_grad():
            out["two_branch"] = _h(tb.eval().embed(torch.rand(1, 2, 3, 32, 32, generator=g)).numpy())
        _mark("end")
        t_torch += time.perf_counter() - t0     # the five parts above: comparable with older records
        # the training steps split up, each from a fresh copy of the same model, so that a
        # difference can be traced to the forward, the backward or the optimiser; and the same
        # steps with oneDNN off (ATen's own convolutions and MKL's GEMMs only)
        cnn, _ = create_model("efficientnet_lite0", "imagenet", hub=False, seed=0)
        _mark("cnn_forward")
        logit = cnn(xb)[:, 0]
        _mark("end")
        out["cnn_forward"] = _h(logit.detach().numpy())
        _mark("cnn_grads")
        cnn.get_classifier().weight.data.fill_(0.01)    # a non-zero head: the first backward reaches every layer
        torch.nn.functional.binary_cross_entropy_with_logits(cnn(xb)[:, 0], y).backward()
        _mark("end")
        out["cnn_grads"] = _h(torch.cat([q.grad.flatten() for q in cnn.parameters() if q.grad is not None]).numpy())
        # one AdamW step from exactly those gradients: the optimiser alone (forward and backward
        # were the same on Intel and AMD, two whole steps were not)
        _mark("cnn_adamw_step")
        torch.optim.AdamW(cnn.parameters(), lr=1e-3).step()
        _mark("end")
        out["cnn_adamw_step"] = _h(torch.cat([q.detach().flatten() for q in cnn.parameters()]).numpy())
        cnn, _ = create_model("efficientnet_lite0", "imagenet", hub=False, seed=0)
        opt = torch.optim.AdamW(cnn.parameters(), lr=1e-3)
        _mark("cnn_train_steps_aten")
        t1 = time.perf_counter()
        with torch.backends.mkldnn.flags(enabled=False):
            for _ in range(2):
                opt.zero_grad()
                torch.nn.functional.binary_cross_entropy_with_logits(cnn(xb)[:, 0], y).backward()
                opt.step()
        part_seconds["cnn_train_steps_aten"] = time.perf_counter() - t1
        _mark("end")
        out["cnn_train_steps_aten"] = _h(torch.cat([q.detach().flatten() for q in cnn.parameters()]).numpy())
        # the audio and text branches' frozen transformers (transcribe, DADA): MKL GEMMs mostly
        import whisper  # noqa: PLC0415

        from dfdetect.audio.whisper_engine import packaged_checkpoint  # noqa: PLC0415
        from dfdetect.text.encoder import TextEncoder  # noqa: PLC0415

        wm = whisper.load_model(str(packaged_checkpoint()), device="cpu")
        wave = whisper.pad_or_trim((np.sin(np.arange(16000 * 3) * 0.05) * 0.1).astype(np.float32))
        _mark("whisper_encoder")
        with torch.no_grad():
            out["whisper_encoder"] = _h(wm.encoder(whisper.log_mel_spectrogram(torch.from_numpy(wave))[None]).numpy())
        _mark("end")
        te = TextEncoder("packaged")
        _mark("minilm_features")
        out["minilm_features"] = _h(te.features(["The lift is out of order again, take the stairs.",
                                                 "Press the pound key when you are finished."]))
        _mark("end")
    out["_describe"] = determinism.describe()
    out["_seconds"] = round(t_torch, 3)
    out["_part_seconds"] = {k: round(v, 3) for k, v in part_seconds.items()}
    return out


def run_configs(names=None) -> dict:
    """Torch's parts under each candidate setting, one subprocess each (the libraries read their
    settings once, at load): ``{name: {"hashes", "kernels", "seconds"}}``."""
    out = {}
    for name in names or CANDIDATES:
        env = dict(os.environ, ONEDNN_VERBOSE="1", MKL_VERBOSE="1", **{MARK: "1"})
        run = subprocess.run([sys.executable, __file__, "--config", name, "--json"], env=env,
                             capture_output=True, text=True, cwd=ROOT)
        if run.returncode != 0:
            raise RuntimeError(f"config {name}: the fingerprint run failed:\n{run.stderr[-2000:]}")
        got = json.loads(run.stdout.strip().splitlines()[-1])
        out[name] = {"hashes": {k: got[k] for k in TORCH_PARTS}, "kernels": determinism.kernel_census(run.stdout),
                     "seconds": got["_seconds"], "part_seconds": got["_part_seconds"],
                     "env": CANDIDATES[name]}
    return out


def machine() -> dict:
    """CPU model, vendor and the instruction-set flags that decide dispatch."""
    info = {"model": "", "vendor": "", "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not info["model"]:
            info["model"] = value
        elif key == "vendor_id" and not info["vendor"]:
            info["vendor"] = value
        elif key == "flags" and not info["flags"]:
            have = set(value.split())
            info["flags"] = [f for f in FLAGS if f in have]
    return info


def compare_configs(here: dict, record: dict) -> list[str]:
    """Table lines: each candidate setting and torch part, and for each recorded machine with
    that setting 'same' or 'DIFFERS'; the last column is this machine's seconds."""
    names = sorted(n for n in record if record[n].get("configs"))
    lines = ["| setting | part | " + " | ".join(names) + " | seconds here |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for cfg, got in here.items():
        for i, part in enumerate(TORCH_PARTS):
            cells = []
            for n in names:
                theirs = record[n]["configs"].get(cfg, {}).get("hashes", {}).get(part)
                cells.append("not recorded" if theirs is None else ("same" if theirs == got["hashes"][part] else "DIFFERS"))
            label = f"{cfg} (the pin)" if cfg == pinned_candidate() else cfg
            lines.append(f"| {label if i == 0 else ''} | {part} | " + " | ".join(cells)
                         + f" | {got['seconds'] if i == 0 else ''} |")
    return lines


def compare(here: dict, record: dict) -> list[str]:
    """Table lines: each component, and for each recorded machine 'same' or 'DIFFERS'."""
    names = sorted(record)
    keys = [k for k in here if not k.startswith("_")]
    # a machine recorded under other pin values computed its torch parts under other settings:
    # its column says so, and the --configs table is the comparison under equal settings
    heads = [n if record[n].get("pin", {}) == pin_values() else f"{n} (other pin: {_pin_change(record[n])})"
             for n in names]
    lines = ["| component | " + " | ".join(heads) + " |", "|---|" + "---|" * len(names)]
    for k in keys:
        cells = []
        for n in names:
            theirs = record[n]["hashes"].get(k)
            cells.append("not recorded" if theirs is None else ("same" if theirs == here[k] else "DIFFERS"))
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print this machine's hashes as JSON, nothing else")
    ap.add_argument("--record", default="", help="add (or replace) this machine under this label")
    ap.add_argument("--configs", action="store_true",
                    help="also run torch's parts under each candidate setting of oneDNN and MKL")
    ap.add_argument("--config", choices=sorted(CANDIDATES), default="",
                    help="run under this candidate setting (what --configs starts)")
    args = ap.parse_args(argv)
    if args.config:
        os.environ.update(CANDIDATES[args.config])     # after the pin, before torch is imported
    here = compute()
    if args.json:
        print(json.dumps(here))
        return 0
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    me = machine()
    print(f"this machine: {me['vendor']} {me['model']}, flags {' '.join(me['flags'])}; "
          f"dispatch {json.dumps(here['_describe'])}")
    if record:
        print("\n".join(compare(here, record)))
    configs = run_configs() if args.configs else {}
    if configs:
        print("\n".join(compare_configs(configs, record)))
        for cfg, got in configs.items():
            print(f"kernels under {cfg}: " + "; ".join(f"{p}: {', '.join(k)}" for p, k in got["kernels"].items()))
    if args.record:
        entry = {"cpu": me, "date": datetime.date.today().isoformat(), "pin": pin_values(),
                 "hashes": {k: v for k, v in here.items() if not k.startswith("_")},
                 "describe": here["_describe"]}
        if configs:
            entry["configs"] = configs
        elif record.get(args.record, {}).get("configs"):
            entry["configs"] = record[args.record]["configs"]
        record[args.record] = entry
        tmp = RECORD.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        tmp.replace(RECORD)
        print(f"recorded as {args.record!r} in {RECORD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
