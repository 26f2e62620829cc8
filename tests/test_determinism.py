"""The CPU dispatch pin (dfdetect.determinism, applied by stages/common.py) makes the expensive
caches' kernels give the same bytes whatever instruction sets the machine has.

One slice of every expensive cache (benchmarks/determinism_fingerprint.py) runs in subprocesses
that import ``stages/common.py`` first, as every stage does: demo rendering (an upscaled LFW face: OpenCV resize/GaussianBlur, IPP),
x264 encoding, face alignment (dlib + warpAffine), MTCNN, numpy transcendental functions and BLAS
(Saab), an MST++ forward (torch: ATen, oneDNN, MKL), dlib's face descriptor (face_embeddings),
two training steps of the Lite0 frame CNN (and their forward, one backward, and the steps with
oneDNN off), Xception and two-branch forwards, the Whisper tiny.en encoder and MiniLM features.
The run on this machine's native features
must equal a run that emulates an AVX2-only machine; on an AVX-512 machine the same slice
without the pin must differ (so the slice does exercise the dispatch the pin fixes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dfdetect import determinism

ROOT = Path(__file__).resolve().parents[1]

# the slice: benchmarks/determinism_fingerprint.py (--json), which also compares machines
FINGERPRINT = ROOT / "benchmarks" / "determinism_fingerprint.py"

# what the libraries would pick on a machine without AVX-512 (x86-64-v3), forced here with
# each library's own knob; x264 needs none (same bytes from SSSE3 to AVX-512, see README)
AVX2_MACHINE = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENCV_CPU_DISABLE": "AVX512F,AVX512-COMMON,AVX512-SKX",
    "OPENCV_IPP": "avx2",
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in determinism._PINS and k not in AVX2_MACHINE and k != determinism.SWITCH}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _run(env: dict) -> dict:
    run = subprocess.run([sys.executable, str(FINGERPRINT), "--json"], env=env,
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    got.pop("_seconds")         # the torch parts' times: the entries that are not hashes
    got.pop("_part_seconds")
    return got


def _has_avx512() -> bool:
    try:
        return " avx512f " in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def _has_avx2() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2 " in text and " fma " in text


@pytest.mark.skipif(not _has_avx2(), reason="the pin is x86-64-v3 (AVX2+FMA3); this CPU lacks it")
def test_expensive_cache_slice_is_identical_across_isa_levels():
    native = _run(_clean_env())
    avx2 = _run(_clean_env(**AVX2_MACHINE))
    d_native, d_avx2 = native.pop("_describe"), avx2.pop("_describe")
    assert native == avx2, {k: (native[k], avx2[k]) for k in native if native[k] != avx2.get(k)}
    assert d_native["pinned"] and d_avx2["pinned"], (d_native, d_avx2)
    assert d_native["torch"] == "AVX2" and d_native["opencv_ipp"] == "off", d_native
    if _has_avx512():
        # the same slice without the pin on this AVX-512 machine: numpy, OpenBLAS, IPP and torch
        # each choose other kernels, and the bytes differ (the test would catch a lost pin)
        unpinned = _run(_clean_env(**{determinism.SWITCH: "0"}))
        described = unpinned.pop("_describe")
        assert not described["pinned"]
        differ = sorted(k for k in native if unpinned[k] != native[k])
        # (on Intel AVX-512 the Lite0 training steps differ too; on AMD Zen 4 they do not)
        assert {"numpy_math", "blas", "mst", "lfw_face", "two_branch"} <= set(differ), differ


def test_cpu_env_merges_and_respects_the_switch():
    env = {"NPY_DISABLE_CPU_FEATURES": "AVX512F", "OPENCV_CPU_DISABLE": "AVX2", "OPENCV_IPP": "avx2"}
    add = determinism.cpu_env(env)
    assert add["NPY_DISABLE_CPU_FEATURES"].split()[0] == "AVX512F"        # user's list kept first
    assert "X86_V4" in add["NPY_DISABLE_CPU_FEATURES"].split()
    assert add["OPENCV_CPU_DISABLE"].split(",")[:2] == ["AVX2", "AVX512F"]
    assert add["OPENCV_IPP"] == "disabled" and add["ATEN_CPU_CAPABILITY"] == "avx2"
    # MKL honours MKL_CBWR=AVX2 on Intel only (CNR:AUTO on AMD); COMPATIBLE is its branch on both
    # vendors (benchmarks/fingerprints.json: MTCNN, MST++, Xception, two-branch the same under it)
    assert add["MKL_CBWR"] == "COMPATIBLE"
    env.update(add)
    assert determinism.cpu_env(env) == {} and determinism.pinned(env)
    off = {determinism.SWITCH: "0"}
    assert determinism.pin_cpu(off) == {} and off == {determinism.SWITCH: "0"}
    on: dict = {}
    assert determinism.pin_cpu(on) == determinism.cpu_env({}) and determinism.pinned(on)


def test_rowdot_scores_a_row_the_same_in_any_batch():
    """An item's score must not depend on the batch it is scored in (DADA's audio head and text
    prior: one utterance left out of a split changed another's score in the last bit via gemv)."""
    import numpy as np

    from dfdetect.determinism import rowdot

    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(37, 257)), rng.normal(size=257)
    full = rowdot(x, w)
    np.testing.assert_allclose(full, x @ w, rtol=1e-12)
    for rows in (slice(0, 11), slice(3, 15), slice(36, 37), [5, 0, 20]):
        assert np.array_equal(rowdot(x[rows], w), full[rows])
    assert rowdot(x.astype(np.float32), w.astype(np.float32)).dtype == np.float32


def test_torch_threads_sets_for_the_block_and_zero_leaves_the_count():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with determinism.torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with determinism.torch_threads(0):              # 0 (the params' "core count"): the caller's count
        assert torch.get_num_threads() == before
        torch.set_num_threads(other)                # work inside that changes it is undone after
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), determinism.torch_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before


def test_expensive_caches_fix_their_torch_thread_count():
    """The caches teammates share are only the ones they would compute if the thread count
    they run at does not depend on the machine's cores (0 would)."""
    import yaml

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    for section in ("hyperspectral", "face_embeddings", "transcribe"):
        assert int(params[section]["threads"]) > 0, section


def test_kernel_census_names_each_parts_onednn_and_mkl_kernels():
    """What benchmarks/determinism_fingerprint.py --configs records beside each torch part's hash
    (lines in the formats oneDNN 3 and oneMKL 2024 print with their verbose switches on)."""
    log = "\n".join([
        "MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture",
        "onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,exec_time",
        "@@ mtcnn",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32,,alg,0.1",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,,0.01",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_training,src:f32,,alg,0.1",
        "MKL_VERBOSE SGEMM(T,N,2,5184,32,0x7ffe,0x55fe,32,0x55fe,32,0x7ffe,0x55fe,2) 205.54us CNR:AVX2 Dyn:0",
        "@@ end",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx2,forward_training,src:f32,,alg,0.1",
        "@@ two_branch",
        "onednn_verbose,v1,primitive,exec,cpu,rnn,brgemm:avx2,forward_inference,src_layer:f32,,,0.2",
        "MKL_VERBOSE SGEMM_BATCH(N,T,0x7ffc,0x7ffc) 12.0us CNR:AVX2",
        "MKL_VERBOSE SGEMM(N,N,64,128,64,0x7ffe) 3.1us CNR:AVX2",
        "@@ end",
    ])
    assert determinism.kernel_census(log) == {
        "mtcnn": ["MKL SGEMM TN", "convolution brg_conv_fwd:avx2"],      # reorders and banners left out
        "two_branch": ["MKL SGEMM NN", "MKL SGEMM_BATCH NT", "rnn brgemm:avx2"],
    }                                                                     # outside a part: not counted
    assert determinism.kernel_census("no verbose lines\n") == {}
