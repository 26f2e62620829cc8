"""Audio stages: DAG wiring (transcribe is cached on audio + its own params only), CLIs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dfdetect.store import ShardReader

REPO = Path(__file__).resolve().parents[2]
STAGES = ("make_demo_audio", "ingest_audio", "extract_audio", "transcribe")


def test_dvc_wiring():
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    tr = dvc["transcribe"]
    assert tr["params"] == ["transcribe"]                  # fusion / model params never rerun it
    assert "data/audio" in tr["deps"]
    assert not any(d.startswith(("models", "metrics", "params")) for d in tr["deps"])
    ex = dvc["extract_audio"]["do"]
    assert "data/audio_manifest/shard-${item}.csv" in ex["deps"]
    assert "data/manifest/shard-${item}.csv" in ex["deps"]
    assert dvc["extract_audio"]["foreach"] == "${sharding.shards}"
    assert "data/audio_manifest.csv" in dvc["ingest_audio"]["outs"]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params["transcribe"]["temperature"] == 0
    assert params["extract_audio"]["sample_rate"] == 16000


@pytest.mark.parametrize("stage", STAGES)
def test_stage_help(stage):
    out = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), "--help"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower() and len(out.stdout) > 300


@pytest.mark.slow
def test_stages_end_to_end(tmp_path):
    """make_demo_audio -> ingest_audio -> extract_audio@0,1 -> transcribe (faster-whisper)."""
    env = {**os.environ, "DFDETECT_CACHE": str(tmp_path / "cache")}

    def run(stage, *args):
        res = subprocess.run([sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
                             capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]

    t = tmp_path
    run("make_demo_audio", "--out", str(t / "demo"), "--allison", "3", "--tts", "3", "--vc", "3")
    run("ingest_audio", "--root", str(t / "demo"), "--out", str(t / "am.csv"), "--shard-dir",
        str(t / "am"), "--failures", str(t / "f_ingest.csv"), "--executor.backend", "serial")
    for shard in (0, 1):
        run("extract_audio", "--shard", str(shard), "--audio-manifest-dir", str(t / "am"),
            "--video-manifest-dir", str(t / "no_videos"), "--out-dir", str(t / "audio"),
            "--failures-dir", str(t / "f_extract"), "--executor.backend", "serial")
    n = sum(len(ShardReader(p).videos()) for p in sorted((t / "audio").glob("shard-*.h5")))
    assert n == 3 + 5 + 5 + 3 + 3
    run("transcribe", "--audio-dir", str(t / "audio"), "--out", str(t / "tr.jsonl"), "--metrics",
        str(t / "tr.json"), "--timings", str(t / "rtf.csv"), "--failures", str(t / "f_tr.csv"),
        "--engine", "faster-whisper", "--threads", "1")
    lines = [json.loads(x) for x in (t / "tr.jsonl").read_text().splitlines()]
    assert len(lines) == n and [x["id"] for x in lines] == sorted(x["id"] for x in lines)
    assert sum(bool(x["text"]) for x in lines) >= n - 1
    metrics = json.loads((t / "tr.json").read_text())
    assert metrics["transcribed"] == n and metrics["rtf"] > 0
