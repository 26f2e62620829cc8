"""Audio-video late fusion for predict: one logistic regression per audio (DADA) detector.

Inputs of a video: ``v`` = the mean P(fake) of the run's video detectors (the frame/face
detectors, video-level scores) and ``a`` = the audio detector's P(fake) of its sound track.
``P(fake) = sigmoid(b + w_v logit(v) + w_a logit(a))``, with ``(b, w_v, w_a)`` fitted on the
training DAG's **val** split where both modalities exist: the video detectors' val scores that
evaluate wrote (``data/scores/<name>.csv``) and the audio detector scored on the val videos'
audio tracks that the DAG extracted and transcribed (``data/audio``, ``data/transcripts.jsonl``).
Deterministic (lbfgs, no randomness). Without such val videos (both classes needed, at least
``MIN_VAL`` videos) the fusion is reported as not fitted, with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

log = logging.getLogger("dfdetect.predict")
MIN_VAL = 4
EPS = 1e-6
THRESHOLD = 0.5


def _logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass
class Fusion:
    audio: str
    video: list[str]
    status: str = "not fitted"
    reason: str = ""
    bias: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    val_videos: int = 0
    val_fake: int = 0
    aggregate: str = "mean"

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def describe(self) -> dict:
        out = {"audio_detector": self.audio, "video_detectors": list(self.video), "status": self.status,
               "threshold": THRESHOLD}
        if self.fitted:
            out.update(bias=round(self.bias, 6), weights={k: round(v, 6) for k, v in self.weights.items()},
                       val_videos=self.val_videos, val_fake=self.val_fake,
                       formula="sigmoid(bias + w_video logit(mean video P(fake)) + w_audio logit(audio P(fake)))",
                       summary=(f"logistic regression on {self.val_videos} val videos of the training DAG "
                                f"({self.val_fake} fake): mean of {', '.join(self.video)} and {self.audio}; "
                                f"w_video {self.weights['video']:.3f}, w_audio {self.weights['audio']:.3f}, "
                                f"bias {self.bias:.3f}"))
        else:
            out.update(reason=self.reason, summary=f"not fitted: {self.reason}")
        return out

    def combine(self, v: float, a: float) -> float:
        z = self.bias + self.weights["video"] * _logit(v) + self.weights["audio"] * _logit(a)
        return float(1.0 / (1.0 + np.exp(-z)))

    def apply(self, scores: Mapping[str, Any], manifest: pd.DataFrame) -> dict[str, dict]:
        """``{video_id: {"score" | "reason", "inputs"}}`` for the videos of a chunk."""
        from ..metrics import aggregate_videos  # noqa: PLC0415

        out: dict[str, dict] = {}
        if not self.fitted:
            return out
        per: dict[str, dict[str, float]] = {}
        for name in [*self.video, self.audio]:
            sc = scores.get(name)
            if isinstance(sc, pd.DataFrame) and len(sc):
                vs = aggregate_videos(sc, self.aggregate)
                per[name] = dict(zip(vs["video_id"], vs["score"].astype(float)))
        for vid in manifest["video_id"]:
            missing = [n for n in [*self.video, self.audio] if vid not in per.get(n, {})]
            if missing:
                out[vid] = {"reason": f"no score from {', '.join(missing)}"}
                continue
            v = float(np.mean([per[n][vid] for n in self.video]))
            a = per[self.audio][vid]
            out[vid] = {"score": self.combine(v, a), "inputs": {"video": round(v, 6), "audio": round(a, 6)}}
        return out

    def report_entry(self, value: dict | None) -> dict:
        entry: dict[str, Any] = {"audio_detector": self.audio, "video_detectors": list(self.video),
                                 "threshold": THRESHOLD}
        if not self.fitted:
            entry.update(score=None, reason=f"fusion not fitted: {self.reason}")
        elif value is None or "score" not in value:
            entry.update(score=None, reason=(value or {}).get("reason", "not scored"))
        else:
            s = round(value["score"], 6)
            entry.update(score=s, inputs=value["inputs"], verdict="fake" if s >= THRESHOLD else "real",
                         weights={k: round(w, 6) for k, w in self.weights.items()}, bias=round(self.bias, 6))
        return entry


def val_video_scores(root: Path, name: str, aggregate: str = "mean") -> dict[str, float] | None:
    """Val video scores of a video detector from evaluate's ``data/scores/<name>.csv``."""
    from ..metrics import aggregate_videos  # noqa: PLC0415

    path = Path(root) / "data" / "scores" / f"{name}.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, keep_default_na=False, dtype={"video_id": str})
    df = df[df["split"] == "val"]
    if df.empty:
        return None
    vs = aggregate_videos(df, aggregate)
    return dict(zip(vs["video_id"], vs["score"].astype(float)))


def fit_all(detectors, root: str | Path, params: Mapping, seed: int = 0,
            aggregate: str = "mean") -> dict[str, Fusion]:
    """One :class:`Fusion` per audio detector of the run (none without video detectors)."""
    root = Path(root)
    audio = [d for d in detectors if "audio" in d.inputs]
    video = [d for d in detectors if "audio" not in d.inputs]
    if not audio or not video:
        return {}
    out: dict[str, Fusion] = {}
    manifest_path = root / "data" / "manifest.csv"
    vval = {d.name: val_video_scores(root, d.name, aggregate) for d in video}
    with_val = [n for n, s in vval.items() if s]
    for ad in audio:
        f = Fusion(audio=ad.name, video=with_val, aggregate=aggregate)
        out[ad.name] = f
        if not manifest_path.is_file():
            f.reason = f"no training manifest {manifest_path}"
            continue
        if not with_val:
            f.reason = (f"no val scores of the video detectors in {root / 'data' / 'scores'} "
                        "(run the evaluate stages)")
            continue
        audio_store = root / "data" / "audio"
        transcripts = root / "data" / "transcripts.jsonl"
        if not any(audio_store.glob("shard-*.h5")) or not transcripts.is_file():
            f.reason = f"no extracted audio / transcripts of the training DAG ({audio_store}, {transcripts})"
            continue
        from ..data.manifest import read_manifest  # noqa: PLC0415
        from ..detectors.base import DetectorData  # noqa: PLC0415

        manifest = read_manifest(manifest_path)
        data = DetectorData(manifest, sources={"audio": audio_store, "transcripts": transcripts}, seed=seed,
                            progress=False)
        try:
            asc = ad.detector.score(data, "val")
        except Exception as err:  # noqa: BLE001 - reported as the fusion's reason
            f.reason = f"{ad.name} cannot score the val videos' audio: {type(err).__name__}: {err}"
            continue
        a = asc.groupby("video_id")["score"].mean().to_dict() if len(asc) else {}
        both = sorted(v for v in a if all(v in vval[n] for n in with_val))
        labels = manifest.set_index("video_id")["label"]
        y = np.asarray([labels[v] == "fake" for v in both], dtype=int)
        if len(both) < MIN_VAL or len(set(y.tolist())) < 2:
            f.reason = (f"{len(both)} val videos have both modalities scored "
                        f"({int(y.sum())} fake); need {MIN_VAL} or more with both classes")
            continue
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        x = np.column_stack([_logit([np.mean([vval[n][v] for n in with_val]) for v in both]),
                             _logit([a[v] for v in both])])
        lr = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000).fit(x, y)
        f.status, f.bias = "fitted", float(lr.intercept_[0])
        f.weights = {"video": float(lr.coef_[0, 0]), "audio": float(lr.coef_[0, 1])}
        f.val_videos, f.val_fake = len(both), int(y.sum())
        log.info("fusion %s: %s", ad.name, f.describe()["summary"])
    return out
