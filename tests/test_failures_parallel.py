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
