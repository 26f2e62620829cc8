"""Shared test settings: quiet threads, offline hubs, the real-media folder."""

from __future__ import annotations

import os
from pathlib import Path

from dfdetect.determinism import pin_cpu

# the stages' CPU dispatch pin (stages/common.py) in the test process too, before torch/numpy load:
# a test that computes in-process and in stage subprocesses or workers compares the same kernels
pin_cpu()

import pytest  # noqa: E402

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]


def media_dir() -> Path | None:
    value = os.environ.get("DFDETECT_MEDIA")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


@pytest.fixture
def media() -> Path:
    """The real-media folder (DFDETECT_MEDIA); the test is skipped when it is unset or missing."""
    path = media_dir()
    if path is None:
        pytest.skip("DFDETECT_MEDIA is unset or not a directory")
    return path


# the longest test files first, so that parallel workers (make test: pytest-xdist, one file per
# worker at a time) do not end on a long tail; the rest keeps pytest's order
HEAVY_FIRST = ("test_pipeline.py", "test_sharing.py", "test_predict.py", "test_dask.py")


def _weight(item) -> int:
    name = item.path.name
    return HEAVY_FIRST.index(name) if name in HEAVY_FIRST else len(HEAVY_FIRST)


def pytest_collection_modifyitems(config, items):
    items.sort(key=_weight)  # stable: order within each group unchanged
    if media_dir() is None:
        skip = pytest.mark.skip(reason="DFDETECT_MEDIA is unset or not a directory")
        for item in items:
            if "media" in item.keywords:
                item.add_marker(skip)
