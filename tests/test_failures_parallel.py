import contextlib

import pandas as pd
import pytest

from dfdetect.failures import Failures, ItemError, read_failures
from dfdetect.parallel import imap


def _work(x):
    if x == 3:
        raise ItemError("corrupt video: cannot decode frame 0", path=f"v{x}.mp4")
    if x == 5:
        raise ValueError("boom")
    return x * x


@pytest.mark.parametrize("executor", ["serial", "process"])
def test_imap_order_and_errors(executor):
    out = list(imap(_work, range(7), executor=executor, workers=2, progress=False))
    assert [item for item, _, _ in out] == list(range(7))
    assert [res for _, res, err in out if err is None] == [0, 1, 4, 16, 36]
    errs = {item: err for item, _, err in out if err is not None}
    assert isinstance(errs[3], ItemError) and isinstance(errs[5], ValueError)


def test_failures_table(tmp_path):
    f = Failures("sample_frames")
    f.add_error("b.mp4", ItemError("truncated video", path="/d/b.mp4", frame_index=4))
    f.add_error("a.mp4", ValueError("bad"), path="/d/a.mp4")
    f.add("c.mp4", "no face found", frame_index=2, warn=False)
    path = tmp_path / "failures" / "shard-0.csv"
    f.write(path)
    df = read_failures([path, tmp_path / "missing.csv"])
    assert list(df["video_id"]) == ["a.mp4", "b.mp4", "c.mp4"]
    assert df.loc[df.video_id == "b.mp4", "reason"].item() == "truncated video"
    assert df.loc[df.video_id == "a.mp4", "reason"].item() == "ValueError: bad"
    assert (df["stage"] == "sample_frames").all()
    empty = Failures("x")
    empty.write(tmp_path / "e.csv")
    assert list(pd.read_csv(tmp_path / "e.csv").columns) == ["video_id", "stage", "frame_index", "path", "reason"]


# ----------------------------------------------------------------------------- worker lifetime
_SLOW_STAGE = """
import sys, time
from pathlib import Path
from dfdetect.parallel import imap
from dfdetect.store import atomic_path

def slow(x):
    time.sleep(120)
    return x

with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_text("partial")
    for _item, _res, _err in imap(slow, range(8), executor="process", workers=2, progress=False):
        pass
"""


def _start_slow_stage(tmp_path):
    """A real process mapping slow items over 2 loky workers; returns (process, worker pids)."""
    import subprocess
    import sys
    import time

    import psutil

    def command(p) -> str:
        # a short-lived child (loky's helpers) may exit between children() and cmdline()
        try:
            return " ".join(p.cmdline())
        except psutil.Error:
            return ""

    proc = subprocess.Popen([sys.executable, "-c", _SLOW_STAGE, str(tmp_path / "out.csv")])
    deadline = time.monotonic() + 30
    workers: list = []
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children(recursive=True)
        workers = [k for k in kids if "LokyProcess" in command(k)]
        if len(workers) == 2 and list(tmp_path.glob(".out.csv.*.tmp")):
            time.sleep(0.5)   # let the workers run their initializer and take an item
            return proc, workers
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"workers did not start: {workers}")


def _gone(procs, timeout: float) -> list:
    """Processes of ``procs`` still running (zombies count as gone) after ``timeout`` seconds."""
    import time

    import psutil

    deadline = time.monotonic() + timeout
    alive = list(procs)
    while alive and time.monotonic() < deadline:
        still = []
        for p in alive:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    still.append(p)
            except psutil.NoSuchProcess:
                pass
        alive = still
        if alive:
            time.sleep(0.1)
    return alive


def test_kill_9_of_the_parent_takes_its_workers(tmp_path):
    import signal

    from dfdetect.store import remove_stale_temporaries

    proc, workers = _start_slow_stage(tmp_path)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        left = _gone(workers, timeout=5)
        assert not left, f"orphaned workers still running: {[w.pid for w in left]}"
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                w.kill()
    # the dead stage's temporary stays, and is the rerun's to remove
    tmps = list(tmp_path.glob(".out.csv.*.tmp"))
    assert len(tmps) == 1 and f".{proc.pid}-" in tmps[0].name
    assert remove_stale_temporaries(tmp_path / "out.csv") == tmps


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    proc, workers = _start_slow_stage(tmp_path)
    try:
        proc.terminate()
        rc = proc.wait(15)
        assert rc != 0
        left = _gone(workers, timeout=5)
        assert not left, f"workers still running after SIGTERM: {[w.pid for w in left]}"
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                w.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # no output, no temporary
