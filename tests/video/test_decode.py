import cv2
import numpy as np
import pytest

from dfdetect.failures import ItemError
from dfdetect.video.decode import decode_all, read_frames, resize_max_side
from dfdetect.video.keyframes import probe

DECODERS = ["pyav", "opencv"]


def test_probe_counts_and_keyframes(videos):
    info = probe(videos["gop10"])
    assert info.n_frames == 60 and info.n_frames_reported == 60
    assert info.keyframes.tolist() == [0, 10, 20, 30, 40, 50]
    assert info.fps == pytest.approx(25.0)
    assert (info.width, info.height) == (64, 64)
    assert info.pts is not None and np.all(np.diff(info.pts) > 0)
    assert probe(videos["onegop"]).keyframes.tolist() == [0]
    assert probe(videos["avi"]).keyframes.tolist() == list(range(20))   # MJPEG: all intra


@pytest.mark.parametrize("name", ["gop10", "fast", "avi", "onegop"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_reference_decode_is_in_order(videos, name, decoder, frame_number):
    frames = decode_all(videos[name], decoder)
    assert [frame_number(f) for f in frames] == list(range(len(frames)))
    assert frames.dtype == np.uint8 and frames.shape[-1] == 3


def test_decoders_agree_on_index(videos):
    a = decode_all(videos["gop10"], "pyav")
    b = decode_all(videos["gop10"], "opencv")
    assert len(a) == len(b) == 60
    # same frame i from both libraries (colour conversion may differ by a few levels)
    assert np.abs(a.astype(int) - b.astype(int)).mean(axis=(1, 2, 3)).max() < 3


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name,indices,min_seeks", [
    ("gop10", [3, 17, 18, 35, 59], 3),           # sparse across GOPs: seeks
    ("gop10", [59, 0, 35, 17, 18, 3, 17], 3),    # any order, duplicates
    ("gop10", [10, 20, 30, 40, 50], 4),          # targets are keyframes
    ("gop10", [1, 2, 3, 5, 8, 9], 0),            # dense in one GOP: no seek
    ("gop10", list(range(60)), 0),               # everything
    ("fast", [0, 9, 11, 29, 31, 58], 2),        # 11 and 31 follow on: no seek
    ("onegop", [0, 7, 29], 0),                   # one GOP: never seeks
    ("avi", [0, 5, 6, 19], 2),                   # every frame a keyframe
])
def test_sampled_frames_equal_full_decode(videos, decoder, name, indices, min_seeks, frame_number):
    path = videos[name]
    full = decode_all(path, decoder)
    res = read_frames(path, indices, decoder=decoder)
    assert sorted(res.frames) == sorted(set(indices))
    for i, frame in res.frames.items():
        assert frame_number(frame) == i
        np.testing.assert_array_equal(frame, full[i])     # pixel-exact, including after seeks
    assert res.seeks >= min_seeks
    if min_seeks == 0:
        assert res.seeks == 0
    assert res.end is None and not res.errors


def test_sparse_sampling_decodes_less(videos):
    res = read_frames(videos["gop10"], [5, 25, 45], decoder="pyav")
    assert res.seeks == 2
    assert res.decoded < 40          # three partial GOPs, not 60 frames
    forward = read_frames(videos["gop10"], [5, 25, 45], decoder="pyav", seek=False)
    assert forward.seeks == 0 and forward.decoded >= 46
    for i in (5, 25, 45):
        np.testing.assert_array_equal(res.frames[i], forward.frames[i])


@pytest.mark.parametrize("decoder", DECODERS)
def test_out_of_range_indices_are_ignored(videos, decoder):
    res = read_frames(videos["short"], [0, 4, 5, 100], decoder=decoder)
    assert sorted(res.frames) == [0, 4]


@pytest.mark.parametrize("decoder", DECODERS)
def test_max_side_uses_inter_area(videos, decoder):
    full = decode_all(videos["gop10"], decoder)
    res = read_frames(videos["gop10"], [7, 33], decoder=decoder, max_side=32)
    for i in (7, 33):
        assert res.frames[i].shape == (32, 32, 3)
        np.testing.assert_array_equal(res.frames[i], cv2.resize(full[i], (32, 32), interpolation=cv2.INTER_AREA))


def test_resize_max_side_keeps_aspect():
    img = np.zeros((720, 1280, 3), np.uint8)
    assert resize_max_side(img, 640).shape == (360, 640, 3)
    assert resize_max_side(img, 0) is img
    assert resize_max_side(img, 2000) is img


def test_truncated_data_stops_early(videos, frame_number):
    info = probe(videos["trunc_data"])
    assert info.n_frames < 60 and info.n_frames_reported == 60
    assert any("truncated" in n for n in info.notes)
    res = read_frames(videos["trunc_data"], [0, 5, info.n_frames - 1], info=info)
    assert 0 in res.frames and frame_number(res.frames[5]) == 5
    full = decode_all(videos["trunc_data"])
    if len(full) < info.n_frames:            # the last packets are cut: the stream ends early
        assert res.end == len(full)


@pytest.mark.parametrize("name,match", [("trunc_moov", "cannot open"), ("junk", "cannot open"),
                                        ("empty", "empty file")])
def test_unreadable_files_raise_item_error(videos, name, match):
    with pytest.raises(ItemError, match=match) as exc:
        probe(videos[name])
    assert str(videos[name]) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ItemError, match="not found"):
        probe(tmp_path / "nope.mp4")
