"""Who a file shows, from its path: the identity options of make_demo sources and of ingest's
flat single-label folders (``identity_from``, ``identity_regex``).

- ``identity_regex`` (non-empty) is searched in the path relative to the root; group 1 (or
  the whole match without a group) is the identity, shared by every file it matches;
- else ``identity_from: folder``: the name of the file's folder (every file of it one person);
- else ``identity_from: file``: one person per file.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

IDENTITY_FROM = ("file", "folder")


def check_identity_options(identity_from: str, identity_regex: str = "") -> None:
    """ValueError naming the bad option (unknown ``identity_from``, a regex that does not compile)."""
    if identity_from not in IDENTITY_FROM:
        raise ValueError(f"identity_from must be one of {list(IDENTITY_FROM)}, got {identity_from!r}")
    if identity_regex:
        try:
            re.compile(str(identity_regex))
        except re.error as err:
            raise ValueError(f"identity_regex {identity_regex!r} is not a valid regex: {err}") from err


def path_identity(rel: str, identity_from: str = "file", identity_regex: str = "",
                  root_name: str = "") -> tuple[str, bool]:
    """``(identity, grouped)`` of the file at ``rel`` (POSIX path relative to the root).

    ``grouped`` is true when several files may share the identity (regex or folder); false
    means one person per file, and ``identity`` is then the file's stem (callers that need a
    unique key use the path). A file directly under the root takes ``root_name`` as its folder.
    """
    p = PurePosixPath(rel)
    grouped = identity_from == "folder"
    if grouped:
        base = p.parent.name if p.parent.name else root_name
    else:
        base = p.stem
    if identity_regex:
        m = re.search(str(identity_regex), rel)
        if m:
            base, grouped = (m.group(1) if m.groups() else m.group(0)), True
    return base, grouped
