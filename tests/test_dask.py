"""``executor.backend: dask`` end to end, on a real scheduler and real workers on 127.0.0.1.

- ``executor.address`` set: ``dask scheduler`` and two ``dask worker`` processes (started by the
  fixture), ``sample_frames`` then ``align_faces`` of one shard run on them, and both shards are
  byte-identical to the ``process`` backend's (the reference);
- ``executor.address`` empty: the stage starts a LocalCluster and closes it (no client, no
  worker process left behind);
- a worker killed by its PID mid-shard: Dask runs its task again on the other worker and the
  shard still comes out complete and byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed  # noqa: F401  (installed with the project: missing is a failure, not a skip)
import numpy as np
import pandas as pd
import pytest

from dfdetect.faces.stage import run_align_faces
from dfdetect.servers import DaskCluster
from dfdetect.store import ShardReader
from dfdetect.video.sample import sample_shard

REPO = Path(__file__).resolve().parents[1]
N_VIDEOS = 6
FRAMES = {"strategy": "uniform", "num_frames": 3, "every_k": 10, "fps": 1.0, "max_side": 0,
          "decoder": "pyav", "threads": 0, "compression": {"codec": "gzip", "level": 4, "shuffle": True}}
ALIGN = {"detector": "hog", "fallback": "", "detect_max_side": 640, "coarse_side": 0, "upsample": 1,
         "face_size": 64, "margin": 0.3, "defakehop_size": 128, "patch_size": 32,
         "compression": {"codec": "zstd", "level": 3}}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _face_video(path: Path, face: np.ndarray, shift: int, n: int = 12, size: int = 256) -> None:
    """H.264 clip of the astronaut's face drifting over a grey background."""
    import cv2

    face = cv2.resize(face, (168, 176), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        img = np.full((size, size, 3), 90 + 10 * (shift % 5), np.uint8)
        y, x = 30 + (i + shift) % 20, 20 + (2 * i + shift) % 40
        img[y:y + face.shape[0], x:x + face.shape[1]] = face
        frames.append(img)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                    "-s", f"{size}x{size}", "-r", "25", "-i", "-", "-c:v", "libx264", "-preset",
                    "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1", str(path)],
                   input=b"".join(f.tobytes() for f in frames), check=True)


@pytest.fixture(scope="module")
def face_crop() -> np.ndarray:
    """scikit-image's astronaut (a real, public-domain photo), cropped to her face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[40:260, 120:330])


@pytest.fixture(scope="module")
def shard(tmp_path_factory, face_crop):
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    root = tmp_path_factory.mktemp("dask_data")
    rows = []
    for k in range(N_VIDEOS):
        label = "real" if k % 2 == 0 else "fake"
        path = root / label / f"clip{k}.mp4"
        path.parent.mkdir(exist_ok=True)
        _face_video(path, face_crop if k % 3 else face_crop[:, ::-1].copy(), shift=k)
        rows.append((f"{label}/clip{k}.mp4", label, str(path)))
    manifest = root / "shard-0.csv"
    pd.DataFrame(rows, columns=["video_id", "label", "path"]).to_csv(manifest, index=False)
    return root, manifest


def _run_both(manifest: Path, out: Path, **executor) -> tuple[Path, Path]:
    frames, faces = out / "frames" / "shard-0.h5", out / "faces" / "shard-0.h5"
    sample_shard(manifest, frames, out / "fail_frames.csv", FRAMES, progress=False, **executor)
    run_align_faces(frames, faces, out / "fail_faces.csv", ALIGN, progress=False, **executor)
    return frames, faces


@pytest.fixture(scope="module")
def reference(shard):
    """The ``process`` backend's shards: the bytes every other executor must give."""
    root, manifest = shard
    frames, faces = _run_both(manifest, root / "process", executor="process", workers=2)
    with ShardReader(faces) as r:
        assert len(r.videos()) == N_VIDEOS and r.index().shape[0] == 3 * N_VIDEOS  # a face per frame
    return {"frames": sha(frames), "faces": sha(faces),
            "fail_frames": sha(root / "process" / "fail_frames.csv"),
            "fail_faces": sha(root / "process" / "fail_faces.csv")}


def _worker_env() -> dict:
    src = str(REPO / "src")
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])]), OMP_NUM_THREADS="1")


def _start_cluster(directory: Path):
    try:
        return DaskCluster(directory, n_workers=2, env=_worker_env()).start()
    except OSError as err:  # pragma: no cover  (no loopback networking at all)
        pytest.skip(f"cannot start a dask scheduler on 127.0.0.1: {err}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = _start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster(tmp_path):
    c = _start_cluster(tmp_path / "cluster")
    yield c
    c.stop()


def _client(address: str):
    from dask.distributed import Client

    return Client(address, set_as_default=False)   # never the stage's client


def _executed(address: str) -> dict[str, int]:
    with _client(address) as client:
        counts = client.run(lambda dask_worker: dask_worker.state.executed_count)
        names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
    return {names[a]: n for a, n in counts.items()}


def test_scheduler_address_gives_the_process_bytes(shard, reference, cluster, tmp_path):
    """``stages/sample_frames.py --backend dask --address ...`` (the flags params.yaml's
    ``executor`` section gives), then align_faces of its shard on the same scheduler."""
    from dask.distributed import default_client

    _, manifest = shard
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages" / "sample_frames.py"), "--params",
         str(REPO / "params.yaml"), "--shard", "0", "--manifest-dir", str(manifest.parent),
         "--out-dir", str(tmp_path / "frames"), "--failures-dir", str(tmp_path / "fail_frames"),
         "--strategy", "uniform", "--every_k", "10", "--num_frames", "3", "--backend", "dask", "--workers", "2", "--address", cluster.address],
        cwd=tmp_path, env=_worker_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    frames = tmp_path / "frames" / "shard-0.h5"
    assert sha(frames) == reference["frames"]
    assert sha(tmp_path / "fail_frames" / "shard-0.csv") == reference["fail_frames"]
    after_frames = _executed(cluster.address)
    assert sum(after_frames.values()) >= N_VIDEOS, after_frames

    faces = tmp_path / "faces.h5"
    run_align_faces(frames, faces, tmp_path / "fail_faces.csv", ALIGN, executor="dask", workers=2,
                    address=cluster.address, progress=False)
    assert sha(faces) == reference["faces"]
    assert sha(tmp_path / "fail_faces.csv") == reference["fail_faces"]
    ran = _executed(cluster.address)
    # every video of both stages ran on the cluster's workers, both workers took some
    assert set(ran) == {"w0", "w1"} and all(n > 0 for n in ran.values()), ran
    assert sum(ran.values()) - sum(after_frames.values()) >= N_VIDEOS, (after_frames, ran)
    with pytest.raises(ValueError):        # the stage's client was closed with the map
        default_client()


def test_empty_address_starts_and_closes_a_local_cluster(shard, reference, tmp_path):
    import psutil
    from dask.distributed import default_client

    _, manifest = shard
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    frames = tmp_path / "frames.h5"
    sample_shard(manifest, frames, tmp_path / "fail.csv", FRAMES, executor="dask", workers=2,
                 address="", progress=False)
    assert sha(frames) == reference["frames"]
    with pytest.raises(ValueError):        # no client left in this process
        default_client()
    deadline = time.monotonic() + 20
    while True:                            # ... and no worker process of the LocalCluster
        left = [p for p in psutil.Process().children(recursive=True)
                if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, [p.cmdline() for p in left]


def test_killed_worker_still_gives_the_same_bytes(shard, reference, fresh_cluster, tmp_path):
    """SIGKILL to worker w0 (its PID) while it runs a video of the align_faces shard."""
    cluster = fresh_cluster
    root, _ = shard
    victim = cluster.workers["w0"]
    seen: dict = {}

    def killer():
        with _client(cluster.address) as client:
            addr = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "w0")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not seen.get("done"):
                busy = client.processing()
                if busy.get(addr):
                    seen["in_flight"] = sum(len(v) for v in busy.values())
                    os.kill(victim.pid, signal.SIGKILL)
                    seen["killed"] = time.monotonic()
                    return
                time.sleep(0.005)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    faces = tmp_path / "faces.h5"
    run_align_faces(root / "process" / "frames" / "shard-0.h5", faces, tmp_path / "fail.csv", ALIGN,
                    executor="dask", workers=2, address=cluster.address, progress=False)
    finished = time.monotonic()
    seen["done"] = True
    thread.join(10)
    assert "killed" in seen and seen["killed"] < finished, "the worker was not killed mid-shard"
    assert victim.wait(10) == -signal.SIGKILL
    assert sha(faces) == reference["faces"] and sha(tmp_path / "fail.csv") == reference["fail_faces"]
    ran = _executed(cluster.address)
    assert set(ran) == {"w1"} and ran["w1"] > 0, ran   # the survivor did the rest
