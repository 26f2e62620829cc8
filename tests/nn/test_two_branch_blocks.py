"""Building blocks of two_branch.txt: Deep LoG, hypersphere loss, the network, sequence windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from dfdetect.nn.data import SequenceDataset, video_windows
from dfdetect.nn.layers import DeepLoG
from dfdetect.nn.losses import hypersphere_loss
from dfdetect.store import ShardWriter


# ----------------------------------------------------------------------------- Deep LoG
@pytest.mark.parametrize("shape", [(2, 8, 16, 16), (1, 8, 15, 9), (1, 8, 2, 2), (1, 8, 1, 1)])
def test_deeplog_shapes(shape):
    out = DeepLoG(8)(torch.randn(shape))
    assert out.shape == shape


def test_deeplog_constant_map_gives_exactly_zero():
    m = DeepLoG(8)
    for value in (0.7123, -3.1, 1e4):
        x = torch.full((2, 8, 13, 10), value)
        assert torch.count_nonzero(m(x)) == 0
        assert all(torch.count_nonzero(b) == 0 for b in m.bands(x))


def test_deeplog_checkerboard_passes_and_ramp_is_aligned():
    m = DeepLoG(4)
    i = torch.arange(16)
    cb = ((i[:, None] + i[None, :]) % 2).float().expand(1, 4, 16, 16)
    for band in m.bands(cb):        # the binomial kernel removes the Nyquist frequency entirely
        assert band.abs().mean().item() == pytest.approx(0.5, abs=1e-6)
    ramp = (torch.arange(32.0) / 32).view(1, 1, 1, 32).expand(1, 4, 32, 32)
    b1 = m.bands(ramp)[0][..., 8:-8, 8:-8]       # no half-pixel shift at scale 1
    assert b1.abs().max().item() < 1e-5


def test_deeplog_kernels_are_buffers_and_mix_is_band_mean():
    m = DeepLoG(4, scales=3)
    assert [n for n, _ in m.named_parameters()] == ["mix.weight"]
    assert {"kernel_v", "kernel_h"} <= {n for n, _ in m.named_buffers()}
    w = m.mix.weight[:, :, 0, 0]
    assert torch.allclose(w[1, [1, 5, 9]], torch.full((3,), 1 / 3)) and w.sum().item() == pytest.approx(4.0)


# ----------------------------------------------------------------------------- loss
def test_hypersphere_loss_hand_computed():
    d = torch.tensor([0.01, 0.5, 2.0, 1.0])
    y = torch.tensor([0.0, 0.0, 1.0, 1.0])
    # reals: [0.01-0.042]+ = 0, [0.5-0.042]+ = 0.458 -> mean 0.229
    # fakes: [1.638-2]+ = 0, [1.638-1]+ = 0.638 -> mean 0.319
    assert hypersphere_loss(d, y, 0.042, 1.638).item() == pytest.approx(0.229 + 0.319)
    ok = hypersphere_loss(torch.tensor([0.0, 0.04, 1.7]), torch.tensor([0.0, 0.0, 1.0]), 0.042, 1.638)
    assert ok.item() == 0.0
    # each term normalised by its own class count: 3 reals and 1 fake
    d = torch.tensor([1.042, 0.0, 0.0, 0.638])
    y = torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert hypersphere_loss(d, y, 0.042, 1.638).item() == pytest.approx(1 / 3 + 1.0)


def test_hypersphere_loss_one_class_and_gradients():
    reals = hypersphere_loss(torch.tensor([0.5, 0.1]), torch.zeros(2), 0.1, 1.0)
    assert reals.item() == pytest.approx(0.2)
    fakes = hypersphere_loss(torch.tensor([0.5, 2.0]), torch.ones(2), 0.1, 1.0)
    assert fakes.item() == pytest.approx(0.25)
    empty = hypersphere_loss(torch.zeros(0, requires_grad=True), torch.zeros(0), 0.1, 1.0)
    assert empty.item() == 0.0 and empty.requires_grad
    d = torch.tensor([0.5, 0.5], requires_grad=True)
    hypersphere_loss(d, torch.tensor([0.0, 1.0]), 0.1, 1.0).backward()
    assert d.grad[0] > 0 and d.grad[1] < 0       # descent: real pulled in, fake pushed out
    with pytest.raises(ValueError, match="r_in < r_out"):
        hypersphere_loss(d, torch.zeros(2), 1.0, 1.0)


# ----------------------------------------------------------------------------- network
@pytest.fixture(scope="module")
def nets():
    from dfdetect.nn.two_branch import build

    full, _ = build({}, "none", 0)
    single, _ = build({"branches": 1, "temporal": "none"}, "none", 0)
    return full, single


def test_network_shapes_and_branches(nets):
    full, single = nets
    x = torch.randn(2, 3, 3, 32, 32)
    full.eval(), single.eval()
    with torch.no_grad():
        assert full.embed(x).shape == (2, 256) and full(x).shape == (2,)
        assert single.embed(x).shape == (2, 3, 1024) and single(x).shape == (2,)
    assert hasattr(full, "log") and hasattr(full, "fuse") and full.fuse.groups == 2
    assert not hasattr(single, "log") and not hasattr(single, "fuse") and not hasattr(single, "lstm")
    # the LoG branch starts as a copy of the RGB stem; fusion starts as the RGB identity
    assert torch.equal(full.log[0].weight, full.rgb[0].weight)
    w = full.fuse.weight[:, :, 0, 0]
    assert torch.equal(w.sum(dim=1), torch.ones(128)) and w[0, 0] == 1 and w[64, 0] == 1


def _cover(model, groups):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    assert set(ids) == {id(p) for p in model.parameters()}, "a parameter is in no group"


def test_param_groups_cover_every_parameter_once(nets):
    full, single = nets
    groups = full.param_groups(1e-3)
    _cover(full, groups)
    lr = {g["name"]: g["lr"] for g in groups}
    assert lr == {"lstm": 1e-3, "denseblock4+norm5": 5e-4, "denseblock3+transition3": 2.5e-4,
                  "denseblock2+transition2": 1.25e-4, "rgb": 6.25e-5, "log": 1e-3, "fuse": 1e-3}
    groups = single.param_groups(1e-4)
    _cover(single, groups)
    assert {g["name"]: g["lr"] for g in groups}["denseblock4+norm5"] == 1e-4   # no LSTM: L shifts
    one = full.param_groups(1e-3, "none")
    _cover(full, one)
    assert len(one) == 1


def test_set_center_is_mean_descriptor(nets):
    full, _ = nets
    x = torch.randn(3, 2, 3, 32, 32)
    loader = [(x[:2], torch.zeros(2)), (x[2:], torch.zeros(1))]
    assert full.set_center(loader) == 3
    full.eval()
    with torch.no_grad():
        phi = full.embed(x)
        assert torch.allclose(full.center, phi.mean(0), atol=1e-6)
        assert torch.allclose(full(x), (phi - phi.mean(0)).norm(dim=1), atol=1e-5)
    assert "center" not in dict(full.named_parameters())


# ----------------------------------------------------------------------------- sequences
def test_video_windows_stride_phases_and_padding():
    assert video_windows([0, 7, 14, 21, 28], 3, 7) == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    # faces stored every frame, 1 in 7 wanted: k = 7 phases
    wins = video_windows(list(range(16)), 2, 7)
    assert [0, 7] in wins and [1, 8] in wins and [8, 15] in wins and [0, 1] not in wins
    assert video_windows([0, 7], 4, 7) == [[0, 1, 1, 1]]
    assert video_windows([], 4, 7) == []


def _store(tmp_path, n_frames=(5, 5, 2, 5, 5, 5)):
    labels = ["real", "real", "real", "fake", "fake", "fake"]
    methods = ["", "", "", "a", "a", "b"]
    rows = []
    with ShardWriter(tmp_path / "faces" / "shard-0.h5") as w:
        for v, (lab, met, n) in enumerate(zip(labels, methods, n_frames)):
            vid = f"{lab}/v{v}.mp4"
            faces = np.full((n, 8, 8, 3), v, dtype=np.uint8)
            faces[:, 0, 0, 0] = np.arange(n)
            w.add_video(vid, [7 * k for k in range(n)], face=faces)
            rows += [{"video_id": vid, "frame_index": 7 * k, "y": float(lab == "fake"), "method": met}
                     for k in range(n)]
    from dfdetect.store import Store

    idx = Store(tmp_path / "faces").index()
    return tmp_path / "faces", pd.DataFrame(rows).merge(idx, on=["video_id", "frame_index"])


def test_sequence_dataset_epochs(tmp_path):
    src, items = _store(tmp_path)
    ds = SequenceDataset(src, items, 3, 7, mode="epoch", seed=1, real_oversample=2, fake_undersample=2)
    # 3 reals x 2 + fakes: method a 2 -> 1, method b 1 -> 1
    assert len(ds) == 8 and ds.labels.sum() == 2 and ds.padded_videos == 1
    first = list(ds.windows)
    ds.set_epoch(1)
    epochs = [first, list(ds.windows)]
    again = SequenceDataset(src, items, 3, 7, mode="epoch", seed=1, real_oversample=2, fake_undersample=2)
    assert again.windows == first
    for e in range(2, 8):
        ds.set_epoch(e)
        epochs.append(list(ds.windows))
    assert len({str(e) for e in epochs}) > 1                      # windows are redrawn per epoch
    kept_a = {tuple(w) for e in epochs for v, w in e if ds.video_methods[v] == "a"}
    assert len({ds.items.loc[w[0], "video_id"] for w in kept_a}) == 2  # both method-a fakes appear
    x, y, i = ds[0]
    assert x.shape == (3, 8, 8, 3) and i == 0


def test_sequence_dataset_workers_give_the_same_batches(tmp_path):
    from dfdetect.nn.data import FaceTransform
    from dfdetect.nn.train import make_loader

    src, items = _store(tmp_path)
    out = []
    for workers in (0, 2):
        ds = SequenceDataset(src, items, 3, 7, mode="epoch", seed=1, transform=FaceTransform(8),
                             real_oversample=2, fake_undersample=2)
        ds.set_epoch(3)
        dl = make_loader(ds, 3, shuffle=True, seed=5, num_workers=workers)
        out.append(torch.cat([b[0] for b in dl]))
    assert torch.equal(out[0], out[1])


def test_sequence_dataset_inference_covers_every_frame(tmp_path):
    src, items = _store(tmp_path)
    ds = SequenceDataset(src, items, 3, 7, mode="all", seed=0)
    covered = {r for _, w in ds.windows for r in w}
    assert covered == set(range(len(ds.items)))
    capped = SequenceDataset(src, items, 3, 7, mode="all", max_windows=2)
    assert max(sum(v == k for v, _ in capped.windows) for k in range(6)) == 2
    # every stored frame, 1 in 7 over 30 frames: 7 phases; a cap of 3 still covers every face
    every = pd.DataFrame({"video_id": "real/v0.mp4", "frame_index": np.arange(30), "y": 0.0,
                          "method": "", "shard": 0, "row": 0})
    sparse = SequenceDataset(src, every, 3, 7, mode="all", max_windows=3)
    assert {r for _, w in sparse.windows for r in w} == set(range(30)) and len(sparse) > 3
    mid = SequenceDataset(src, items, 3, 7, mode="middle")
    assert len(mid) == 6
    disjoint = SequenceDataset(src, items, 3, 7, mode="disjoint")
    assert len(disjoint) == 6            # 5 faces -> one disjoint window of 3; 2 faces -> padded


def test_mixed_precision_forward_keeps_a_float32_centre(nets):
    """The CUDA path's dtype handling, as far as a CPU allows: under bf16 autocast the distance
    is computed against the float32 centre cast to the descriptor's dtype, and is finite."""
    full, _ = nets
    x = torch.randn(2, 2, 3, 32, 32)
    full.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        d = full(x)
    assert full.center.dtype == torch.float32 and torch.isfinite(d.float()).all() and d.shape == (2,)
