"""Dataset layouts: turn a dataset root on disk into manifest rows.

Every layout module exposes ``scan(root, failures, *, seed, **options) -> DataFrame`` with the
columns ``video_id`` (path relative to ``root``, POSIX; never a basename), ``label``
("real"/"fake"), ``method``, ``quality``, ``split`` ("" where the dataset gives none: ingest then
assigns an identity-grouped split), ``identity`` and ``source_id``. A layout:

- raises :class:`LayoutError` when ``root`` is not a root of that layout, with a message naming
  the path and what was expected;
- records in ``failures`` every file its metadata lists that is absent on disk (reason
  ``"listed in <metadata file> but missing on disk"``) and every file on disk it cannot label;
- ignores options it does not know (the ``ingest`` params section is shared by all layouts).
"""

from __future__ import annotations

from . import celebdf, dfdc, ffpp, generic, uadfv
from ._base import LayoutError, ScanFn

#: layout name -> scan function (``demo``: the embedded demo dataset, written in generic layout)
LAYOUTS: dict[str, ScanFn] = {
    "ffpp": ffpp.scan,
    "celebdf": celebdf.scan,
    "uadfv": uadfv.scan,
    "dfdc": dfdc.scan,
    "generic": generic.scan,
    "demo": generic.scan,
}


def get_layout(name: str) -> ScanFn:
    """The scan function of a layout; :class:`LayoutError` naming the choices when unknown."""
    if name not in LAYOUTS:
        raise LayoutError(f"unknown dataset layout {name!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[name]


__all__ = ["LAYOUTS", "LayoutError", "get_layout"]
