"""Attributed text corpora for the authorship model (DADA's text branch, dada.txt §3.1, §4.1.1).

Two sources, both read into one table with columns ``author, text, source`` (+ ``split``):

- a Wikiquotes-style JSON Lines file (:func:`read_jsonl`): one object per line with an author
  and a text (keys ``author``/``speaker``/``name`` and ``text``/``quote``/``content``; a
  ``quotes`` list per author is also accepted). The paper's own corpus is of this kind.
- the offline default (:func:`read_fortunes`): the real attributed quotations of Debian's
  ``fortunes`` data files (``/usr/share/games/fortunes/*``, fortune-mod's format): entries are
  separated by lines holding only ``%``; an entry whose last line(s) start with ``-- `` is
  attributed to the name there. The attribution is cleaned (work titles after a comma, years
  and remarks in parentheses, quotes removed); unattributed entries, ASCII art and entries
  that are too short or too long are dropped; binary ``.dat`` indexes, ``.u8`` links and
  offensive (``off/``) files are skipped.

:func:`select_authors` keeps authors with at least ``min_quotes`` texts (at most
``max_authors``, most prolific first, at most ``max_per_author`` texts each, seeded);
:func:`split_by_author` splits each author's texts into train/val/test (closed-set
attribution: the same authors in every split, as the paper's ABX/F1 evaluation needs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

FORTUNES_DIR = Path("/usr/share/games/fortunes")
COLUMNS = ["author", "text", "source"]

_ATTR = re.compile(r"^\s*--+\s*(.+?)\s*$")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SPACE = re.compile(r"\s+")
_AUTHOR_KEYS = ("author", "speaker", "name", "person")
_TEXT_KEYS = ("text", "quote", "content", "sentence")


def clean_author(raw: str) -> str:
    """A person's name from a fortune attribution line (``"Mark Twain, \\"Pudd'nhead\\""``
    -> ``"Mark Twain"``); ``""`` when nothing name-like is left."""
    s = _PAREN.sub(" ", raw)
    s = s.split(",")[0].split(";")[0]
    s = re.split(r"\s+(?:in|on|from|to)\s+\"", s)[0]
    s = s.strip().strip("\"'`.:- \t")
    s = _SPACE.sub(" ", s)
    if not s or len(s) > 40 or not re.search(r"[A-Za-z]", s):
        return ""
    if len(s.split()) > 5:                      # a sentence, not a name
        return ""
    return s


def clean_text(lines: Iterable[str]) -> str:
    return _SPACE.sub(" ", " ".join(l.strip() for l in lines)).strip()


def parse_fortune_file(path: str | Path, min_chars: int = 20, max_chars: int = 600) -> list[dict]:
    """Attributed entries of one fortune data file: ``[{author, text, source}]``."""
    path = Path(path)
    raw = path.read_bytes().decode("utf-8", errors="replace")
    out: list[dict] = []
    entry: list[str] = []

    def flush() -> None:
        if not entry:
            return
        lines = [l.rstrip() for l in entry]
        while lines and not lines[-1].strip():
            lines.pop()
        # the attribution: the last line starting with "--" (it may wrap onto one more line)
        k = None
        for i in range(len(lines) - 1, max(-1, len(lines) - 3), -1):
            if _ATTR.match(lines[i]) and lines[i].strip().startswith("--"):
                k = i
                break
        if k is None or k == 0:
            return
        author = clean_author(" ".join(l.strip() for l in lines[k:]).lstrip("- "))
        text = clean_text(lines[:k])
        if not author or not (min_chars <= len(text) <= max_chars):
            return
        # ASCII art and tables: few letters per character
        letters = sum(c.isalpha() for c in text)
        if letters < 0.5 * len(text):
            return
        out.append({"author": author, "text": text, "source": f"fortunes/{path.name}"})

    for line in raw.splitlines():
        if line.strip() == "%":
            flush()
            entry = []
        else:
            entry.append(line)
    flush()
    return out


def read_fortunes(directory: str | Path = FORTUNES_DIR, files: Sequence[str] | None = None,
                  min_chars: int = 20, max_chars: int = 600) -> pd.DataFrame:
    """Attributed quotations of every fortune data file in ``directory`` (or of ``files``),
    duplicates (same author and text) removed, in a stable order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{directory}: no fortune data files (apt-get install fortunes fortunes-min), or "
            "give a Wikiquotes-style JSONL corpus")
    if files:
        paths = [directory / f for f in files]
    else:
        paths = sorted(p for p in directory.iterdir()
                       if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8"))
    rows: list[dict] = []
    for p in paths:
        rows.extend(parse_fortune_file(p, min_chars=min_chars, max_chars=max_chars))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.drop_duplicates(["author", "text"]).reset_index(drop=True)


def _first(obj: dict, keys: Sequence[str]) -> str | None:
    for k in keys:
        if k in obj and obj[k] is not None:
            return obj[k]
    return None


def read_jsonl(path: str | Path, min_chars: int = 1) -> pd.DataFrame:
    """A Wikiquotes-style JSONL corpus (see module docstring) as ``author, text, source``.

    Raises ``ValueError`` naming the line of a malformed record."""
    path = Path(path)
    rows: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: expected an object, got {type(obj).__name__}")
            author = _first(obj, _AUTHOR_KEYS)
            if author is None:
                raise ValueError(f"{path}:{n}: no author field (one of {list(_AUTHOR_KEYS)})")
            quotes = obj.get("quotes")
            texts = quotes if isinstance(quotes, list) else [_first(obj, _TEXT_KEYS)]
            if texts == [None]:
                raise ValueError(f"{path}:{n}: no text field (one of {list(_TEXT_KEYS)} or quotes)")
            for t in texts:
                t = clean_text([str(t)])
                if len(t) >= min_chars:
                    rows.append({"author": str(author).strip(), "text": t, "source": path.name})
    return pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["author", "text"]).reset_index(drop=True)


def select_authors(df: pd.DataFrame, min_quotes: int = 10, max_authors: int = 0,
                   max_per_author: int = 0, seed: int = 0) -> pd.DataFrame:
    """Authors with ``>= min_quotes`` texts; the ``max_authors`` most prolific (ties by name)
    when > 0; at most ``max_per_author`` texts each (a seeded sample) when > 0."""
    counts = df["author"].value_counts()
    keep = counts[counts >= int(min_quotes)]
    keep = keep.sort_index().sort_values(ascending=False, kind="stable")
    if max_authors and int(max_authors) > 0:
        keep = keep.iloc[:int(max_authors)]
    out = df[df["author"].isin(keep.index)]
    if max_per_author and int(max_per_author) > 0:
        rng = np.random.default_rng(int(seed))
        parts = []
        for author in sorted(keep.index):
            rows = out[out["author"] == author]
            if len(rows) > max_per_author:
                rows = rows.iloc[np.sort(rng.choice(len(rows), int(max_per_author), replace=False))]
            parts.append(rows)
        out = pd.concat(parts) if parts else out.iloc[:0]
    return out.sort_values(["author", "text"], kind="stable").reset_index(drop=True)


def split_by_author(df: pd.DataFrame, fractions: Sequence[float] = (0.6, 0.2, 0.2),
                    seed: int = 0) -> pd.DataFrame:
    """Add ``split`` (train/val/test): each author's texts shuffled (seeded) and cut by
    ``fractions``; every author keeps at least one train text and, with >= 3 texts, one test."""
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {list(fractions)}")
    fr = fr / fr.sum()
    rng = np.random.default_rng(int(seed))
    split = np.empty(len(df), dtype=object)
    df = df.reset_index(drop=True)
    for author in sorted(df["author"].unique()):
        idx = np.nonzero((df["author"] == author).to_numpy())[0]
        idx = idx[rng.permutation(idx.size)]
        n = idx.size
        n_test = int(round(fr[2] * n))
        n_val = int(round(fr[1] * n))
        if n >= 3 and fr[2] > 0:
            n_test = max(1, n_test)
        n_test = min(n_test, n - 1)
        n_val = min(n_val, n - 1 - n_test)
        split[idx[:n - n_val - n_test]] = "train"
        split[idx[n - n_val - n_test:n - n_test]] = "val"
        split[idx[n - n_test:]] = "test"
    return df.assign(split=split)


def load_corpus(source: str = "fortunes", path: str = "", min_quotes: int = 10, max_authors: int = 0,
                max_per_author: int = 0, min_chars: int = 20, max_chars: int = 600,
                fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0) -> pd.DataFrame:
    """The training corpus of the text model: ``source`` ``"fortunes"`` (``path`` = the data
    directory, default Debian's) or ``"jsonl"`` (``path`` = the file); authors selected and
    split as above."""
    if source == "fortunes":
        df = read_fortunes(path or FORTUNES_DIR, min_chars=min_chars, max_chars=max_chars)
    elif source == "jsonl":
        if not path:
            raise ValueError("text corpus source 'jsonl' needs a path")
        df = read_jsonl(path)
        df = df[df["text"].str.len().between(min_chars, max_chars)]
    else:
        raise ValueError(f"unknown text corpus source {source!r} (fortunes | jsonl)")
    df = select_authors(df, min_quotes=min_quotes, max_authors=max_authors,
                        max_per_author=max_per_author, seed=seed)
    if df["author"].nunique() < 2:
        raise ValueError(f"text corpus {source}:{path or 'default'}: fewer than two authors with "
                         f">= {min_quotes} texts")
    return split_by_author(df, fractions, seed)
