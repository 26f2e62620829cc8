"""Dataset layouts: turn a dataset root on disk into manifest rows.

Every layout module exposes ``scan(root, failures, *, seed, **options) -> DataFrame`` with the
columns ``video_id`` (path relative to ``root``, POSIX; never a basename), ``label``
("real"/"fake"), ``method``, ``quality``, ``split`` ("" where the dataset gives none: ingest then
assigns an identity-grouped split), ``identity`` and ``source_id``. A layout:

- raises :class:`LayoutError` when ``root`` is not a root of that layout, with a message naming
  the path and what was expected;
- records in ``failures`` every file its metadata lists that is absent on disk (reason
  ``"listed in <metadata file> but missing on disk"``) and every file on disk it cannot label;
- takes its options as keyword arguments of ``scan`` with their defaults: those are the
  layout's options (:func:`layout_options`), each an ``ingest`` param. The ``ingest`` params
  section is shared by all layouts, so :func:`check_options` drops the ones a layout does not
  take while they are unset or at their default, and refuses them (``ValueError``) when set.
"""

from __future__ import annotations

import inspect
from typing import Any

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


#: keyword arguments every scan gets from ingest itself (not layout options)
COMMON = ("seed", "follow_external_symlinks")


def layout_options(name: str) -> dict[str, Any]:
    """The options a layout takes (keyword arguments of its ``scan``) -> their defaults."""
    sig = inspect.signature(get_layout(name))
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in COMMON}


def all_options() -> dict[str, Any]:
    """Every option some layout takes -> its default (layouts sharing one share its default)."""
    out: dict[str, Any] = {}
    for name in LAYOUTS:
        for key, default in layout_options(name).items():
            out.setdefault(key, default)
    return out


def _unset(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, (list, tuple)) and not value)


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options of ``options`` that layout ``name`` takes; ValueError for an option no layout
    knows, or one another layout takes that is set (non-empty, not its default) for this one:
    ``--test_list x --layout ffpp`` is a mistake, never silently ignored."""
    mine = layout_options(name)
    known = all_options()
    out, wrong = {}, []
    for key, value in options.items():
        if key in mine:
            out[key] = value
        elif key not in known:
            raise ValueError(f"unknown ingest option {key!r}; layouts take {sorted(known)}")
        elif not (_unset(value) or value == known[key]):
            wrong.append(f"{key}={value!r}")
    if wrong:
        raise ValueError(f"ingest option(s) {', '.join(wrong)} do not apply to layout {name!r}, "
                         f"which takes {sorted(mine) or 'no option'}; unset them (or set the "
                         f"default) or choose the layout they belong to")
    return out


__all__ = ["LAYOUTS", "LayoutError", "all_options", "check_options", "get_layout",
           "layout_options"]
