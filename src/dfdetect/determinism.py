"""One x86-64 instruction-set level for every numeric library, so outputs do not depend on the CPU.

numpy, OpenBLAS, OpenCV (and the Intel IPP inside it), torch's ATen kernels, oneDNN and MKL pick
their kernels at run time from the CPU they find. Kernels of different widths round differently
(FMA contraction, reduction order, SVML/AVX-512 transcendental functions, oneDNN's AMX/VNNI
convolutions), so the same inputs give different bytes on an AVX-512 machine and an AVX2 one.
Measured on one AVX-512 machine by forcing lower levels in one process (README, "Determinism
across machines"):

- numpy's AVX-512 loops change float64 exp, log, arctan, log1p, expm1, cbrt, power;
- OpenBLAS' SkylakeX kernels change matmul, dot and eigh against its Haswell kernels;
- Intel IPP's AVX-512 code (k0) changes OpenCV's output (the demo's upscaled LFW faces, the
  face swap) against its AVX2 code (l9);
- torch's ATen AVX-512 kernels, oneDNN's AVX-512/AMX kernels and MKL's code path each change
  MST++, EfficientNet, MiniLM and Whisper outputs.

:func:`cpu_env` is the environment that pins all of them to x86-64-v3 (AVX2 + FMA3: every x86-64
server CPU since Intel Haswell, 2013, and AMD Zen, 2017). MKL is the exception: it honours
``MKL_CBWR=AVX2`` only on Intel CPUs (its verbose log says ``CNR:AUTO`` on an AMD EPYC, so it
ran its native code there and torch's MKL matmuls differed between the vendors), so it is put
in its ``COMPATIBLE`` branch, which both vendors run (``CNR:COMPATIBLE``; measured with
``benchmarks/determinism_fingerprint.py --configs`` on an Intel Xeon and an AMD EPYC: MTCNN,
MST++, Xception and two-branch forwards the same on both, training steps still not).

The pin must be in ``os.environ`` before those libraries are imported (``stages/common.py``
calls :func:`pin_cpu` at import time, before anything imports numpy); worker processes inherit
it. IPP is switched off rather than pinned: its dispatcher and code are closed, and OpenCV's own
kernels are then the only ones used.

Not pinned (README): x264, the ffmpeg program and PyAV's FFmpeg pick their assembly at run time
too, but gave the same bytes with AVX-512 on and off; dlib is compiled for AVX (no run-time
choice). Not fixed by the pin: torch's results also depend on its thread count (``threads`` /
``num_threads`` params; 0 means the core count).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, MutableMapping

LEVEL = "x86-64-v3 (AVX2+FMA3)"

# numpy >= 2.4 dispatch names, then the names of older numpy (unknown names are ignored)
_NUMPY_AVX512 = ("X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_KNL AVX512_KNM "
                 "AVX512_SKX AVX512_CLX AVX512_CNL")
# OpenCV's names of its AVX-512 dispatch targets (OPENCV_CPU_DISABLE)
_OPENCV_AVX512 = ("AVX512F,AVX512-COMMON,AVX512-SKX,AVX512-KNL,AVX512-KNM,AVX512-CNL,"
                  "AVX512-CLX,AVX512-ICL")

# variable -> (value, separator used to merge with a value the user already set; None = replace)
_PINS: dict[str, tuple[str, str | None]] = {
    "NPY_DISABLE_CPU_FEATURES": (_NUMPY_AVX512, " "),   # numpy's own SIMD loops
    "OPENBLAS_CORETYPE": ("Haswell", None),              # numpy/scipy BLAS and LAPACK kernels
    "OPENCV_CPU_DISABLE": (_OPENCV_AVX512, ","),         # OpenCV's dispatched kernels
    "OPENCV_IPP": ("disabled", None),                    # Intel IPP inside OpenCV
    "ATEN_CPU_CAPABILITY": ("avx2", None),               # torch's vectorised ATen kernels
    "ONEDNN_MAX_CPU_ISA": ("AVX2", None),                # torch convolutions / linear layers
    "DNNL_MAX_CPU_ISA": ("AVX2", None),                  # the same, older oneDNN name
    "MKL_CBWR": ("COMPATIBLE", None),                    # MKL (torch matmul, FFT): the branch
}                                                        # it keeps on every vendor (not AVX2)

OFF_VALUES = ("0", "off", "false", "no")
SWITCH = "DFDETECT_PIN_CPU"     # set to 0 to run with each library's native dispatch
LATE: list[str] = []            # libraries already imported when pin_cpu() ran


def cpu_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to set on top of ``base`` (default ``os.environ``) to pin every library to
    :data:`LEVEL`: what is missing or different. Feature lists the user set (numpy's, OpenCV's
    disabled features) are extended; levels are replaced (``DFDETECT_PIN_CPU=0`` turns the whole
    pin off instead)."""
    base = os.environ if base is None else base
    out = {}
    for key, (value, sep) in _PINS.items():
        have = base.get(key, "")
        if sep is None or not have.strip():
            if have != value:
                out[key] = value
            continue
        items = have.replace(",", " ").split() if sep == " " else [v.strip() for v in have.split(sep)]
        extra = [v for v in value.split(sep) if v not in items]
        if extra:
            out[key] = sep.join([have.strip(sep + " ")] + extra)
    return out


def _loaded() -> list[str]:
    mods = ("numpy", "cv2", "torch")
    return [m for m in mods if m in sys.modules]


def pin_cpu(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Put :func:`cpu_env` into ``environ`` (default ``os.environ``) unless ``DFDETECT_PIN_CPU=0``.

    Returns what was set. numpy, cv2 and torch fix their kernels when imported: if one of them
    is already loaded in this process, the pin still reaches every process started from here
    (and :func:`describe` reports ``late``), but not that library in this process."""
    environ = os.environ if environ is None else environ
    if environ.get(SWITCH, "1").strip().lower() in OFF_VALUES:
        return {}
    add = cpu_env(environ)
    if add and environ is os.environ:
        LATE[:] = _loaded()
    environ.update(add)
    return add


def pinned(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``environ`` (default ``os.environ``) carries every pin of :func:`cpu_env`."""
    return not cpu_env(os.environ if environ is None else environ)


def describe() -> dict:
    """What the libraries of this process actually use (for logs and metrics): CPU level of
    torch, OpenBLAS core, OpenCV's enabled features, IPP state, numpy's dispatched targets."""
    out: dict = {"pinned": pinned(), "level": LEVEL if pinned() else "native", "late": list(LATE)}
    if "numpy" in sys.modules:
        try:
            from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__  # noqa: PLC0415
            out["numpy"] = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
        except ImportError:  # pragma: no cover - numpy < 2
            pass
    if "cv2" in sys.modules:
        cv2 = sys.modules["cv2"]
        out["opencv"] = cv2.getCPUFeaturesLine()
        out["opencv_ipp"] = cv2.ipp.getIppVersion() if cv2.ipp.useIPP() else "off"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        out["torch"] = torch.backends.cpu.get_cpu_capability()
        out["torch_threads"] = torch.get_num_threads()
    try:
        import threadpoolctl  # noqa: PLC0415

        out["blas"] = sorted({f"{i.get('internal_api')}:{i.get('architecture')}"
                              for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"})
    except ImportError:  # pragma: no cover - optional
        pass
    return out


def rowdot(x, w):
    """``x @ w`` for a 2-D ``x`` and a 1-D ``w``, row by row: each row's value does not depend on
    how many other rows ``x`` has. BLAS gemv (what ``@`` calls) picks its blocking from the row
    count, so one item scored in a batch of 11 and in a batch of 12 could differ in the last bit;
    an elementwise product summed along each row is the same reduction for every row."""
    import numpy as np  # noqa: PLC0415

    x = np.asarray(x)
    return (x * np.asarray(w, dtype=np.result_type(x, np.asarray(w)))[None, :]).sum(axis=1)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to ``n`` for the duration (``n <= 0``: left as it is),
    and the caller's count restored after either way. Convolution and matmul results depend on
    it, so work that must give the same bytes in a serial run (the calling process, whatever its
    count) and in single-threaded workers runs under one count; the ``threads`` params' 0 (the
    core count) is the caller's count."""
    import torch  # noqa: PLC0415

    prev = torch.get_num_threads()
    if n and int(n) > 0:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def kernel_census(log: str) -> dict[str, list[str]]:
    """Which oneDNN and MKL kernels each part of a run used, from a log written with
    ``ONEDNN_VERBOSE=1`` and ``MKL_VERBOSE=1``: per part (the lines between ``@@ part`` and
    ``@@ end``), the oneDNN primitives executed (``kind implementation``, reorders left out) and
    the MKL calls made (``MKL function transposes``). ``benchmarks/determinism_fingerprint.py``
    records it beside each part's hash, so a part that differs between two CPUs can be traced to
    the kernels that ran."""
    census: dict[str, set] = {}
    part = None
    for line in log.splitlines():
        if line.startswith("@@ "):
            part = line[3:].strip()
            part = None if part == "end" else part
            continue
        if part is None:
            continue
        if line.startswith("onednn_verbose") and ",exec," in line:
            f = line.split(",")
            i = f.index("exec")
            if len(f) > i + 3 and f[i + 2] != "reorder":
                census.setdefault(part, set()).add(f"{f[i + 2]} {f[i + 3]}")
        elif line.startswith("MKL_VERBOSE ") and "(" in line.split()[1]:     # not its banner
            name, args = line.split()[1].split("(", 1)
            a = args.split(",")
            trans = "".join(x for x in a[:2] if x in ("N", "T")) if "GEMM" in name else ""
            census.setdefault(part, set()).add(f"MKL {name} {trans}".strip())
    return {k: sorted(v) for k, v in census.items()}
