"""Leaderboard, ROC plot and failures summary of a pipeline run (the ``report`` stage).

Inputs are the files the ``evaluate`` stages write: ``metrics/<detector>.json`` (only files with
a ``"test"`` entry are detectors; other JSON files of ``metrics/`` are ignored),
``metrics/roc/<detector>.csv`` and the failures tables ``data/failures/**/*.csv``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from . import config as _cfg
from .failures import COLUMNS as FAILURE_COLUMNS
from .store import atomic_path

# params schema of the ``report`` section: no params (the stage reads metrics/ and failures)
PARAMS = _cfg.Section({})

log = logging.getLogger("dfdetect.report")

LEVELS = ("video", "frame")
BASE_METRICS = ["auc", "eer", "accuracy", "precision", "recall", "f1"]


def load_metrics(metrics_dir: str | Path, split: str = "test") -> dict[str, dict]:
    """``{detector: document}`` for every ``metrics_dir/*.json`` that has a ``split`` entry."""
    out: dict[str, dict] = {}
    for path in sorted(Path(metrics_dir).glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping %s: %s", path, err)
            continue
        if isinstance(doc, dict) and isinstance(doc.get(split), dict):
            out[str(doc.get("detector") or path.stem)] = doc
    return out


def _far_suffixes(docs: Mapping[str, dict], split: str) -> list[str]:
    sufs: set[str] = set()
    for doc in docs.values():
        for level in LEVELS:
            for key in (doc[split].get(level) or {}):
                if key.startswith("tar_") and not key.endswith("_threshold"):
                    sufs.add(key[4:])
    return sorted(sufs, key=float)


def _init_text(init: Any) -> str:
    """The human summary of what initialised a detector (its ``init`` entry when it has one;
    the full record stays in metrics/<detector>.json)."""
    if isinstance(init, Mapping):
        if "init" in init:
            return _init_text(init["init"])
        return "; ".join(f"{k}={_init_text(v)}" for k, v in sorted(init.items()))
    if isinstance(init, (list, tuple)):
        return ",".join(_init_text(v) for v in init)
    return "" if init is None else str(init)


def _num(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def leaderboard(docs: Mapping[str, dict], split: str = "test") -> pd.DataFrame:
    """One row per detector and level (video, frame) with the headline metrics.

    Detectors are ordered by video-level AUC (best first; missing AUC last, then by name);
    within a detector the video level comes first.
    """
    sufs = _far_suffixes(docs, split)
    metric_cols = BASE_METRICS + [f"{k}_{s}" for k in ("pauc", "tauc", "tar") for s in sufs] + ["logwp"]
    rows = []
    for name, doc in docs.items():
        params = doc.get("parameters") or {}
        total = params.get("total") if isinstance(params, Mapping) else params
        for level in LEVELS:
            m = doc[split].get(level)
            if not isinstance(m, Mapping):
                continue
            row = {"detector": name, "level": level}
            row.update({c: _num(m.get(c)) for c in metric_cols})
            row.update({"n": int(m.get("n", 0)), "n_pos": int(m.get("n_pos", 0)),
                        "n_neg": int(m.get("n_neg", 0)),
                        "init": _init_text(doc.get("init")),
                        "parameters": int(total) if total is not None and not
                        (isinstance(total, float) and math.isnan(total)) else -1})
            rows.append(row)
    cols = ["detector", "level"] + metric_cols + ["n", "n_pos", "n_neg", "init", "parameters"]
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    video_auc = {name: _num((doc[split].get("video") or {}).get("auc")) for name, doc in docs.items()}
    df["_auc"] = df["detector"].map(lambda d: -video_auc[d] if not math.isnan(video_auc[d]) else math.inf)
    df["_lvl"] = df["level"].map({lvl: i for i, lvl in enumerate(LEVELS)})
    df = df.sort_values(["_auc", "detector", "_lvl"], kind="stable").drop(columns=["_auc", "_lvl"])
    return df.reset_index(drop=True)


def _fmt(value: Any, col: str) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.4f}"
    if col == "parameters":
        return "–" if int(value) < 0 else f"{int(value):,}"
    return str(value).replace("|", "\\|")


def to_markdown(df: pd.DataFrame, title: str = "Leaderboard (test split)") -> str:
    """A GitHub-flavoured markdown table of the leaderboard (4 decimals, "–" for undefined)."""
    lines = [f"# {title}", ""]
    if df.empty:
        return "\n".join(lines + ["No evaluated detectors.", ""])
    cols = list(df.columns)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---" if c in ("detector", "level", "init") else "---:" for c in cols) + "|")
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], c) for c in cols) + " |")
    lines += ["", "AUC/pAUC/tAUC/TAR: higher is better; EER: lower is better; log(wP): higher "
              "(closer to 0) is better. pauc_F: standardized partial AUC up to FAR F (McClish); "
              "tauc_F: mean TAR over FAR in [0, F]; tar_F: TAR at FAR F; logwp: DFDC-preview "
              "ln(TP / (TP + 100 FP)) at the best operating point with recall >= evaluate.recall_for_logwp "
              "(params.yaml). Definitions: src/dfdetect/metrics.py.", ""]
    return "\n".join(lines)


def load_rocs(roc_dir: str | Path, names) -> dict[str, pd.DataFrame]:
    out = {}
    for name in names:
        path = Path(roc_dir) / f"{name}.csv"
        if path.exists():
            df = pd.read_csv(path)
            if {"far", "tar"} <= set(df.columns) and len(df):
                out[name] = df
    return out


def plot_roc(curves: Mapping[str, pd.DataFrame], path: str | Path,
             aucs: Mapping[str, float] | None = None) -> Path:
    """Video-level ROC of every detector: linear axes and log-FAR axes side by side (PNG)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    for name, df in curves.items():
        auc = (aucs or {}).get(name)
        label = name if auc is None or math.isnan(auc) else f"{name} (AUC {auc:.3f})"
        axes[0].plot(df["far"], df["tar"], label=label, linewidth=1.5)
        # FAR 0 has no place on a log axis: draw it at the left edge (1e-3)
        axes[1].plot(np.maximum(df["far"], 1e-3), df["tar"], label=label, linewidth=1.5)
    for ax, log in zip(axes, (False, True)):
        ax.plot([1e-4, 1], [1e-4, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("FAR (real videos flagged as fake)")
        ax.set_ylabel("TAR (fake videos detected)")
        ax.set_ylim(0, 1.01)
        ax.grid(True, alpha=0.3)
        if log:
            ax.set_xscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_title("ROC, low-FAR region (log FAR)")
        else:
            ax.set_xlim(0, 1)
            ax.set_title("ROC (video level, test split)")
    if curves:
        axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def collect_failures(failures_dir: str | Path) -> pd.DataFrame:
    """Every ``failures_dir/**/*.csv`` in one table (video_id, stage, frame_index, path, reason)."""
    frames = []
    for path in sorted(Path(failures_dir).rglob("*.csv")):
        try:
            df = pd.read_csv(path, keep_default_na=False, dtype=str)
        except pd.errors.EmptyDataError:
            continue
        if df.empty:
            continue
        for col in FAILURE_COLUMNS:
            if col not in df.columns:
                df[col] = ""
        if (df["stage"] == "").any():
            rel = path.relative_to(failures_dir)
            df.loc[df["stage"] == "", "stage"] = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        frames.append(df[FAILURE_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=FAILURE_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    out["frame_index"] = pd.to_numeric(out["frame_index"], errors="coerce").fillna(-1).astype(np.int64)
    return out.sort_values(["stage", "video_id", "frame_index", "reason"], kind="stable").reset_index(drop=True)


def failure_counts(failures: pd.DataFrame) -> pd.Series:
    """Number of failure rows per stage."""
    if failures.empty:
        return pd.Series(dtype=np.int64, name="failures")
    return failures.groupby("stage", sort=True).size().rename("failures")
