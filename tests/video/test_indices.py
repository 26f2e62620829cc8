import numpy as np
import pytest

from dfdetect.video.decode import keyframe_between, plan
from dfdetect.video.indices import at_fps, every_k, frame_indices, indices_from_params, uniform


def test_uniform_spreads_over_whole_video():
    idx = uniform(100, 8)
    assert idx.tolist() == [0, 14, 28, 42, 57, 71, 85, 99]   # round(linspace(0, 99, 8)), half up
    assert idx.dtype == np.int64
    # never "the first N frames" (DeepfakeBench's bug)
    assert idx[-1] == 99 and not np.array_equal(idx, np.arange(8))
    for n in (33, 40, 63, 250, 10_000):          # always N frames, first and last included
        idx = uniform(n, 32)
        assert len(idx) == 32 and idx[0] == 0 and idx[-1] == n - 1 and np.all(np.diff(idx) > 0)


@pytest.mark.parametrize("n,N,expected", [
    (0, 8, []), (1, 8, [0]), (5, 8, [0, 1, 2, 3, 4]), (8, 8, list(range(8))),
    (9, 8, [0, 1, 2, 3, 5, 6, 7, 8]), (100, 1, [0]), (3, 2, [0, 2]),
])
def test_uniform_edge_cases(n, N, expected):
    idx = uniform(n, N)
    assert idx.tolist() == expected
    assert len(np.unique(idx)) == len(idx)


def test_uniform_rejects_zero():
    with pytest.raises(ValueError):
        uniform(10, 0)


def test_every_k():
    assert every_k(25, 10).tolist() == [0, 10, 20]
    assert every_k(0, 10).tolist() == []
    assert every_k(3, 1).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        every_k(10, 0)


def test_fps_conversion():
    assert at_fps(250, 25.0, 1.0).tolist() == list(range(0, 250, 25))
    assert at_fps(100, 25.0, 2.0).tolist() == [0, 12, 25, 37, 50, 62, 75, 87]   # every 12.5 frames
    ntsc = at_fps(300, 30000 / 1001, 1.0)
    assert ntsc.tolist() == [int(np.floor(j * 30000 / 1001)) for j in range(11)]
    assert at_fps(10, 25.0, 25.0).tolist() == list(range(10))        # at the video's rate: all
    assert at_fps(10, 25.0, 60.0).tolist() == list(range(10))        # above it: all, no repeats
    assert at_fps(0, 25.0, 1.0).tolist() == []
    assert at_fps(1, 25.0, 1.0).tolist() == [0]
    with pytest.raises(ValueError, match="frame rate is unknown"):
        at_fps(10, 0.0, 1.0)
    with pytest.raises(ValueError):
        at_fps(10, 25.0, 0.0)


def test_frame_indices_dispatch():
    assert frame_indices(30, "all").tolist() == list(range(30))
    params = {"strategy": "every_k", "every_k": 7, "num_frames": 3, "fps": 1.0}
    assert indices_from_params(30, params).tolist() == [0, 7, 14, 21, 28]
    assert indices_from_params(30, {**params, "strategy": "uniform"}).tolist() == [0, 15, 29]
    assert indices_from_params(50, {**params, "strategy": "fps"}, video_fps=25).tolist() == [0, 25]
    with pytest.raises(ValueError, match="unknown frame sampling strategy"):
        frame_indices(10, "first")


def test_keyframe_between_and_plan():
    kf = np.array([0, 10, 20, 30])
    assert keyframe_between(kf, 0, 9) is None         # same GOP: decode forward
    assert keyframe_between(kf, 0, 10) == 10          # the target is a keyframe
    assert keyframe_between(kf, 0, 25) == 20          # seek to the last keyframe <= target
    assert keyframe_between(kf, 10, 10) is None       # decoder is already there
    assert keyframe_between(kf, 11, 19) is None
    # dense in one GOP: no seek; sparse across GOPs: one seek per GOP entered
    assert [k for _, k in plan([1, 3, 5, 9], kf)] == [None] * 4
    assert plan([2, 15, 16, 35], kf) == [(2, None), (15, 10), (16, None), (35, 30)]
    assert plan([0], np.array([0])) == [(0, None)]


def test_uniform_every_k_spreads_num_frames_over_the_grid():
    """Issue 11: as many frames as ``uniform``, over the whole video, all on the every_k grid;
    on a short clip (the demo: 50 frames, 8 wanted, k = 6) adjacent frames are mostly k apart."""
    from dfdetect.video.indices import uniform_every_k

    demo = uniform_every_k(50, 8, 6)
    assert demo.tolist() == [0, 6, 12, 18, 30, 36, 42, 48]
    assert uniform(50, 8).tolist() == [0, 7, 14, 21, 28, 35, 42, 49]   # never on the grid
    long = uniform_every_k(400, 8, 6)
    assert len(long) == 8 and np.all(long % 6 == 0) and long[0] == 0 and long[-1] >= 390
    assert uniform_every_k(400, 100, 6).tolist() == every_k(400, 6).tolist()   # the paper's
    assert uniform_every_k(0, 8, 6).tolist() == []
    params = {"strategy": "uniform_every_k", "every_k": 6, "num_frames": 8, "fps": 1.0}
    assert indices_from_params(50, params).tolist() == demo.tolist()
