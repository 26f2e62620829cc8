"""Rotated (and mirrored) phone-style videos: frames are stored as a player shows them.

The rotated clips are the same H.264 packets as an unrotated source with only a display matrix
added (``ffmpeg -c copy``), so the expected frames are exactly the source's frames turned by
np.rot90, and ffprobe's ``side_data_list`` and ffmpeg's own auto-rotation are independent
cross-checks of the direction.
"""

import json
import shutil
import subprocess

import numpy as np
import pytest

from dfdetect.data import probe as manifest_probe
from dfdetect.data.probe import probe_video
from dfdetect.store import ShardReader
from dfdetect.video.decode import decode_all, read_frames
from dfdetect.video.keyframes import probe
from dfdetect.video.orientation import from_matrix, parse_ffprobe_matrix
from dfdetect.video.sample import sample_shard, sample_video

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                reason="ffmpeg/ffprobe not installed")

W, H = 96, 64           # coded size: not square, so a 90-degree turn shows in the shape
DECODERS = ["pyav", "opencv"]
PARAMS = {"strategy": "all", "decoder": "pyav", "compression": {"codec": "gzip", "level": 1}}


def _ffmpeg(*args, **kw):
    return subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, **kw)


def _ffprobe_side_data(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream_side_data", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    streams = json.loads(out).get("streams", [])
    for sd in (streams[0].get("side_data_list", []) if streams else []):
        if "displaymatrix" in sd:
            return sd
    return {}


def _rotate_copy(src, dst, degrees: int):
    """Same packets, display matrix added: ``-display_rotation`` (FFmpeg >= 6), else the
    ``rotate`` tag older muxers turn into a matrix."""
    try:
        _ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(dst),
                capture_output=True)
    except subprocess.CalledProcessError:
        _ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(dst))
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("rotated")
    src = d / "src.mp4"
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={W}x{H}:rate=25", "-frames:v", "30",
            "-c:v", "libx264", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0", "-bf", "2",
            "-pix_fmt", "yuv420p", "-threads", "1", str(src))
    out = {"src": src}
    for deg in (90, -90, 180):
        out[deg] = _rotate_copy(src, d / f"rot{deg}.mp4", deg)
    return out


def _expected_k(path) -> int:
    """np.rot90 turns from ffprobe's rotation (counter-clockwise degrees), asserting the clip
    really carries a display matrix (else every test here would pass vacuously)."""
    sd = _ffprobe_side_data(path)
    assert sd, f"{path}: ffmpeg wrote no display matrix"
    rot = int(round(float(sd["rotation"])))
    assert rot % 90 == 0 and rot % 360 != 0
    return (rot // 90) % 4


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("deg", [90, -90, 180])
def test_stored_frames_are_the_source_rotated(clips, deg, decoder):
    k = _expected_k(clips[deg])
    if deg == 180:
        assert k == 2
    else:   # the tool's sign convention varies by version; either way a quarter turn
        assert k in (1, 3)
    source = decode_all(clips["src"], decoder)          # no display matrix: coded pixels
    expected = np.rot90(source, k, axes=(1, 2))
    out = sample_video(clips[deg], {**PARAMS, "decoder": decoder})
    assert out["frames"].shape == expected.shape
    np.testing.assert_array_equal(out["frames"], expected)
    np.testing.assert_array_equal(decode_all(clips[deg], decoder), expected)
    # sparse sampling with seeks gives the same rotated pixels
    res = read_frames(clips[deg], [3, 17, 18, 29], decoder=decoder)
    assert res.seeks >= 1
    for i, frame in res.frames.items():
        np.testing.assert_array_equal(frame, expected[i])
    attrs = out["attrs"]
    dw, dh = (H, W) if k % 2 else (W, H)
    assert (attrs["width"], attrs["height"]) == (dw, dh)
    assert (attrs["frame_width"], attrs["frame_height"]) == (dw, dh)
    assert (attrs["coded_width"], attrs["coded_height"]) == (W, H)
    assert attrs["rotation"] % 360 == (90 * k) % 360 and attrs["hflip"] is False


@pytest.mark.parametrize("deg", [90, -90, 180])
def test_decoders_agree_and_match_ffmpeg_autorotate(clips, deg):
    a = sample_video(clips[deg], {**PARAMS, "decoder": "pyav"})["frames"]
    b = sample_video(clips[deg], {**PARAMS, "decoder": "opencv"})["frames"]
    np.testing.assert_array_equal(a, b)
    # the ffmpeg program rotates by itself (autorotate): an independent check of the direction
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips[deg]), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.uint8).reshape(a.shape)
    assert np.abs(ref.astype(int) - a.astype(int)).mean() < 2.0


def test_shard_and_manifest_record_display_size(clips, tmp_path):
    import pandas as pd

    rows = [("src.mp4", clips["src"]), ("rot90.mp4", clips[90])]
    df = pd.DataFrame({"video_id": [v for v, _ in rows], "label": "real",
                       "path": [str(p) for _, p in rows]})
    out = tmp_path / "shard-000.h5"
    sample_shard(df, out, tmp_path / "fail.csv", {**PARAMS, "strategy": "uniform", "num_frames": 4},
                 executor="serial", progress=False)
    k = _expected_k(clips[90])
    with ShardReader(out) as r:
        plain, rot = r.video_attrs("src.mp4"), r.video_attrs("rot90.mp4")
        assert (plain["width"], plain["height"]) == (W, H) and "rotation" not in plain
        assert (rot["width"], rot["height"]) == (H, W) and rot["rotation"] % 360 == 90 * k
        np.testing.assert_array_equal(r.read("rot90.mp4", "frame"),
                                      np.rot90(r.read("src.mp4", "frame"), k, axes=(1, 2)))
    for deg in (90, -90, 180):
        k = _expected_k(clips[deg])
        info = probe_video(clips[deg])
        assert (info["width"], info["height"]) == ((H, W) if k % 2 else (W, H))
        assert info["rotation"] % 360 == 90 * k
        vi = probe(clips[deg])
        assert (vi.width, vi.height) == (W, H)                      # coded
        assert (vi.display_width, vi.display_height) == (info["width"], info["height"])
        # ffprobe's matrix (the fallback without PyAV) gives the same orientation
        assert from_matrix(parse_ffprobe_matrix(_ffprobe_side_data(clips[deg])["displaymatrix"])) \
            == vi.orientation
    plain = probe_video(clips["src"])
    assert (plain["width"], plain["height"], plain["rotation"]) == (W, H, 0)


def test_manifest_probe_without_pyav_uses_ffprobe_then_opencv(clips, monkeypatch):
    want = probe_video(clips[90])
    monkeypatch.setattr(manifest_probe, "_av_streams", lambda path: None)
    assert manifest_probe.probe_video(clips[90]) == want
    monkeypatch.setattr(manifest_probe, "ffprobe_streams", lambda path: None)
    assert {k: v for k, v in manifest_probe.probe_video(clips[90]).items() if k != "has_audio"} == \
        {k: v for k, v in want.items() if k != "has_audio"}


def _remux_with_matrix(src, dst, degrees: float, hflip: bool):
    """PyAV remux (same packets) with a display matrix that also mirrors the picture."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        o.set_display_rotation(degrees, hflip=hflip)
        for packet in inp.demux(s):
            if packet.dts is None:
                continue
            packet.stream = o
            out.mux(packet)
    return dst


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("degrees", [0, 90])
def test_mirrored_display_matrix(clips, tmp_path, decoder, degrees):
    path = _remux_with_matrix(clips["src"], tmp_path / "mirror.mp4", degrees, hflip=True)
    m = parse_ffprobe_matrix(_ffprobe_side_data(path).get("displaymatrix"))
    assert m is not None and m[0] * m[4] - m[1] * m[3] < 0       # a mirroring matrix
    # (ffprobe's "rotation" ignores mirrors: it calls a plain left-right mirror -180 degrees)
    # libav applies the flip after the rotation (av_display_matrix_flip scales the x output)
    expected = np.rot90(decode_all(clips["src"], decoder), degrees // 90, axes=(1, 2))[:, :, ::-1]
    out = sample_video(path, {**PARAMS, "decoder": decoder})
    np.testing.assert_array_equal(out["frames"], expected)
    assert out["attrs"]["hflip"] is True and out["attrs"]["rotation"] == degrees


def test_orientation_from_matrix_cases():
    assert from_matrix(None).identity
    assert from_matrix((65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)).identity
    odd = from_matrix((46341, -46341, 0, 46341, 46341, 0, 0, 0, 1 << 30))   # 45 degrees
    assert odd.identity and "45.0 degrees" in odd.note
    img = np.arange(6).reshape(2, 3)
    assert np.array_equal(from_matrix((0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30)).apply(img),
                          np.rot90(img, 1))
    assert np.array_equal(from_matrix((0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)).apply(img),
                          np.rot90(img, -1))
    assert parse_ffprobe_matrix("\n00000000:            0      -65536           0\n"
                                "00000001:        65536           0           0\n"
                                "00000002:            0           0  1073741824\n") == \
        (0, -65536, 0, 65536, 0, 0, 0, 0, 1073741824)
