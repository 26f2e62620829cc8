"""Tandem detection cost function (t-DCF) of a spoofing countermeasure (CM) with an ASV system.

Definitions follow the ASVspoof evaluation plans and their reference implementations:

- **ASVspoof 2019, legacy t-DCF** (Kinnunen et al., Odyssey 2018; ASVspoof 2019 evaluation
  plan): with the ASV error rates at its EER threshold (``Pfa_asv`` non-targets accepted,
  ``Pmiss_asv`` targets rejected, ``Pmiss_spoof_asv`` spoofs rejected),
  ``C1 = Ptar (Cmiss_cm - Cmiss_asv Pmiss_asv) - Pnon Cfa_asv Pfa_asv``,
  ``C2 = Cfa_cm Pspoof (1 - Pmiss_spoof_asv)``,
  ``t-DCF(s) = C1 Pmiss_cm(s) + C2 Pfa_cm(s)``, normalised by ``min(C1, C2)``.
- **ASVspoof 2021, revised t-DCF** (Kinnunen et al., IEEE/ACM TASLP 2020; ASVspoof 2021
  evaluation plan): ``C0 = Ptar Cmiss Pmiss_asv + Pnon Cfa Pfa_asv``, ``C1 = Ptar Cmiss - C0``,
  ``C2 = Pspoof Cfa_spoof Pfa_spoof_asv`` (spoofs accepted by the ASV),
  ``t-DCF(s) = C0 + C1 Pmiss_cm(s) + C2 Pfa_cm(s)``, normalised by ``C0 + min(C1, C2)``.

Both cost models: ``Pspoof = 0.05``, ``Ptar = 0.95 * 0.99 = 0.9405``,
``Pnon = 0.95 * 0.01 = 0.0095``; 2019: ``Cmiss_asv = Cmiss_cm = 1``, ``Cfa_asv = Cfa_cm = 10``;
2021: ``Cmiss = 1``, ``Cfa = 10``, ``Cfa_spoof = 10``. The reported value is the minimum of the
normalised curve over CM thresholds (min t-DCF).

Score orientation is ASVspoof's: higher CM score = more bona fide, higher ASV score = more
target-like. This project's detectors output P(fake); :func:`tdcf_from_fake_prob` flips them.
``Pmiss_cm(s)`` = bona fide with CM score < s, ``Pfa_cm(s)`` = spoofs with CM score >= s, over
every threshold of the pooled scores (plus one below all of them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
PSPOOF = 0.05
COST_2019 = {"Pspoof": PSPOOF, "Ptar": (1 - PSPOOF) * 0.99, "Pnon": (1 - PSPOOF) * 0.01,
             "Cmiss_asv": 1.0, "Cfa_asv": 10.0, "Cmiss_cm": 1.0, "Cfa_cm": 10.0}
COST_2021 = {"Pspoof": PSPOOF, "Ptar": (1 - PSPOOF) * 0.99, "Pnon": (1 - PSPOOF) * 0.01,
             "Cmiss": 1.0, "Cfa": 10.0, "Cfa_spoof": 10.0}


def det_curve(target: np.ndarray, nontarget: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frr, far, thresholds)`` at every threshold: ``frr`` = targets below it,
    ``far`` = non-targets at or above it; the first point lies below every score."""
    target = np.asarray(target, dtype=float).ravel()
    nontarget = np.asarray(nontarget, dtype=float).ravel()
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    tar_sums = np.cumsum(labels)
    non_sums = nontarget.size - (np.arange(1, scores.size + 1) - tar_sums)
    frr = np.concatenate([[0.0], tar_sums / target.size])
    far = np.concatenate([[1.0], non_sums / nontarget.size])
    thr = np.concatenate([[scores[order[0]] - 0.001], scores[order]])
    return frr, far, thr


def eer_threshold(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """``(eer, threshold)`` at the DET point where |FRR - FAR| is smallest."""
    frr, far, thr = det_curve(target, nontarget)
    i = int(np.argmin(np.abs(frr - far)))
    return float((frr[i] + far[i]) / 2), float(thr[i])


def asv_error_rates(tar: np.ndarray, non: np.ndarray, spoof: np.ndarray,
                    threshold: float | None = None) -> dict:
    """ASV error rates at ``threshold`` (default: the ASV's target/non-target EER threshold)."""
    tar, non, spoof = (np.asarray(a, dtype=float).ravel() for a in (tar, non, spoof))
    if tar.size == 0 or non.size == 0 or spoof.size == 0:
        raise ValueError("t-DCF needs ASV scores of target, non-target and spoof trials "
                         f"(got {tar.size}, {non.size}, {spoof.size})")
    eer, thr = eer_threshold(tar, non)
    thr = thr if threshold is None else float(threshold)
    pmiss_spoof = float(np.mean(spoof < thr))
    return {"threshold": thr, "eer": eer, "Pfa_asv": float(np.mean(non >= thr)),
            "Pmiss_asv": float(np.mean(tar < thr)), "Pmiss_spoof_asv": pmiss_spoof,
            "Pfa_spoof_asv": 1.0 - pmiss_spoof}


def _check_cm(bona: np.ndarray, spoof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bona = np.asarray(bona, dtype=float).ravel()
    spoof = np.asarray(spoof, dtype=float).ravel()
    if bona.size == 0 or spoof.size == 0:
        raise ValueError("t-DCF needs CM scores of bona fide and spoofed trials")
    both = np.concatenate([bona, spoof])
    if not np.isfinite(both).all():
        raise ValueError("t-DCF: CM scores contain NaN or infinite values")
    return bona, spoof


def _check_priors(cost: Mapping[str, float]) -> None:
    if any(cost[k] < 0 for k in ("Ptar", "Pnon", "Pspoof")) or \
            abs(cost["Ptar"] + cost["Pnon"] + cost["Pspoof"] - 1) > 1e-10:
        raise ValueError("t-DCF: prior probabilities must be non-negative and sum to 1")


def tdcf_2019(bona_cm, spoof_cm, asv: Mapping[str, float], cost: Mapping[str, float] = COST_2019) -> dict:
    """ASVspoof 2019 legacy normalised t-DCF curve and its minimum."""
    bona, spoof = _check_cm(bona_cm, spoof_cm)
    _check_priors(cost)
    pmiss_cm, pfa_cm, thr = det_curve(bona, spoof)
    c1 = cost["Ptar"] * (cost["Cmiss_cm"] - cost["Cmiss_asv"] * asv["Pmiss_asv"]) \
        - cost["Pnon"] * cost["Cfa_asv"] * asv["Pfa_asv"]
    c2 = cost["Cfa_cm"] * cost["Pspoof"] * (1 - asv["Pmiss_spoof_asv"])
    if c1 < 0 or c2 < 0:
        raise ValueError(f"t-DCF 2019: negative weights C1={c1}, C2={c2}; check the ASV error rates")
    curve = (c1 * pmiss_cm + c2 * pfa_cm) / min(c1, c2)
    i = int(np.argmin(curve))
    return {"min_tdcf": float(curve[i]), "threshold": float(thr[i]), "C1": float(c1), "C2": float(c2),
            "curve": curve, "thresholds": thr}


def tdcf_2021(bona_cm, spoof_cm, asv: Mapping[str, float], cost: Mapping[str, float] = COST_2021) -> dict:
    """ASVspoof 2021 revised normalised t-DCF curve and its minimum."""
    bona, spoof = _check_cm(bona_cm, spoof_cm)
    _check_priors(cost)
    pmiss_cm, pfa_cm, thr = det_curve(bona, spoof)
    c0 = cost["Ptar"] * cost["Cmiss"] * asv["Pmiss_asv"] + cost["Pnon"] * cost["Cfa"] * asv["Pfa_asv"]
    c1 = cost["Ptar"] * cost["Cmiss"] - c0
    c2 = cost["Pspoof"] * cost["Cfa_spoof"] * asv["Pfa_spoof_asv"]
    if c0 < 0 or c1 < 0 or c2 < 0:
        raise ValueError(f"t-DCF 2021: negative weights C0={c0}, C1={c1}, C2={c2}")
    curve = (c0 + c1 * pmiss_cm + c2 * pfa_cm) / (c0 + min(c1, c2))
    i = int(np.argmin(curve))
    return {"min_tdcf": float(curve[i]), "threshold": float(thr[i]), "C0": float(c0), "C1": float(c1),
            "C2": float(c2), "curve": curve, "thresholds": thr}


def read_asv_scores(path: str | Path) -> dict[str, np.ndarray]:
    """ASV scores by trial key (``target`` / ``nontarget`` / ``spoof``): a CSV with columns
    ``key`` and ``score``, or ASVspoof's whitespace-separated score files whose last two
    columns are the key and the score (``LA_0039 A07 spoof -1.23``)."""
    path = Path(path)
    if path.suffix == ".csv":
        df = pd.read_csv(path)
        if not {"key", "score"} <= set(df.columns):
            raise ValueError(f"{path}: ASV score CSV needs columns key, score")
        keys, scores = df["key"].astype(str).to_numpy(), df["score"].to_numpy(float)
    else:
        rows = [l.split() for l in path.read_text().splitlines() if l.strip()]
        keys = np.array([r[-2] for r in rows])
        scores = np.array([float(r[-1]) for r in rows])
    out = {k: scores[keys == k] for k in ("target", "nontarget", "spoof")}
    if any(v.size == 0 for v in out.values()):
        raise ValueError(f"{path}: needs target, nontarget and spoof ASV trials "
                         f"(found {[f'{k}={v.size}' for k, v in out.items()]})")
    return out


ASV19_SCORE_PARTS = {"dev": "dev", "eval": "eval"}


def asvspoof2019_asv_scores(paths: Iterable[str]) -> Path | None:
    """The ASV score file that ASVspoof 2019 LA ships for the partition of ``paths`` (audio
    files ``.../ASVspoof2019_LA_<dev|eval>/flac/<FILE>.flac``):
    ``<LA>/ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.<dev|eval>.gi.trl.scores.txt``. None when
    the paths are not of that layout, span several partitions or trees, are train files (no
    ASV scores) or the file is absent."""
    found = set()
    for path in paths:
        parent = Path(str(path)).parent
        if parent.name != "flac" or not parent.parent.name.startswith("ASVspoof2019_LA_"):
            return None
        part = parent.parent.name[len("ASVspoof2019_LA_"):]
        if part not in ASV19_SCORE_PARTS:
            return None
        found.add((parent.parent.parent, part))
    if len(found) != 1:
        return None
    base, part = found.pop()
    f = base / "ASVspoof2019_LA_asv_scores" / f"ASVspoof2019.LA.asv.{ASV19_SCORE_PARTS[part]}.gi.trl.scores.txt"
    if not f.is_file():
        log.info("%s: not found; no t-DCF without ASV scores", f)
        return None
    return f


def tdcf_from_fake_prob(y, p_fake, asv_scores: Mapping[str, np.ndarray]) -> dict:
    """Both min t-DCFs of detector scores ``p_fake`` (y = 1 fake) with ASV trial scores."""
    y = np.asarray(y).astype(bool)
    cm = -np.asarray(p_fake, dtype=float)             # higher = more bona fide
    asv = asv_error_rates(asv_scores["target"], asv_scores["nontarget"], asv_scores["spoof"])
    t19 = tdcf_2019(cm[~y], cm[y], asv)
    t21 = tdcf_2021(cm[~y], cm[y], asv)
    return {"asv": asv, "min_tdcf_2019": t19["min_tdcf"], "min_tdcf_2021": t21["min_tdcf"],
            "cost_model_2019": dict(COST_2019), "cost_model_2021": dict(COST_2021)}
