"""Attributed text corpora: fortune files, Wikiquotes-style JSONL, author selection and splits."""

from __future__ import annotations

import json

import pytest

from dfdetect.text.corpus import (FORTUNES_DIR, clean_author, load_corpus, parse_fortune_file,
                                  read_fortunes, read_jsonl, select_authors, split_by_author)

FORTUNE = """A man who carries a cat by the tail learns something he can learn in no other way.
\t\t-- Mark Twain, "Tom Sawyer Abroad"
%
This entry has no attribution at all, so it is dropped by the parser.
%
Never put off till tomorrow what you can do the day after tomorrow just as well.
\t\t-- Mark Twain (1835-1910)
%
 _____
|  o  |
|_____|
\t-- Art
%
I can resist everything except temptation, as everybody knows by now.
\t\t-- Oscar Wilde, "Lady Windermere's Fan"
%
short
\t-- Oscar Wilde
"""


def test_parse_fortune_file(tmp_path):
    f = tmp_path / "quotes"
    f.write_text(FORTUNE)
    rows = parse_fortune_file(f)
    assert [r["author"] for r in rows] == ["Mark Twain", "Mark Twain", "Oscar Wilde"]
    assert rows[0]["text"].startswith("A man who carries a cat")
    assert all(r["source"] == "fortunes/quotes" for r in rows)


def test_clean_author():
    assert clean_author('Mark Twain, "Pudd\'nhead Wilson\'s Calendar"') == "Mark Twain"
    assert clean_author("Steve Jobs (1955-2011)") == "Steve Jobs"
    assert clean_author("this is a long sentence and not a name at all really") == ""


def test_read_jsonl_forms_and_errors(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text("\n".join([json.dumps({"author": "A", "text": "one two"}),
                            json.dumps({"speaker": "B", "quote": "three"}),
                            json.dumps({"name": "C", "quotes": ["x y", "z w"]})]) + "\n")
    df = read_jsonl(f)
    assert list(df["author"]) == ["A", "B", "C", "C"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"author": "A", "text": "ok"}\n{"text": "no author"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        read_jsonl(bad)


def test_select_and_split(tmp_path):
    rows = [{"author": a, "text": f"{a} text {i}", "source": "x"} for a, n in (("A", 10), ("B", 5), ("C", 2))
            for i in range(n)]
    import pandas as pd
    df = pd.DataFrame(rows)
    sel = select_authors(df, min_quotes=5)
    assert set(sel["author"]) == {"A", "B"}
    sel = select_authors(df, min_quotes=2, max_authors=2, max_per_author=4, seed=0)
    assert sel.groupby("author").size().to_dict() == {"A": 4, "B": 4}
    sp = split_by_author(select_authors(df, min_quotes=5), (0.6, 0.2, 0.2), seed=0)
    counts = sp.groupby(["author", "split"]).size().unstack(fill_value=0)
    assert counts.loc["A"].to_dict() == {"test": 2, "train": 6, "val": 2}
    assert (counts["train"] >= 1).all() and (counts["test"] >= 1).all()
    again = split_by_author(select_authors(df, min_quotes=5), (0.6, 0.2, 0.2), seed=0)
    assert sp.equals(again)


@pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="Debian fortunes data not installed")
def test_debian_fortunes_corpus():
    df = read_fortunes()
    assert len(df) > 1000
    assert (df["author"] == "Mark Twain").sum() >= 20
    c = load_corpus(min_quotes=15, max_authors=8, max_per_author=20, seed=0)
    assert c["author"].nunique() == 8
    assert set(c["split"]) == {"train", "val", "test"}
