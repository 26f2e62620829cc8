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


def attach_sets(docs: Mapping[str, dict], sets_metrics_dir: str | Path, set_scores_dir: str | Path,
                names: list[str] | None = None, **evaluate_kw) -> list[str]:
    """Add the test sets of the DAG to every detector's document, in place: ``doc["sets"][set]``
    is the ``test`` entry of ``sets_metrics_dir/<set>/<detector>.json`` (evaluate_set), and
    ``doc["pooled"]`` all fakes vs all reals of the detector's sets (ids prefixed by set name),
    measured from ``set_scores_dir/<set>/<detector>.csv`` (scores with the set's labels and
    identities) at the detector's own thresholds. ``evaluate_kw`` go to metrics.evaluate
    (aggregate, far_points, bootstrap, seed, ...). ``names``: the sets to attach (params
    ``test_sets``; None = every folder, e.g. a set removed from params but still on disk is left
    out only when names are given). Returns the set names attached."""
    from .metrics import evaluate, pool_sets  # noqa: PLC0415

    found = sorted(p.name for p in Path(sets_metrics_dir).glob("*") if p.is_dir())
    names = [n for n in found if names is None or n in set(names)]
    for det, doc in docs.items():
        pool = {}
        for name in names:
            path = Path(sets_metrics_dir) / name / f"{det}.json"
            if not path.exists():
                continue
            try:
                sdoc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                log.warning("skipping %s: %s", path, err)
                continue
            if isinstance(sdoc.get("test"), dict):
                doc.setdefault("sets", {})[name] = sdoc["test"]
            scores_path = Path(set_scores_dir) / name / f"{det}.csv"
            if scores_path.exists():
                sc = pd.read_csv(scores_path, dtype={"video_id": str, "identity": str}, keep_default_na=False)
                man = sc.drop_duplicates("video_id")[["video_id", "label", "identity"]
                                                     + [c for c in ("method", "quality") if c in sc]]
                pool[name] = (sc[["video_id", "frame_index", "score"]], man)
        if len(pool) > 1:   # with one set, pooled would repeat it
            kw = dict(evaluate_kw, thresholds=doc.get("thresholds"))
            doc[POOLED] = evaluate(*pool_sets(pool), **kw)
            doc[POOLED]["sets"] = sorted(pool)
    return names


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


CI_METRICS = ("auc", "eer")
SET_METRICS = ["auc", "auc_lo", "auc_hi", "eer", "eer_lo", "eer_hi", "tpr", "tnr", "flag_rate",
               "flag_rate_lo", "flag_rate_hi", "mean_score", "median_score", "n_videos",
               "n_identities"]
POOLED = "pooled"


def _recall_suffixes(docs: Mapping[str, dict], split: str) -> list[str]:
    sufs: set[str] = set()
    for doc in docs.values():
        for level in LEVELS:
            for key in (doc[split].get(level) or {}):
                if key.startswith("logwp_r") and key[7:8].isdigit() and key.count("_") == 1:
                    sufs.add(key[len("logwp_"):])
    return sorted(sufs, key=lambda k: float(k[1:]))


def set_names(docs: Mapping[str, dict]) -> list[str]:
    """Names of the extra test sets of any detector (sorted), then "pooled" when present."""
    names = sorted({str(n) for doc in docs.values() for n in (doc.get("sets") or {})})
    if any(isinstance(doc.get(POOLED), Mapping) for doc in docs.values()):
        names.append(POOLED)
    return names


def _ci(m: Mapping, key: str) -> tuple[float, float]:
    ci = m.get(f"{key}_ci")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return _num(ci[0]), _num(ci[1])
    return math.nan, math.nan


def _level_values(m: Mapping, cols) -> dict:
    row = {}
    for c in cols:
        if c.endswith("_lo") or c.endswith("_hi"):
            lo, hi = _ci(m, c[:-3])
            row[c] = lo if c.endswith("_lo") else hi
        elif c in ("n_videos", "n_identities"):
            row[c] = int(m[c]) if m.get(c) is not None else -1
        else:
            row[c] = _num(m.get(c))
    return row


def leaderboard(docs: Mapping[str, dict], split: str = "test") -> pd.DataFrame:
    """One row per detector and level (video, frame) with the headline metrics.

    In-dataset columns (``split``): AUC, EER, ..., log(wP), the bounds of the AUC/EER bootstrap
    intervals (``auc_lo``, ``auc_hi``, ``eer_lo``, ``eer_hi``), TPR/TNR at the threshold chosen
    on val, log(wP) at each recall (``logwp_r<R>``), counts (``n`` items, ``n_videos``,
    ``n_identities``). Then one column group per extra test set and "pooled" (``<set>:auc``,
    ``<set>:auc_lo``, ..., ``<set>:flag_rate``, ``<set>:mean_score``, ``<set>:n_videos``, ...;
    see ``SET_METRICS``). Detectors are ordered by video-level AUC (best first; missing AUC
    last, then by name); within a detector the video level comes first. Missing values are NaN
    (counts -1).
    """
    sufs = _far_suffixes(docs, split)
    metric_cols = BASE_METRICS + [f"{k}_{s}" for k in ("pauc", "tauc", "tar") for s in sufs] + ["logwp"]
    extra_cols = [f"{k}_{b}" for k in CI_METRICS for b in ("lo", "hi")] + ["tpr", "tnr", "threshold"] + \
        [f"logwp_{r}" for r in _recall_suffixes(docs, split)]
    groups = set_names(docs)
    group_cols = [f"{g}:{c}" for g in groups for c in SET_METRICS]
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
            row.update(_level_values(m, extra_cols))
            row.update({"n": int(m.get("n", 0)), "n_pos": int(m.get("n_pos", 0)),
                        "n_neg": int(m.get("n_neg", 0)),
                        "n_videos": int(m["n_videos"]) if m.get("n_videos") is not None else -1,
                        "n_identities": int(m["n_identities"]) if m.get("n_identities") is not None else -1,
                        "init": _init_text(doc.get("init")),
                        "parameters": int(total) if total is not None and not
                        (isinstance(total, float) and math.isnan(total)) else -1})
            for g in groups:
                part = doc.get(POOLED) if g == POOLED else (doc.get("sets") or {}).get(g)
                gm = part.get(level) if isinstance(part, Mapping) else None
                vals = _level_values(gm if isinstance(gm, Mapping) else {}, SET_METRICS)
                row.update({f"{g}:{c}": v for c, v in vals.items()})
            rows.append(row)
    cols = (["detector", "level"] + metric_cols + extra_cols +
            ["n", "n_pos", "n_neg", "n_videos", "n_identities", "init", "parameters"] + group_cols)
    df = pd.DataFrame(rows, columns=cols)
    if df.empty:
        return df
    video_auc = {name: _num((doc[split].get("video") or {}).get("auc")) for name, doc in docs.items()}
    df["_auc"] = df["detector"].map(lambda d: -video_auc[d] if not math.isnan(video_auc[d]) else math.inf)
    df["_lvl"] = df["level"].map({lvl: i for i, lvl in enumerate(LEVELS)})
    df = df.sort_values(["_auc", "detector", "_lvl"], kind="stable").drop(columns=["_auc", "_lvl"])
    return df.reset_index(drop=True)


BREAKDOWNS = ("by_method", "by_quality", "by_method_quality")
BREAKDOWN_COLUMNS = ["detector", "breakdown", "group", "auc", "auc_lo", "auc_hi", "eer", "eer_lo",
                     "eer_hi", "tpr", "tnr", "n", "n_pos", "n_neg", "n_videos", "n_identities"]


def breakdown_table(docs: Mapping[str, dict], split: str = "test") -> pd.DataFrame:
    """Video-level per-method / per-quality rows of every detector (``<split>.breakdowns``):
    detector, breakdown (by_method, by_quality, by_method_quality), group, AUC and EER with
    their interval bounds, TPR/TNR at the val threshold, counts. Detectors in ``docs`` order."""
    rows = []
    for name, doc in docs.items():
        bd = (doc.get(split) or {}).get("breakdowns") or {}
        for kind in BREAKDOWNS:
            for group, m in sorted((bd.get(kind) or {}).items()):
                if not isinstance(m, Mapping):
                    continue
                row = {"detector": name, "breakdown": kind, "group": str(group)}
                row.update(_level_values(m, ["auc", "auc_lo", "auc_hi", "eer", "eer_lo", "eer_hi",
                                             "tpr", "tnr", "n_videos", "n_identities"]))
                row.update({k: int(m.get(k) or 0) for k in ("n", "n_pos", "n_neg")})
                rows.append(row)
    return pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)


def _fmt(value: Any, col: str) -> str:
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        return f"{value:.4f}"
    if col == "parameters":
        return "–" if int(value) < 0 else f"{int(value):,}"
    return str(value).replace("|", "\\|")


def _with_ci(value: float, lo: float, hi: float) -> str:
    """``0.840 [0.710, 0.950]``; the point alone (4 decimals) without an interval; "–" if undefined."""
    if math.isnan(value):
        return "–"
    if math.isnan(lo) or math.isnan(hi):
        return f"{value:.4f}"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"


def _counts(videos: Any, ids: Any) -> str:
    v, i = int(videos), int(ids)
    return "–" if v < 0 else f"{v} / {i}" if i >= 0 else str(v)


def _set_cells(row: pd.Series, g: str) -> list[str]:
    get = lambda c: row[f"{g}:{c}"]  # noqa: E731
    if get("n_videos") < 0:
        return ["–"] * 5
    if not math.isnan(get("flag_rate")):   # a one-class set: its flag rate
        kind = "FAR" if math.isnan(get("tpr")) else "det."
        rate = f"{kind} {_with_ci(get('flag_rate'), get('flag_rate_lo'), get('flag_rate_hi'))}"
    else:
        rate = ("–" if math.isnan(get("tpr")) else f"TPR {get('tpr'):.3f} / TNR {get('tnr'):.3f}")
    p = "–" if math.isnan(get("mean_score")) else f"{get('mean_score'):.3f} / {get('median_score'):.3f}"
    return [_with_ci(get("auc"), get("auc_lo"), get("auc_hi")),
            _with_ci(get("eer"), get("eer_lo"), get("eer_hi")), rate, p,
            _counts(get("n_videos"), get("n_identities"))]


def _table(header: list[str], align: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def to_markdown(df: pd.DataFrame, title: str = "Leaderboard (test split)",
                breakdowns: pd.DataFrame | None = None) -> str:
    """A GitHub-flavoured markdown table of the leaderboard ("–" for undefined).

    AUC and EER carry their 95 % bootstrap interval, ``0.840 [0.710, 0.950]`` (4 decimals
    without one); ``videos / ids`` counts the videos and identities measured. When there are
    extra test sets, a second table has one column group per set and "pooled": AUC, EER, the
    rate at the val threshold (FAR of a real-only set, detection rate of a fake-only set, else
    TPR / TNR), mean / median P(fake) and videos / ids. ``breakdowns``
    (:func:`breakdown_table`) adds a per-method / per-quality table.
    """
    lines = [f"# {title}", ""]
    if df.empty:
        return "\n".join(lines + ["No evaluated detectors.", ""])
    hidden = {f"{k}_{b}" for k in CI_METRICS for b in ("lo", "hi")} | {"n_videos", "n_identities"}
    cols = [c for c in df.columns if ":" not in c and c not in hidden]
    header = cols[:cols.index("n_neg") + 1] + ["videos / ids"] + cols[cols.index("n_neg") + 1:]
    body = []
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            if c in CI_METRICS:
                cells.append(_with_ci(row[c], row[f"{c}_lo"], row[f"{c}_hi"]))
            else:
                cells.append(_fmt(row[c], c))
            if c == "n_neg":
                cells.append(_counts(row["n_videos"], row["n_identities"]))
        body.append(cells)
    align = ["---" if c in ("detector", "level", "init") else "---:" for c in header]
    lines += _table(header, align, body)
    lines += ["", "AUC/pAUC/tAUC/TAR: higher is better; EER: lower is better; log(wP): higher "
              "(closer to 0) is better. pauc_F: standardized partial AUC up to FAR F (McClish); "
              "tauc_F: mean TAR over FAR in [0, F]; tar_F: TAR at FAR F; logwp: DFDC-preview "
              "ln(TP / (TP + 100 FP)) at the best operating point with recall >= evaluate.recall_for_logwp "
              "(params.yaml); logwp_rR: the same at the threshold chosen on val for recall >= R. "
              "[lo, hi]: 95 % bootstrap interval resampling identities (evaluate.bootstrap draws). "
              "accuracy/precision/recall/f1/tpr/tnr: at the threshold chosen on the val split "
              "(evaluate.threshold_from). Definitions: src/dfdetect/metrics.py.", ""]
    groups = [c[:-len(":auc")] for c in df.columns if c.endswith(":auc")]
    if groups:
        header = ["detector", "level", "in-dataset auc"]
        for g in groups:
            header += [f"{g} auc", f"{g} eer", f"{g} rate at val thr.", f"{g} P(fake) mean / median",
                       f"{g} videos / ids"]
        body = [[_fmt(row["detector"], "detector"), _fmt(row["level"], "level"),
                 _with_ci(row["auc"], row["auc_lo"], row["auc_hi"])] +
                [cell for g in groups for cell in _set_cells(row, g)] for _, row in df.iterrows()]
        align = ["---", "---"] + ["---:"] * (len(header) - 2)
        lines += ["## Cross-dataset", ""] + _table(header, align, body)
        lines += ["", "One column group per test set of another dataset, then pooled (all their "
                  "fakes against all their reals). Thresholds are the ones chosen on the training "
                  "dataset's val split. A one-class set has no AUC/EER: its rate is the false-alarm "
                  "rate (FAR, reals flagged fake) or the detection rate (det., fakes flagged).", ""]
    if breakdowns is not None and len(breakdowns):
        header = ["detector", "breakdown", "group", "auc", "eer", "tpr", "tnr", "n_pos", "n_neg",
                  "videos / ids"]
        body = [[_fmt(r["detector"], "detector"), r["breakdown"], _fmt(r["group"], "group"),
                 _with_ci(r["auc"], r["auc_lo"], r["auc_hi"]),
                 _with_ci(r["eer"], r["eer_lo"], r["eer_hi"]), _fmt(r["tpr"], "tpr"),
                 _fmt(r["tnr"], "tnr"), str(r["n_pos"]), str(r["n_neg"]),
                 _counts(r["n_videos"], r["n_identities"])] for _, r in breakdowns.iterrows()]
        lines += ["## By method and quality (video level)", ""]
        lines += _table(header, ["---"] * 3 + ["---:"] * 7, body)
        lines += ["", "by_method: each method's fakes against the reals of the same qualities; "
                  "by_quality: every video of that quality; by_method_quality: one method's fakes "
                  "of one quality against that quality's reals. TPR/TNR at the val threshold.", ""]
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
