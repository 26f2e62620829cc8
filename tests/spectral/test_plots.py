"""hyperfake_plots stage: Fig. 3-style band images and the Eq. 3 band weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from dfdetect.data.manifest import write_manifest
from dfdetect.detectors.base import DetectorData, create

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "detectors"))

from test_hyperfake import TINY, _write_hsi  # noqa: E402


def test_plot_stage(tmp_path):
    manifest = _write_hsi(tmp_path)
    write_manifest(manifest, tmp_path / "manifest.csv")
    det = create("hyperfake", {**TINY, "epochs": 1})
    det.fit(DetectorData(manifest, sources={"hsi": tmp_path / "hsi"}, seed=1))
    det.save(tmp_path / "model")
    out = tmp_path / "plots"
    cmd = [sys.executable, str(REPO / "stages/hyperfake_plots.py"), "--params", str(REPO / "params.yaml"),
           "--hsi", str(tmp_path / "hsi"), "--faces", str(tmp_path / "nofaces"),
           "--manifest", str(tmp_path / "manifest.csv"), "--model", str(tmp_path / "model"),
           "--out-dir", str(out), "--csv", str(tmp_path / "alpha.csv")]
    subprocess.run(cmd, check=True, cwd=tmp_path, capture_output=True, timeout=120)
    for name in ("hyperfake_bands.png", "hyperfake_band_weights.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alpha = pd.read_csv(tmp_path / "alpha.csv")
    assert len(alpha) == 31 and alpha["wavelength_nm"].tolist()[:2] == [400, 410]
    assert abs(alpha["alpha_c0"].sum() - 1) < 1e-4
