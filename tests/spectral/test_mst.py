"""MST++: shapes, parameter count, padding, FlexiAttention, official checkpoint format, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dfdetect.spectral import mst, train


def test_baseline_parameter_count_is_mst_plus_plus():
    n = mst.count_parameters(mst.build("smsa"))
    assert abs(n - 1.62e6) / 1.62e6 < 0.02
    assert n == 1_619_625  # the reference implementation's exact count
    assert mst.count_parameters(mst.build("flexi")) == n  # FlexiAttention adds no parameters


@pytest.mark.parametrize("attention", ["smsa", "flexi"])
@pytest.mark.parametrize("hw", [(16, 16), (21, 30)])
def test_output_shape_any_size(attention, hw):
    torch.manual_seed(0)
    model = mst.build(attention).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *hw))
    assert out.shape == (2, 31, *hw)  # padded to a multiple of 8 inside, cropped back
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("attention", ["smsa", "flexi"])
@pytest.mark.parametrize("hw", [(24, 24), (40, 64)])
def test_no_grad_fast_path_equals_autograd_path(attention, hw):
    """Inference runs in place and in row bands (FFN); it must compute the same function."""
    torch.manual_seed(0)
    model = mst.build(attention).eval()
    x = torch.rand(2, 3, *hw)
    with torch.no_grad():
        a = model(x)
    b = model(x).detach()   # autograd on: no in-place ops
    assert torch.allclose(a, b, atol=1e-6)


def test_flops_counted_and_flexi_cheaper():
    base = mst.count_flops(mst.build("smsa"), 64, 64)
    flexi = mst.count_flops(mst.build("flexi"), 64, 64)
    assert base["flops"] > 1e9 and flexi["flops"] < base["flops"]


def test_official_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = mst.build("smsa").eval()
    with torch.no_grad():  # make every parameter matter
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    official = mst.to_official_state_dict(model.state_dict())
    # the authors' key layout: separate to_q/to_k/to_v, 1x1 convs, DataParallel prefix
    assert "body.0.encoder_layers.0.0.blocks.0.0.to_q.weight" in official
    assert official["body.2.bottleneck.blocks.0.1.fn.net.0.weight"].shape == (496, 124, 1, 1)
    assert "body.1.decoder_layers.1.0.bias" in official
    path = tmp_path / "mst_plus_plus.pth"
    torch.save({"epoch": 1, "iter": 10, "state_dict": {f"module.{k}": v for k, v in official.items()},
                "optimizer": {"state": {}, "param_groups": []}}, path)
    loaded = mst.load_official_checkpoint(path)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"module.something.weight": torch.zeros(1)}}, bad)
    with pytest.raises(KeyError, match="unexpected key"):
        mst.load_official_checkpoint(bad)


def test_save_load_weights_only(tmp_path):
    model = mst.build("flexi", flexi_factor=2)
    mst.save_weights(model, tmp_path / "m.pt")
    obj = torch.load(tmp_path / "m.pt", weights_only=True)
    assert obj["config"]["attention"] == "flexi"
    again = mst.load_weights(tmp_path / "m.pt")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again(x), model.eval()(x))


class _Payload:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_unloadable_weights_name_the_file(tmp_path):
    from dfdetect.model_files import ModelLoadError

    torch.save({"state_dict": {}, "x": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ModelLoadError) as err:
        mst.load_weights(tmp_path / "evil.pt")
    assert str(err.value) == f"{tmp_path / 'evil.pt'}: refused: the checkpoint contains pickled code (weights_only)"
    with pytest.raises(ModelLoadError, match="missing file"):
        mst.load_official_checkpoint(tmp_path / "none.pth")


def test_mrae_is_finite_on_zero_ground_truth():
    y = torch.zeros(1, 31, 4, 4)
    assert torch.isfinite(train.mrae(torch.full_like(y, 0.1), y))
    assert float(train.mrae(y + 1, y + 1)) == 0.0
    assert float(train.psnr(y + 0.5, y + 0.5)) > 100


def test_short_training_lowers_heldout_mrae():
    from dfdetect.spectral import scenes

    torch.set_num_threads(1)
    rgb, cube = scenes.make_scenes(8, 32, seed=3)
    vr, vc = scenes.make_scenes(3, 32, seed=3, split="heldout")
    torch.manual_seed(3)
    before = train.evaluate(mst.build("smsa"), vr, vc)["mrae"]
    model, summary = train.train(rgb, cube, attention="smsa", steps=8, batch_size=2, lr=2e-3, seed=3)
    after = train.evaluate(model, vr, vc)["mrae"]
    assert np.isfinite(after) and after < 0.8 * before
    # deterministic for a seed
    model2, _ = train.train(rgb, cube, attention="smsa", steps=8, batch_size=2, lr=2e-3, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_baselines_and_linear_warm_start():
    """metrics/mst.json reports the two baselines; init='linear' starts MST++ exactly at the map."""
    from dfdetect.spectral import scenes, train

    tr = train.as_pairs(*scenes.make_scenes(6, 32, seed=4))
    va = train.as_pairs(*scenes.make_scenes(3, 32, seed=4, split="heldout"))
    w = train.fit_linear_map(tr, seed=0)
    base = train.baselines(tr, va, linear=w)
    assert set(base) == {"mean_spectrum", "linear_map"}
    assert base["linear_map"]["psnr"] > base["mean_spectrum"]["psnr"]
    model = mst.build("flexi")
    train.init_linear(model, w)
    rgb = va[0][0]
    with torch.no_grad():
        out = model.eval()(torch.as_tensor(rgb[None]))[0].numpy()
    assert np.abs(out - np.einsum("chw,cb->bhw", rgb, w)).max() < 1e-5
    assert abs(train.evaluate(model, va)["psnr"] - base["linear_map"]["psnr"]) < 1e-3



def test_train_mst_stage_starts_at_the_linear_map(tmp_path):
    """train_mst.init: linear reaches the trainer: the run records init 'linear' and its model
    before training scores the linear baseline exactly (the stage once rebound ``init`` to a
    model in its variant loop, so every run trained from scratch while params said linear)."""
    import importlib.util
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("train_mst_stage", repo / "stages" / "train_mst.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    out, metrics = tmp_path / "mst", tmp_path / "mst.json"
    rc = stage.main(["--params", str(repo / "params.yaml"), "--out", str(out), "--metrics", str(metrics),
                     "--live", "", "--arad_root", "", "--steps", "1", "--variants", "[flexi]",
                     "--scenes.train", "3", "--scenes.heldout", "2", "--scenes.size", "32",
                     "--crop", "16", "--batch_size", "2", "--init", "linear"])
    assert rc == 0
    m = json.loads(metrics.read_text())
    v = m["variants"]["flexi"]
    assert v["init"] == "linear map"
    assert abs(v["heldout_untrained"]["psnr"] - m["baselines"]["linear_map"]["psnr"]) < 1e-3
