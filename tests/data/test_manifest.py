import pandas as pd
import pytest

from dfdetect.data.manifest import (assign_missing_splits, grouped_split, normalise, read_manifest,
                                    write_manifest, write_shard_manifests)


def _df():
    rows = []
    for ident in "ABCDEFGHIJ":
        rows.append({"video_id": f"real/{ident}/0.mp4", "label": "real", "identity": ident})
    for t, s in zip("ABCDE", "FGHIJ"):
        rows.append({"video_id": f"fake/{t}_{s}.mp4", "label": "fake", "identity": t, "source_id": s})
    return normalise(pd.DataFrame(rows))


def test_normalise_validates():
    with pytest.raises(ValueError, match="real/fake"):
        normalise(pd.DataFrame({"video_id": ["a"], "label": ["maybe"]}))
    with pytest.raises(ValueError, match="duplicate"):
        normalise(pd.DataFrame({"video_id": ["a", "a"], "label": ["real", "fake"]}))
    df = normalise(pd.DataFrame({"video_id": ["x\\y.mp4"], "label": ["FAKE"]}))
    assert df.loc[0, "video_id"] == "x/y.mp4" and df.loc[0, "label"] == "fake"


def test_identity_grouped_split_never_leaks():
    df = assign_missing_splits(_df(), (0.6, 0.2, 0.2), seed=3)
    assert set(df["split"]) == {"train", "val", "test"}
    people = {}
    for _, r in df.iterrows():
        for person in filter(None, [r.identity, r.source_id]):
            people.setdefault(person, set()).add(r.split)
    assert all(len(s) == 1 for s in people.values()), people
    again = assign_missing_splits(_df(), (0.6, 0.2, 0.2), seed=3)
    assert list(again["split"]) == list(df["split"])


def test_grouped_split_small():
    m = grouped_split(["a", "b", "c"], (0.7, 0.15, 0.15), seed=0)
    assert sorted(m.values()) == ["test", "train", "val"]


def test_round_trip_and_shards(tmp_path):
    df = assign_missing_splits(_df(), seed=0)
    write_manifest(df, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    pd.testing.assert_frame_equal(back, df)
    paths = write_shard_manifests(df, tmp_path / "shards", 3)
    parts = [read_manifest(p) for p in paths]
    assert sum(len(p) for p in parts) == len(df)
    assert set().union(*[set(p.video_id) for p in parts]) == set(df.video_id)
