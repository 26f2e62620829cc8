"""DefakeHop (Chen et al., ICASSP 2021): c/w Saab features -> spatial PCA -> channel-wise soft
XGBoosts -> multi-region, multi-frame XGBoost.

Inputs: the ``saab`` store (``stages/saab_features.py``): per frame and region
(``left_eye``, ``right_eye``, ``mouth``) the PixelHop++ responses of hops 1-3, fields
``<region>_hop<h>`` shaped ``(H_h, W_h, K_h)`` (15x15, 7x7, 3x3 for 32x32 patches).

Training (train split only):

1. **Spatial PCA** per hop and region: the ``H_h*W_h`` responses of every channel of every train
   frame are the samples (one PCA shared by the channels of a hop, as in the paper's parameter
   count 225x45, 49x25, 9x5), each channel centred first (``pca_channel_norm: mean``: the
   per-unit Saab offsets removed); keep the fewest components reaching ``pca_energy`` (0.9) of
   the variance.
2. **Channel-wise soft classifiers**: one XGBoost (``max_depth`` 1, 100 trees) per channel per
   hop per region on that channel's PCA coefficients. Their train-split probabilities that feed
   the next classifier are, with ``channel_probs: out_of_fold``, **out-of-fold** (``n_folds``-fold
   cross-fitting stratified by label, grouped by the people that fakes link, see
   :func:`fold_groups`; where fakes link everyone, by target identity with each fold's training
   rows purged of the fold's faces, :func:`fold_train_masks`); with ``in_sample`` (the authors'
   code) the refit classifier's own; ``auto`` (default) is out-of-fold where fakes leave 2 or
   more groups of linked people per class and in-sample where they link everyone (see
   ``DefakeHop._channel_folds``). The classifier kept for scoring is refit on all train frames.
3. **Ensemble**: the channel probabilities of all regions are concatenated per frame, then the
   frame's vector is concatenated with those of its ``neighbours`` (3) frames before and after
   it and a final XGBoost (``max_depth`` 6, 100 trees)
   gives P(fake) per frame; the video score is the mean of its frames (evaluate stage).
   ``scale_pos_weight`` = #real / #fake in every XGBoost. Frames (``frame_step``, 6, in source
   frames, the authors' every 6th frame): where a video's sampled frames hold the grid
   ``frame_index % 6 == 0`` densely (two grid frames 6 apart), only its grid frames are used and
   the window takes the frames +-6, +-12, +-18 source frames away (a missing one, no face or past
   the ends, is replaced by the nearest present frame between it and the frame); other videos
   use every sampled frame and the adjacent sampled frames (clamped at the ends), as with
   ``frame_step: 0``. Counts in ``fit_summary["frame_selection"]`` and the metrics.
4. Optional **region heads** (``region_heads: true``): the same final classifier on one region's
   channel probabilities only, for the per-region AUCs of the paper's Table 1
   (``extra_metrics``); they are diagnostics and never enter the ensemble score.

Saved as XGBoost's JSON model format plus npz (PCA) and JSON (config), never pickled.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from .base import Detector, DetectorData, register

log = logging.getLogger(__name__)

REGIONS = ("left_eye", "right_eye", "mouth")


def field_name(region: str, hop: int) -> str:
    return f"{region}_hop{hop}"


# ----------------------------------------------------------------------------- spatial PCA
class SpatialPCA:
    """PCA of the spatial responses of a hop's channels (rows: frame x channel, cols: H*W),
    one PCA shared by the channels of a hop as in the paper's count (225x45, 49x25, 9x5).

    ``norm`` says what is done to each channel before its rows join the shared PCA:

    - ``"mean"`` (default): subtract each channel's scalar mean over the train responses (1
      parameter per channel). Every Saab unit adds its own bias (and its kernels their own
      ``-k . mean``), so the channels of a hop differ in offset by far more than they vary
      (demo hop 2: channel means 13,078-14,300, stds 72-747); left in, that offset (a "uniform
      map" direction) takes most of the energy and the 90 % PCA keeps 13 / 1 / 1 components at
      hops 1-3 instead of the paper's 45 / 25-30 / 5. The authors' Saab has no such offsets
      (their AC responses are of mean-removed vectors, and their bias is orthogonal to the AC
      kernels), so centring each channel is what brings this implementation to their PCA.
    - ``"none"``: nothing (this implementation before the fix; kept to compare).
    - ``"standard"``: also divide by each channel's standard deviation (2 per channel).
    """

    NORMS = ("none", "mean", "standard")

    def __init__(self, energy: float = 0.9, norm: str = "mean"):
        self.energy = float(energy)
        if norm not in self.NORMS:
            raise ValueError(f"spatial PCA channel norm must be one of {self.NORMS}, got {norm!r}")
        self.norm = norm

    def fit(self, x: np.ndarray, chunk: int = 4096) -> "SpatialPCA":
        """``x``: (N, H, W, K) responses; the covariance is accumulated in float64 chunks."""
        from ..saab.saab import CovarianceAccumulator  # noqa: PLC0415

        k = x.shape[3]
        if self.norm != "none":
            mean = np.zeros(k)
            sq = np.zeros(k)
            count = 0
            for i in range(0, len(x), chunk):
                c = np.asarray(x[i:i + chunk], dtype=np.float64).reshape(-1, k)
                mean += c.sum(axis=0)
                sq += (c * c).sum(axis=0)
                count += len(c)
            mean /= count
            var = np.clip(sq / count - mean * mean, 0.0, None)
            scale = np.sqrt(var)
            scale[scale <= 1e-12 * max(1.0, float(scale.max(initial=0.0)))] = 1.0
            if self.norm == "mean":
                scale = np.ones(k)
            self.channel_mean_, self.channel_scale_ = mean, scale
        else:
            self.channel_mean_, self.channel_scale_ = np.zeros(k), np.ones(k)
        acc = CovarianceAccumulator(x.shape[1] * x.shape[2])
        for i in range(0, len(x), chunk):
            acc.add(self._rows(x[i:i + chunk]))
        mean, cov, _ = acc.finish()
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(-evals, kind="stable")
        evals = np.clip(evals[order], 0.0, None)
        evecs = evecs[:, order]
        idx = np.argmax(np.abs(evecs), axis=0)
        evecs = evecs * np.where(evecs[idx, np.arange(evecs.shape[1])] < 0, -1.0, 1.0)
        total = evals.sum()
        ratio = np.cumsum(evals) / total if total > 0 else np.ones_like(evals)
        n = int(min(len(ratio), np.searchsorted(ratio, self.energy - 1e-12) + 1))
        self.mean_ = mean
        self.components_ = evecs[:, :n].T.copy()          # (n, H*W)
        self.explained_ratio_ = (evals[:n] / total) if total > 0 else np.zeros(n)
        return self

    def _rows(self, x: np.ndarray) -> np.ndarray:
        n, h, w, k = x.shape
        z = (np.asarray(x, dtype=np.float64) - self.channel_mean_) / self.channel_scale_
        return np.moveaxis(z, 3, 1).reshape(n * k, h * w)

    def transform(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """(N, H, W, K) -> (N, K, n_components) float32."""
        n, h, w, k = x.shape
        out = np.empty((n, k, self.n_components), dtype=np.float32)
        for i in range(0, n, chunk):
            z = (self._rows(x[i:i + chunk]) - self.mean_) @ self.components_.T
            out[i:i + chunk] = z.reshape(-1, k, self.n_components)
        return out

    def num_parameters(self) -> int:
        """Components (as the paper counts) + the channel normalisation (1 or 2 per channel)."""
        per_channel = {"none": 0, "mean": 1, "standard": 2}[self.norm]
        return int(self.components_.size + per_channel * len(self.channel_mean_))

    @property
    def n_components(self) -> int:
        return self.components_.shape[0]


# ----------------------------------------------------------------------------- XGBoost helpers
def _xgb():
    import xgboost  # noqa: PLC0415

    return xgboost


def _booster_params(spec: dict, scale_pos_weight: float, seed: int, nthread: int) -> tuple[dict, int]:
    spec = dict(spec)
    rounds = int(spec.pop("n_estimators", 100))
    lr = spec.pop("learning_rate", None)
    params = {"objective": "binary:logistic", "tree_method": "hist", "eval_metric": "auc",
              "max_depth": 1, "seed": int(seed), "nthread": int(nthread),
              "scale_pos_weight": float(scale_pos_weight)}
    if lr is not None:
        params["eta"] = float(lr)
    params.update(spec)
    return params, rounds


def _train(x: np.ndarray, y: np.ndarray, spec: dict, seed: int, nthread: int):
    xgb = _xgb()
    pos = float(y.sum())
    neg = float(len(y) - pos)
    params, rounds = _booster_params(spec, neg / pos if pos else 1.0, seed, nthread)
    return xgb.train(params, xgb.DMatrix(x, label=y, nthread=nthread), num_boost_round=rounds)


def _predict(booster, x: np.ndarray, nthread: int = 1) -> np.ndarray:
    xgb = _xgb()
    return booster.predict(xgb.DMatrix(x, nthread=nthread)).astype(np.float64)


def booster_parameters(booster) -> int:
    """2 per split node (feature, threshold) + 1 per leaf, over all trees (the paper's count)."""
    df = booster.trees_to_dataframe()
    leaves = int((df["Feature"] == "Leaf").sum())
    return 2 * (len(df) - leaves) + leaves


def _booster_to_json(booster) -> Any:
    return json.loads(bytes(booster.save_raw(raw_format="json")).decode())


def _booster_from_json(obj: Any):
    xgb = _xgb()
    b = xgb.Booster()
    b.load_model(bytearray(json.dumps(obj).encode()))
    return b


def _write_compact_json(path: Path, obj: Any) -> None:
    """XGBoost's JSON model format, without indentation (it is 5x larger indented)."""
    from ..store import write_text_atomic  # noqa: PLC0415

    write_text_atomic(path, json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


def _people(items: pd.DataFrame, manifest: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``items``: the person shown (``identity``; ``video:<id>`` without one) and, for
    a fake, the source person (``source_id``, else "")."""
    cols = manifest.set_index("video_id")
    vid = items["video_id"].astype(str).to_numpy()
    ident = cols["identity"].reindex(vid).fillna("").astype(str).to_numpy()
    src = cols["source_id"].reindex(vid).fillna("").astype(str).to_numpy()
    return np.where(ident != "", ident, np.char.add("video:", vid.astype(str))), src


def fold_groups(items: pd.DataFrame, manifest: pd.DataFrame) -> tuple[np.ndarray, dict]:
    """Cross-fitting group of each row of ``items`` and how the groups were made.

    People linked by fakes: each video joins its ``identity`` and, for a fake, its
    ``source_id`` (manifest columns; scipy's connected components), so one person's clips at
    every quality and every fake made onto or from them share a group (FF++: a clip's c23 and
    c40 copies and both fakes of a pair). A video without an identity is its own person. When
    that leaves fewer than 2 groups holding each class (the demo; Celeb-DF's swaps among its
    celebrities can link them all too), the groups are the target identity and
    ``grouping`` says so; the folds' training rows are then purged of the held-out people
    (:func:`fold_train_masks`)."""
    from scipy.sparse import coo_matrix  # noqa: PLC0415
    from scipy.sparse.csgraph import connected_components  # noqa: PLC0415

    person, src = _people(items, manifest)
    names, code = np.unique(np.concatenate([person, src[src != ""]]), return_inverse=True)
    a = code[:len(person)]
    b = a.copy()
    b[src != ""] = code[len(person):]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(names), len(names)))
    _, comp = connected_components(graph, directed=False)
    y = items["y"].to_numpy()

    def per_class(g):
        return min(len(np.unique(g[y == c])) for c in (0, 1))

    linked = comp[a]
    info = {"people": int(len(np.unique(person))), "linked_groups": int(len(np.unique(linked)))}
    if per_class(linked) >= 2:
        return linked, dict(info, linked=True, grouping="people linked by fakes (identity + source_id)")
    _, target = np.unique(person, return_inverse=True)
    return target, dict(info, linked=False, grouping="target identity, purged (fakes link every "
                                                     f"person into {info['linked_groups']} group(s))")


def fold_train_masks(items: pd.DataFrame, manifest: pd.DataFrame, folds: np.ndarray) -> list[np.ndarray]:
    """Rows each fold's channel classifiers train on: those outside the fold, less every row
    that shows a person of the fold, as its identity or as a fake's source (purged
    cross-fitting). Without the purge, folds by target identity invert: a held-out fake wears
    its source person's face, which the other folds hold as real, and a held-out person's real
    face is the source of fakes in the other folds, so its out-of-fold probabilities say the
    opposite of its label (the 17-person real-media demo: median channel AUC 0.46, test video
    AUC 0.33). With folds of people linked by fakes nothing is purged."""
    person, src = _people(items, manifest)
    masks = []
    for f in range(int(folds.max()) + 1):
        held = folds == f
        faces = np.unique(np.concatenate([person[held], src[held & (src != "")]]))
        shows = np.isin(person, faces) | np.isin(src, faces)
        masks.append(~held & ~shows)
    return masks


def make_folds(y: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id per row: stratified by label, grouped by ``groups`` (see :func:`fold_groups`),
    deterministic."""
    from sklearn.model_selection import StratifiedGroupKFold  # noqa: PLC0415

    _, g = np.unique(groups, return_inverse=True)
    per_class = [len(np.unique(g[y == c])) for c in (0, 1)]
    k = int(min(n_folds, max(2, min(per_class)))) if min(per_class) >= 2 else 2
    if len(np.unique(g)) < 2:
        raise ValueError("cross-fitting needs at least 2 training videos")
    folds = np.zeros(len(y), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=int(seed) % (2**32))
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y, g)):
        folds[test] = f
    return folds


def select_frames(items: pd.DataFrame, step: int) -> tuple[pd.DataFrame, dict]:
    """DefakeHop's own frames, in source-frame units (the authors' code: every 6th frame of the
    video, the multi-frame window over adjacent ones). Per video: where its sampled frames hold
    two frames ``step`` apart on the grid ``frame_index % step == 0`` (sample_frames strategy
    ``every_k`` or ``uniform_every_k``, ``all``, ...), the grid frames only, marked ``dense``;
    otherwise (sampled sparser than the grid) all its sampled frames. ``step`` 0: every sampled
    frame. ``items`` sorted by video_id, frame_index; returns the kept rows (column ``dense``)
    and counts."""
    out = items.copy()
    n_videos = int(out["video_id"].nunique())
    if step <= 0 or out.empty:
        out["dense"] = False
        return out.reset_index(drop=True), {"frame_step": int(step), "videos": n_videos,
                                            "videos_dense": 0, "frames_sampled": len(items),
                                            "frames_used": len(items)}
    on = out["frame_index"].to_numpy() % step == 0
    grid = out[on]
    gap = grid.groupby("video_id", sort=False)["frame_index"].diff()
    dense_videos = set(grid.loc[gap.eq(step).to_numpy(), "video_id"])
    dense = out["video_id"].isin(dense_videos).to_numpy()
    out["dense"] = dense
    out = out[on | ~dense].reset_index(drop=True)
    return out, {"frame_step": int(step), "videos": n_videos, "videos_dense": len(dense_videos),
                 "frames_sampled": len(items), "frames_used": len(out)}


def neighbour_rows(items: pd.DataFrame, neighbours: int, step: int = 0) -> np.ndarray:
    """(N, 2*neighbours+1) row indices of each frame's neighbours in its video (offsets -n..n).
    ``items`` sorted by video_id, frame_index. Rows marked ``dense`` (:func:`select_frames`)
    take, for offset j, the frame ``frame_index + j * step`` in source frames, or where that one
    is missing (no face, out of the video) the nearest present frame between it and the frame
    itself; the other rows take the j-th adjacent sampled frame, clamped at the ends."""
    vid = items["video_id"].to_numpy()
    n = len(vid)
    if n == 0:
        return np.zeros((0, 2 * neighbours + 1), dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(vid[1:] != vid[:-1]) + 1]
    lengths = np.diff(np.r_[starts, n])
    start = np.repeat(starts, lengths)
    length = np.repeat(lengths, lengths)
    pos = np.arange(n) - start
    offs = np.arange(-neighbours, neighbours + 1)
    rows = start[:, None] + np.clip(pos[:, None] + offs[None, :], 0, length[:, None] - 1)
    if step > 0 and "dense" in items and items["dense"].any():
        code = np.repeat(np.arange(len(starts), dtype=np.int64), lengths) << 40
        frame = items["frame_index"].to_numpy().astype(np.int64)
        key = code | frame
        dense = items["dense"].to_numpy(dtype=bool)
        for c, j in enumerate(offs):
            target = np.clip(frame + j * int(step), 0, (1 << 40) - 1)
            if j > 0:     # the last present frame at or before the target (at worst the frame)
                idx = np.searchsorted(key, code | target, side="right") - 1
            elif j < 0:   # the first present frame at or after the target
                idx = np.searchsorted(key, code | target, side="left")
            else:
                idx = np.arange(n)
            rows[dense, c] = idx[dense]
    return rows


def multi_frame(features: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenate each frame's features with its neighbours' (order: -n..n)."""
    return features[rows].reshape(len(rows), -1)


# ----------------------------------------------------------------------------- detector
@register("defakehop")
class DefakeHop(Detector):
    inputs = ("saab",)
    paper = "Chen et al., DefakeHop: a light-weight high-performance deepfake detector (ICASSP 2021)"

    defaults: ClassVar[dict] = {
        "regions": list(REGIONS),
        "hops": [1, 2, 3],
        "pca_energy": 0.9,
        "pca_channel_norm": "mean",
        "channel_probs": "auto",
        "n_folds": 4,
        "neighbours": 3,
        "frame_step": 6,
        "channel_xgb": {"max_depth": 1, "n_estimators": 100, "learning_rate": 0.3},
        "final_xgb": {"max_depth": 6, "n_estimators": 100, "learning_rate": 0.2,
                      "min_child_weight": 1, "gamma": 0.0, "subsample": 1.0,
                      "colsample_bytree": 1.0},
        "region_heads": True,
        "nthread": 1,
        "seed": None,
    }
    checks: ClassVar[dict] = {
        "regions": _cfg.List(_cfg.Choice(*REGIONS), min_len=1, unique=True),
        "hops": _cfg.List(_cfg.Int(ge=1), min_len=1, unique=True),
        "pca_energy": _cfg.Float(gt=0, le=1), "pca_channel_norm": _cfg.Choice("none", "mean", "standard"),
        "channel_probs": _cfg.Choice("auto", "out_of_fold", "in_sample"),
        "n_folds": _cfg.Int(ge=2), "neighbours": _cfg.Int(ge=0), "frame_step": _cfg.Int(ge=0),
        "nthread": _cfg.Int(ge=0),
        "seed": _cfg.Int(ge=0, nullable=True),
        "channel_xgb.max_depth": _cfg.Int(ge=1), "channel_xgb.n_estimators": _cfg.Int(ge=1),
        "channel_xgb.learning_rate": _cfg.Float(gt=0),
        "final_xgb.max_depth": _cfg.Int(ge=1), "final_xgb.n_estimators": _cfg.Int(ge=1),
        "final_xgb.learning_rate": _cfg.Float(gt=0), "final_xgb.min_child_weight": _cfg.Float(ge=0),
        "final_xgb.gamma": _cfg.Float(ge=0), "final_xgb.subsample": _cfg.Float(gt=0, le=1),
        "final_xgb.colsample_bytree": _cfg.Float(gt=0, le=1)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.pcas: dict[tuple[str, int], SpatialPCA] = {}
        self.channel_models: dict[str, list] = {}     # "<region>_hop<h>" -> boosters per channel
        self.final = None
        self.region_models: dict[str, Any] = {}
        self._region_scores: dict[str, pd.DataFrame] = {}
        self._frame_info: dict[str, dict] = {}
        self.saab_parameters: dict[str, int] = {}
        self.fit_summary: dict = {}

    # ----------------------------------------------------------------- feature reading
    @staticmethod
    def _read_field(store, items: pd.DataFrame, name: str) -> np.ndarray:
        parts = []
        for vid, grp in items.groupby("video_id", sort=False):
            arr = store.read(vid, name)
            parts.append(arr[grp["row"].to_numpy()])
        if not parts:
            raise ValueError(f"no items to read for field {name!r}")
        return np.concatenate(parts, axis=0)

    def _blocks(self) -> list[tuple[str, int]]:
        return [(r, int(h)) for r in self.params["regions"] for h in self.params["hops"]]

    def _seed(self, data: DetectorData) -> int:
        s = self.params.get("seed")
        return int(data.seed if s is None else s)

    # ----------------------------------------------------------------- fit
    def _checked_field(self, data: DetectorData, store, items: pd.DataFrame, name: str):
        """A field of ``items`` and the mask of its rows holding NaN/inf (recorded)."""
        x = self._read_field(store, items, name)
        paths = [str(store.shards[int(s)].path) for s in items["shard"]]
        return x, data.checks.check(items, x, f"saab {name}", paths)

    def _usable_train_items(self, data: DetectorData, store, items: pd.DataFrame,
                            blocks: list[tuple[str, int]]) -> np.ndarray:
        """Mask of the train rows that are finite in every block (reads every block once)."""
        bad = np.zeros(len(items), dtype=bool)
        for region, hop in blocks:
            bad |= self._checked_field(data, store, items, field_name(region, hop))[1]
        return ~bad

    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        from ..store import Store  # noqa: PLC0415

        t0 = time.perf_counter()
        p = self.params
        seed = self._seed(data)
        nthread = int(p["nthread"])
        all_items = data.items("saab", "train")
        if all_items.empty:
            raise ValueError("defakehop: no train items in the saab store")
        all_items, self._frame_info["train"] = select_frames(all_items, int(p["frame_step"]))
        store = Store(data.source("saab"))
        blocks = self._blocks()
        # Rows with NaN/inf in any block are left out of every fit. They are found on the arrays
        # read for fitting: a bad row of the first block is dropped before anything is fitted;
        # one first seen in a later block (earlier blocks were fitted with it) makes the
        # remaining blocks be scanned and the fit start again on the usable rows (this only
        # happens when the store holds bad rows).
        keep = np.ones(len(all_items), dtype=bool)
        while True:
            items = all_items[keep].reset_index(drop=True)
            restart = False
            oof_cols, columns, chan_auc = [], [], {}
            self.pcas, self.channel_models = {}, {}
            for b, (region, hop) in enumerate(blocks):
                x, bad = self._checked_field(data, store, items, field_name(region, hop))
                if bad.any():
                    keep[np.flatnonzero(keep)[bad]] = False
                    data.checks.require_usable(all_items, ~keep, "defakehop", data.source("saab"))
                    if b > 0:
                        keep &= self._usable_train_items(data, store, all_items, blocks[b + 1:])
                        data.checks.require_usable(all_items, ~keep, "defakehop", data.source("saab"))
                        restart = True
                        break
                    items, x = items[~bad].reset_index(drop=True), x[~bad]
                if b == 0:
                    y = items["y"].to_numpy().astype(np.int64)
                    if len(np.unique(y)) < 2:
                        raise ValueError("defakehop: the train split needs both real and fake frames")
                    folds, masks, fold_summary = self._channel_folds(items, data, y, seed)
                self._fit_block(region, hop, x, y, folds, masks, seed, nthread, oof_cols, columns,
                                chan_auc)
                del x
            if not restart:
                break
        self.saab_parameters = saab_parameters(store)
        self.columns_ = columns
        probs = np.stack(oof_cols, axis=1)                  # (N, M) out-of-fold or in-sample
        rows = neighbour_rows(items, int(p["neighbours"]), int(p["frame_step"]))
        self.final = _train(multi_frame(probs, rows), y, p["final_xgb"], seed, nthread)
        self.region_models = {}
        if p["region_heads"]:
            for region in p["regions"]:
                cols = self._region_cols(region)
                self.region_models[region] = _train(multi_frame(probs[:, cols], rows), y,
                                                    p["final_xgb"], seed, nthread)
        self.fit_summary = {
            "train_frames": int(len(y)), "train_videos": int(items["video_id"].nunique()),
            "fake_fraction": float(y.mean()), **fold_summary,
            "channels": len(columns),
            "final_features": int(probs.shape[1] * rows.shape[1]),
            # frames the fit used (rows with non-finite features left out: not the store's count)
            "frame_selection": {**{k: v for k, v in self._frame_info["train"].items()
                                   if k != "frames_sampled"}, "frames_used": int(len(y))},
            "pca_components": {f"{r}_hop{h}": self.pcas[(r, h)].n_components for r, h in self._blocks()},
            # train-split AUC of the channel probabilities the final classifier is fitted on
            # (out of fold, or in-sample): a median under 0.5 means they are inverted
            "channel_auc": _spread([v for v in chan_auc.values() if v is not None]),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if logger is not None:
            for k in ("train_frames", "channels", "final_features"):
                logger.log_metric(f"fit/{k}", self.fit_summary[k])
        return self.fit_summary

    def _channel_folds(self, items: pd.DataFrame, data: DetectorData, y: np.ndarray, seed: int):
        """How the train split's channel probabilities are made: ``(folds, masks, summary)``, the
        summary for ``fit_summary``; no masks means in-sample. ``auto``: out of fold over folds of
        people linked by fakes where they form 2 or more groups per class (FF++: nothing purged),
        else in-sample (the authors' code): where fakes link everyone (the demo; swaps among few
        people), purged folds keep only part of the people to train on (the 17-person real-media
        demo: 17-69 % of the rows outside a fold), and val AUC was lower with them in 2 of the 3
        seeds measured (README)."""
        p = self.params
        in_sample = {"channel_probs": "in_sample", "folds": 0, "fold_groups": 0,
                     "fold_grouping": "none (in-sample)"}
        if p["channel_probs"] == "in_sample":
            return None, [], in_sample
        groups, info = fold_groups(items, data.manifest)
        if not info["linked"]:
            why = f"fakes link the {info['people']} train people into {info['linked_groups']} group(s)"
            if p["channel_probs"] == "auto":
                log.warning("defakehop: %s: in-sample channel probabilities (channel_probs auto)", why)
                return None, [], dict(in_sample, fold_grouping=f"none (in-sample, auto: {why})")
            log.warning("defakehop: %s: folds by target identity, each fold's training rows "
                        "purged of its people", why)
        folds = make_folds(y, groups, int(p["n_folds"]), seed)
        masks = fold_train_masks(items, data.manifest, folds)
        return folds, masks, {
            "channel_probs": "out_of_fold", "folds": len(masks), "fold_grouping": info["grouping"],
            "fold_groups": int(len(np.unique(groups))),
            # per fold: the rows its channel classifiers trained on, and the rows outside it
            "fold_train_rows": [int(m.sum()) for m in masks],
            "fold_outside_rows": [int((folds != f).sum()) for f in range(len(masks))],
            "folds_one_class": int(sum(len(np.unique(y[m])) < 2 for m in masks))}

    def _fit_block(self, region: str, hop: int, x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                   masks: list, seed: int, nthread: int, oof_cols: list, columns: list,
                   chan_auc: dict) -> None:
        """Spatial PCA of one region/hop and its channel-wise XGBoosts; the train split's channel
        probabilities (out of fold: fold ``f``'s rows scored by classifiers fitted on
        ``masks[f]``; without masks, ``channel_probs: in_sample``, the refit classifier's own)
        are appended to ``oof_cols``."""
        p = self.params
        pca = SpatialPCA(p["pca_energy"], p["pca_channel_norm"]).fit(x)
        self.pcas[(region, hop)] = pca
        z = pca.transform(x)                                  # (N, K, n)
        models = []
        for ch in range(z.shape[1]):
            zc = z[:, ch, :]
            oof = np.empty(len(y))
            for f, tr in enumerate(masks):
                te = folds == f
                if len(np.unique(y[tr])) < 2:      # counted in fit_summary["folds_one_class"]
                    oof[te] = float(y[tr].mean()) if tr.any() else float(y.mean())
                    continue
                b = _train(zc[tr], y[tr], p["channel_xgb"], seed + f, nthread)
                oof[te] = _predict(b, zc[te], nthread)
            models.append(_train(zc, y, p["channel_xgb"], seed, nthread))
            if not masks:
                oof = _predict(models[-1], zc, nthread)
            oof_cols.append(oof)
            columns.append(f"{region}_hop{hop}_ch{ch}")
            chan_auc[columns[-1]] = _auc(y, oof)
        self.channel_models[field_name(region, hop)] = models
        log.info("defakehop: %s hop %d: %d channels, spatial PCA %d -> %d", region, hop,
                 z.shape[1], pca.components_.shape[1], pca.n_components)

    def _region_cols(self, region: str) -> np.ndarray:
        return np.array([i for i, c in enumerate(self.columns_) if c.startswith(region + "_hop")])

    # ----------------------------------------------------------------- scoring
    def channel_probabilities(self, data: DetectorData, split: str) -> tuple[pd.DataFrame, np.ndarray]:
        from ..store import Store  # noqa: PLC0415

        items, self._frame_info[split] = select_frames(data.items("saab", split),
                                                       int(self.params["frame_step"]))
        if items.empty:
            return items, np.zeros((0, len(self.columns_)))
        store = Store(data.source("saab"))
        nthread = int(self.params["nthread"])
        cols = []
        bad = np.zeros(len(items), dtype=bool)
        for region, hop in self._blocks():
            x, bad_here = self._checked_field(data, store, items, field_name(region, hop))
            bad |= bad_here
            x[bad_here] = 0.0              # left unscored below; zeros keep XGBoost off inf
            z = self.pcas[(region, hop)].transform(x)
            for ch, b in enumerate(self.channel_models[field_name(region, hop)]):
                cols.append(_predict(b, z[:, ch, :], nthread))
        probs = np.stack(cols, axis=1)
        # rows with non-finite features are not scored; their videos' other frames are, with
        # neighbour windows over the usable frames
        return items[~bad].reset_index(drop=True), probs[~bad]

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        items, probs = self.channel_probabilities(data, split)
        out = items[["video_id", "frame_index"]].copy()
        if items.empty:
            out["score"] = np.zeros(0)
            return out
        rows = neighbour_rows(items, int(self.params["neighbours"]), int(self.params["frame_step"]))
        nthread = int(self.params["nthread"])
        out["score"] = _predict(self.final, multi_frame(probs, rows), nthread)
        region_scores = out[["video_id", "frame_index"]].copy()
        for region, b in self.region_models.items():
            region_scores[region] = _predict(b, multi_frame(probs[:, self._region_cols(region)], rows), nthread)
        self._region_scores[split] = region_scores
        return out.reset_index(drop=True)

    def extra_metrics(self, data: DetectorData, scores: pd.DataFrame) -> dict:
        """Frame and video AUC per region (region heads) and for the ensemble (Table 1), and
        what the paper's figures depend on: Saab channels kept and passed on per hop and region
        (``saab_channels``), spatial PCA components kept (``pca_components``), how the
        cross-fitting folds were grouped, the frames used (``frame_selection``) and the frames
        saab_features dropped for a patch outside the frame (``dropped_outside_frame``)."""
        from ..metrics import evaluate  # noqa: PLC0415

        manifest = data.manifest
        splits = manifest.loc[manifest["video_id"].isin(scores["video_id"]), "split"].unique()
        split = str(splits[0]) if len(splits) == 1 else None
        region = self._region_scores.get(split) if split else None
        if region is None and split is not None:
            self.score(data, split)
            region = self._region_scores.get(split)
        out: dict = {}
        tables = {"ensemble": scores}
        if region is not None:
            key = scores[["video_id", "frame_index"]]
            region = key.merge(region, on=["video_id", "frame_index"], how="left")
            for r in self.region_models:
                tables[r] = region[["video_id", "frame_index"]].assign(score=region[r].to_numpy())
        for name, df in tables.items():
            res = evaluate(df, manifest)
            out[name] = {"frame_auc": res["frame"].get("auc"), "video_auc": res["video"].get("auc")}
        return {"auc_by_region": out, **self.fidelity(data, split)}

    def fidelity(self, data: DetectorData, split: str | None = None) -> dict:
        """The figures issue 11 compares with the paper (see :meth:`extra_metrics`)."""
        from ..store import Store  # noqa: PLC0415

        pca = {r: {f"hop{h}": self.pcas[(r, h)].n_components for h in self.params["hops"]
                   if (r, h) in self.pcas} for r in self.params["regions"]}
        summary = Store(data.source("saab")).attrs().get("pixelhop")
        summary = json.loads(summary) if isinstance(summary, str) else (summary or {})
        channels = {r: [{"hop": int(h["hop"]), "kept": int(h["candidates"]),
                         "output": int(h["output_channels"]), "passed_on": int(h["split_channels"])}
                        for h in summary[r]] for r in self.params["regions"] if r in summary}
        fit = self.fit_summary
        return {"saab_channels": channels, "pca_components": pca,
                "folds": {k: fit.get(k) for k in ("channel_probs", "folds", "fold_grouping",
                                                  "fold_groups", "fold_train_rows",
                                                  "fold_outside_rows", "folds_one_class",
                                                  "channel_auc")},
                "frame_selection": {"train": fit.get("frame_selection"),
                                    **({split: self._frame_info[split]} if split in self._frame_info else {})},
                "dropped_outside_frame": dropped_outside_frame(data.source("saab"), data.manifest)}

    # ----------------------------------------------------------------- size
    def num_parameters(self) -> dict:
        """Actual counts of the fitted model by part, in the rows of the paper's Table 4, summed
        over the regions (the paper's table counts one region): Saab kernel weights per hop
        (kept channels x 27 or 9), spatial PCA components per hop (inputs x kept components),
        the channel-wise XGBoosts and the final XGBoost (2 per split node + 1 per leaf).
        ``region_<r>`` gives each region's Saab + PCA + channel-XGBoost share; the region heads
        (diagnostics for Table 1, never used for the score) are listed apart, outside the total."""
        out: dict[str, int] = {}
        hops = [int(h) for h in self.params["hops"]]
        region_sum = {r: 0 for r in self.params["regions"]}
        for h in hops:
            n = 0
            for r in self.params["regions"]:
                v = int(self.saab_parameters.get(f"{r}_hop{h}", 0))
                n += v
                region_sum[r] += v
            out[f"saab_hop{h}"] = n
        for h in hops:
            n = 0
            for r in self.params["regions"]:
                pca = self.pcas.get((r, h))
                v = pca.num_parameters() if pca is not None else 0
                n += v
                region_sum[r] += v
            out[f"pca_hop{h}"] = n
        n = 0
        for r in self.params["regions"]:
            for h in hops:
                v = int(sum(booster_parameters(b) for b in self.channel_models.get(field_name(r, h), [])))
                n += v
                region_sum[r] += v
        out["channel_xgb"] = n
        out["final_xgb"] = booster_parameters(self.final) if self.final is not None else 0
        out["total"] = int(sum(out.values()))
        for r, v in region_sum.items():
            out[f"region_{r}"] = int(v)
        out["channel_xgb_count"] = int(sum(len(m) for m in self.channel_models.values()))
        out["region_heads_not_in_total"] = int(sum(booster_parameters(b) for b in self.region_models.values()))
        return out

    def init_info(self) -> dict:
        return {"init": "none (trained from scratch: Saab/PCA closed form, XGBoost)"}

    # ----------------------------------------------------------------- save / load
    def save(self, directory: Path) -> None:
        from ..saab.pixelhop import write_npz  # noqa: PLC0415

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for (region, hop), pca in self.pcas.items():
            arrays[f"{region}_hop{hop}/mean"] = pca.mean_
            arrays[f"{region}_hop{hop}/components"] = pca.components_
            arrays[f"{region}_hop{hop}/explained_ratio"] = pca.explained_ratio_
            arrays[f"{region}_hop{hop}/channel_mean"] = pca.channel_mean_
            arrays[f"{region}_hop{hop}/channel_scale"] = pca.channel_scale_
        write_npz(directory / "pca.npz", arrays)
        boosters = {name: [_booster_to_json(b) for b in models]
                    for name, models in self.channel_models.items()}
        _write_compact_json(directory / "channel_xgb.json", boosters)
        _write_compact_json(directory / "final_xgb.json", _booster_to_json(self.final))
        _write_compact_json(directory / "region_xgb.json",
                            {r: _booster_to_json(b) for r, b in self.region_models.items()})
        fit = {k: v for k, v in self.fit_summary.items() if k != "seconds"}  # byte-identical reruns
        self.write_config(directory, extra={"columns": self.columns_, "fit": fit,
                                            "saab_parameters": getattr(self, "saab_parameters", {}),
                                            "num_parameters": self.num_parameters()})

    @classmethod
    def load(cls, directory: Path) -> "DefakeHop":
        from ..model_files import (ModelLoadError, load_npz, load_xgboost_json,  # noqa: PLC0415
                                   require)

        directory = Path(directory)
        det, cfg = cls.from_config(directory)
        det.columns_ = list(require(cfg, "columns", directory / "config.json"))
        det.fit_summary = cfg.get("fit", {})
        det.saab_parameters = cfg.get("saab_parameters", {})
        path = directory / "pca.npz"
        z = load_npz(path)
        for region, hop in det._blocks():
            pca = SpatialPCA(det.params["pca_energy"], det.params["pca_channel_norm"])
            key = f"{region}_hop{hop}"
            pca.mean_ = require(z, f"{key}/mean", path)
            pca.channel_mean_ = require(z, f"{key}/channel_mean", path)
            pca.channel_scale_ = require(z, f"{key}/channel_scale", path)
            pca.components_ = require(z, f"{key}/components", path)
            pca.explained_ratio_ = require(z, f"{key}/explained_ratio", path)
            det.pcas[(region, hop)] = pca
        path = directory / "channel_xgb.json"
        det.channel_models = load_xgboost_json(path, depth=2)
        for region, hop in det._blocks():
            require(det.channel_models, field_name(region, hop), path)
        n_channels = sum(len(v) for v in det.channel_models.values())
        if n_channels != len(det.columns_):
            raise ModelLoadError(path, f"{n_channels} channel models for the {len(det.columns_)} "
                                       "columns of config.json")
        det.final = load_xgboost_json(directory / "final_xgb.json")
        det.region_models = load_xgboost_json(directory / "region_xgb.json", depth=1)
        return det


def dropped_outside_frame(saab_dir: str | Path, manifest: pd.DataFrame) -> dict:
    """Frames (and videos left with none) that saab_features dropped for a patch outside the
    frame (the Saab store's attributes, see ``dfdetect.saab.features``), per split of
    ``manifest``: ``{split: {"frames": n, "videos_emptied": m}}``."""
    import json  # noqa: PLC0415

    split_of = dict(zip(manifest["video_id"].astype(str), manifest["split"].astype(str)))
    out: dict[str, dict[str, int]] = {}

    def add(vid: str, frames: int, emptied: bool) -> None:
        split = split_of.get(vid)
        if split is None:
            return
        entry = out.setdefault(split, {"frames": 0, "videos_emptied": 0})
        entry["frames"] += int(frames)
        entry["videos_emptied"] += int(emptied)

    from ..store import ShardReader, shard_files  # noqa: PLC0415

    for path in shard_files(saab_dir):
        with ShardReader(path) as reader:
            emptied = reader.attrs.get("videos_dropped_outside_frame") or "{}"
            for vid, n in (json.loads(emptied) if isinstance(emptied, str) else emptied).items():
                add(str(vid), int(n), True)
            for vid in reader.videos():
                add(vid, int(reader.video_attrs(vid).get("dropped_outside_frame", 0)), False)
    return {k: out[k] for k in sorted(out)}


def saab_parameters(store) -> dict[str, int]:
    """Saab kernel weights per region and hop, as recorded by the saab_features stage in the
    store's attributes (``saab_parameters``); empty when absent."""
    value = store.attrs().get("saab_parameters")
    if not value:
        return {}
    counts = json.loads(value) if isinstance(value, str) else dict(value)
    return {str(k): int(v) for k, v in counts.items()}


def _spread(values: list[float]) -> dict | None:
    if not values:
        return None
    q = np.quantile(values, [0.0, 0.5, 1.0])
    return {"min": round(float(q[0]), 4), "median": round(float(q[1]), 4),
            "max": round(float(q[2]), 4), "below_0.5": int(sum(v < 0.5 for v in values))}


def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415

    if len(np.unique(y)) < 2:
        return None
    return float(roc_auc_score(y, s))
