"""Exact sampling on real videos (DFDETECT_MEDIA): real encoders, B-frames, audio, edit lists."""

import numpy as np
import pytest

from dfdetect.video.decode import decode_all, read_frames
from dfdetect.video.indices import uniform
from dfdetect.video.keyframes import probe
from dfdetect.video.sample import sample_video

pytestmark = pytest.mark.media

# small clips with several keyframes (seeks happen) and one with a header count that differs
NAMES = ["face_recognition__short_hamilton_clip.mp4", "ip_lap__129.mp4",
         "vexpress__RD_Radio10_0_clip_0.mp4"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_real_video_sampling_is_exact(media, name, decoder):
    path = media / "videos" / name
    if not path.exists():
        pytest.skip(f"{path} not in this media folder")
    info = probe(path)
    full = decode_all(path, decoder)
    assert len(full) == info.n_frames            # demuxed count = decodable frames
    after_key = [int(k) + d for k in info.keyframes[1:5] for d in (0, 1)]
    wanted = sorted(set(uniform(info.n_frames, 8).tolist() + after_key) - {info.n_frames})
    res = read_frames(path, wanted, info=info, decoder=decoder)
    assert sorted(res.frames) == wanted
    for i in wanted:
        np.testing.assert_array_equal(res.frames[i], full[i])
    if len(info.keyframes) > 2:
        assert res.seeks > 0
    out = sample_video(path, {"strategy": "fps", "fps": 2.0, "decoder": decoder})
    assert out["frames"].shape[1:] == full.shape[1:]
    for row, i in enumerate(out["frame_index"]):
        np.testing.assert_array_equal(out["frames"][row], full[i])
