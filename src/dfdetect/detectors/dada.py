"""DADA fusion detectors (dada.txt §3.3): ``dada_mid`` and ``dada_late``.

Both read the audio manifest (``manifest = "audio"``), the utterances of the audio store
(``audio``: field ``wave``) and the Whisper transcripts (``transcripts``: JSONL ``id``,
``text``), and two independently trained, frozen branches: the text authorship model
(``models/dada_text``, :mod:`dfdetect.text.model`) and the audio model (``models/dada_audio``,
:mod:`dfdetect.audio.model`), found through ``DetectorData.sources`` keys ``dada_text`` and
``dada_audio`` at fit time and copied into the detector's own directory by ``save`` (so a
saved detector is self-contained). Scores are utterance level (``frame_index = -1``).

- ``dada_mid`` (§3.3.1): the L2-normalised audio embedding ``f_phi`` and text embedding
  ``f_theta`` are concatenated and an MLP is trained with binary cross-entropy.
- ``dada_late`` (§3.3.2, §7): ``score = alpha p_audio + (1 - alpha) p_text`` where
  ``p_audio = p(fake | f_phi)`` is the audio branch's binary head and ``p_text`` is

  ``text_mode: marginal`` (§7 verbatim): ``p(X = 0 | T = t) = sum_a p(X = 0 | A = a)
  p(A = a | T = t)`` (X = 0: spoofed), with ``p(X = 0 | A = a)`` the share of spoofs among the
  train utterances claiming speaker ``a`` (smoothed towards the overall share with
  ``prior_strength`` pseudo-counts) and ``p(A = a | T = t)`` the text model's softmax over
  author centroids. It does not use the utterance's claimed speaker.

  ``text_mode: claimed`` (default; §7's marginalisation also conditioned on the claimed
  speaker ``c``, i.e. §3.3.2's "probability of the anticipated speaker having made the given
  statement"): ``p(X = 0 | T = t, C = c) = sum_a p(X = 0 | A = a, C = c) p(A = a | T = t)`` with
  ``p(X = 0 | A = a, C = c) = 1`` for ``a != c`` (words of someone else under ``c``'s name)
  and ``p(X = 0 | A = c)`` for ``a = c``, which is ``1 - p(A = c | T = t) (1 - p(X = 0 | A = c))``.

  The authors are the speakers (identities) of the train split: their centroids are the mean
  text embeddings of their bona fide train transcripts ("enrolment"; the text model's metric
  space generalises to new authors), with the softmax temperature fitted by leave-one-out
  likelihood on those transcripts.

A missing transcript (an id absent from the transcripts file, or empty text) is represented
explicitly, never as the embedding of the string "": mid fusion zeroes the text half of its
input and sets a "has transcript" indicator to 0 (and trains with ``text_dropout``, masking
the text of random train utterances the same way, so that the MLP has learnt an audio-only
score for them); late fusion uses ``p_text = tau``. Every fallback of ``p_text`` to ``tau``
(missing or empty transcript; in ``claimed`` mode a claimed speaker with no enrolled bona fide
train transcript) is counted per reason in the metrics (``text_fallbacks``) and logged.

``extra_metrics`` adds ASVspoof t-DCFs (2019 legacy and 2021 revised,
:mod:`dfdetect.metrics_asv`) with the ASV scores of ``asv_scores`` or, when that is empty and the
scored utterances come from an ASVspoof 2019 LA tree, with the ASV scores the dataset ships
(``ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.{dev,eval}.gi.trl.scores.txt``,
:func:`dfdetect.metrics_asv.asvspoof2019_asv_scores`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import config as _cfg
from .base import Detector, DetectorData, check_scores, register

log = logging.getLogger(__name__)

COMMON: dict[str, Any] = {
    "asv_scores": "",        # ASV score file for t-DCF (ASVspoof format or CSV key,score); "": the
                             # dataset's own (ASVspoof 2019 LA) when present
    "device": "cpu",
}
MID_DEFAULTS: dict[str, Any] = {**COMMON, "hidden": 64, "dropout": 0.2, "epochs": 60, "lr": 1.0e-3,
                                "weight_decay": 1.0e-4, "batch_size": 32, "pos_weight": "auto",
                                "text_dropout": 0.2}
LATE_DEFAULTS: dict[str, Any] = {**COMMON, "alpha": 0.5, "text_mode": "claimed", "prior_strength": 1.0}


def read_transcripts(path: str | Path) -> dict[str, str]:
    """``{id: text}`` of a transcripts JSONL file (contract of the ``transcribe`` stage)."""
    out: dict[str, str] = {}
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no transcripts (run the transcribe stage)")
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from err
                out[str(obj["id"])] = str(obj.get("text") or "")
    return out


def _l2n(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class _Dada(Detector):
    inputs: ClassVar[tuple[str, ...]] = ("audio", "transcripts")
    # trained branch models that ``fit`` reads (DetectorData.sources keys; not needed to score)
    extra_sources: ClassVar[tuple[str, ...]] = ("dada_text", "dada_audio")
    manifest: ClassVar[str] = "audio"
    level: ClassVar[str] = "utterance"
    paper: ClassVar[str] = "dada.txt"
    defaults: ClassVar[dict] = COMMON

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.text_model = None
        self.audio_model = None
        self._branch_dirs: dict[str, Path] = {}
        self._fit: dict = {}
        self._branch_scores: dict[str, pd.DataFrame] = {}

    # ------------------------------------------------------------------ branches
    def _load_branches(self, text_dir: Path, audio_dir: Path) -> None:
        from ..audio.model import AudioModel  # noqa: PLC0415
        from ..text.model import TextAuthorModel  # noqa: PLC0415

        from ..model_files import ModelLoadError  # noqa: PLC0415

        for what, d in (("dada_text", text_dir), ("dada_audio", audio_dir)):
            if not (Path(d) / "config.json").is_file():
                raise ModelLoadError(Path(d) / "config.json", f"missing file: no trained {what} model "
                                     f"(run stages/train_{'text' if what == 'dada_text' else 'audio'}"
                                     "_model.py)")
        self.text_model = TextAuthorModel.load(text_dir)
        self.audio_model = AudioModel.load(audio_dir)
        self._branch_dirs = {"text": Path(text_dir), "audio": Path(audio_dir)}

    def utterances(self, data: DetectorData, split: str | None) -> pd.DataFrame:
        """Utterances of ``split`` in the audio store with their claimed speaker, label and
        transcript (``""`` and ``has_text = False`` when the transcript is missing)."""
        items = data.items("audio", split)
        items = items.drop_duplicates("video_id").reset_index(drop=True)
        texts = read_transcripts(data.source("transcripts"))
        items["text"] = [texts.get(v, "") for v in items["video_id"]]
        items["has_text"] = [v in texts and bool(texts[v].strip()) for v in items["video_id"]]
        items["no_text"] = ["" if h else ("missing_transcript" if v not in texts else "empty_transcript")
                            for v, h in zip(items["video_id"], items["has_text"])]
        items["identity"] = items["identity"].fillna("").astype(str)
        return items

    def branch_outputs(self, data: DetectorData, items: pd.DataFrame,
                       require: bool = False) -> dict:
        """Frozen branch outputs of the usable utterances of ``items``: audio embedding,
        p_audio (fake), text embedding, and ``items``: those utterances (all of ``items`` when
        every input is finite). An utterance whose stored wave (or audio/text embedding) holds
        NaN/inf is recorded in ``data.checks`` and left out; ``require`` makes mostly bad
        utterances an error."""
        from ..nn.train import deterministic  # noqa: PLC0415

        # the frozen branches' outputs depend on torch's thread count: compute them with the
        # branches' own num_threads (params.yaml), not the machine's core count
        with deterministic(int(data.seed), int(self.audio_model.params["num_threads"] or 0)):
            return self._branch_outputs(data, items, require)

    def _branch_outputs(self, data: DetectorData, items: pd.DataFrame, require: bool) -> dict:
        from ..nn.train import deterministic  # noqa: PLC0415
        from ..store import Store  # noqa: PLC0415

        store = Store(data.source("audio"))
        bad = np.zeros(len(items), dtype=bool)
        feats = []
        for i, v in enumerate(items["video_id"]):
            wave = store.read(v, "wave")[0]
            if data.checks.check_item(items, i, wave, "audio wave", store.shard_for(v).path):
                bad[i] = True
                continue
            feats.append(self.audio_model.features(wave))
        items_ok = items[~bad].reset_index(drop=True)
        a_emb = self.audio_model.embed(feats)
        with deterministic(int(data.seed), int(self.text_model.params["num_threads"] or 0)):
            t_emb = self.text_model.embed(items_ok["text"].tolist())
        paths = [str(store.shard_for(v).path) for v in items_ok["video_id"]]
        store.close()
        emb_bad = (data.checks.check(items_ok, a_emb, "audio embedding (dada_audio branch)", paths)
                   | data.checks.check(items_ok, t_emb, "text embedding (dada_text branch)", paths))
        if require:
            all_bad = bad.copy()
            all_bad[np.flatnonzero(~bad)[emb_bad]] = True
            data.checks.require_usable(items, all_bad, self.name, data.source("audio"))
        if emb_bad.any():
            items_ok, a_emb, t_emb = items_ok[~emb_bad].reset_index(drop=True), a_emb[~emb_bad], t_emb[~emb_bad]
        return {"items": items_ok, "audio": a_emb, "p_audio": self.audio_model.prob_fake(a_emb),
                "text": t_emb}

    # ------------------------------------------------------------------ common API
    def fit(self, data: DetectorData, logger: Any | None = None) -> dict:
        self._load_branches(data.source("dada_text"), data.source("dada_audio"))
        t0 = time.perf_counter()
        items = self.utterances(data, "train")
        if items["y"].nunique() < 2:
            raise ValueError(f"{self.name}: the train split needs real and fake utterances")
        out = self.branch_outputs(data, items, require=True)
        items = out.pop("items")
        if items["y"].nunique() < 2:
            raise ValueError(f"{self.name}: the usable train utterances (finite waves) are not "
                             "both real and fake")
        self._data = data
        try:
            summary = self._fit_fusion(items, out, data.seed, logger)
        finally:
            self._data = None
        summary.update(branch_seconds=time.perf_counter() - t0, train_utterances=len(items),
                       missing_transcripts=int((~items["has_text"]).sum()))
        # saved with the model: no timings, so that reruns give byte-identical files
        self._fit = {k: v for k, v in summary.items()
                     if not isinstance(v, np.ndarray) and "seconds" not in k}
        return summary

    def score(self, data: DetectorData, split: str) -> pd.DataFrame:
        items = self.utterances(data, split)
        if not items.empty:
            out = self.branch_outputs(data, items)
            items = out.pop("items")
        if items.empty:
            return pd.DataFrame({"video_id": [], "frame_index": [], "score": []})
        score = self._fuse(items, out)
        branches = {"video_id": items["video_id"].to_numpy(), "audio": out["p_audio"]}
        if "p_text" in out:
            branches["text"] = out["p_text"]
        branches["fallback"] = out.get("fallback", items["no_text"].to_numpy())
        counts = fallback_counts(branches["fallback"])
        if counts["total"]:
            log.warning("%s, split %s: %d of %d utterances without text evidence (%s)%s", self.name,
                        split, counts["total"], len(items),
                        ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total" and v),
                        f"; p_text = tau = {self.tau:.4g} for them" if "p_text" in out else
                        "; text half masked")
        self._branch_scores[split] = pd.DataFrame(branches)
        df = pd.DataFrame({"video_id": items["video_id"], "frame_index": -1, "score": score})
        return check_scores(df, self.name)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for part, src in self._branch_dirs.items():
            dst = directory / part
            if Path(src).resolve() != dst.resolve():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
        self._save_fusion(directory)
        self.write_config(directory, {"fit": self._fit, "fusion": self._fusion_config()})

    @classmethod
    def load(cls, directory: Path) -> "_Dada":
        directory = Path(directory)
        det, cfg = cls.from_config(directory)
        det._load_branches(directory / "text", directory / "audio")
        det._fit = cfg.get("fit", {})
        det._load_fusion(directory, cfg.get("fusion", {}))
        return det

    def init_info(self) -> dict:
        if self.text_model is None:
            return {"init": "untrained"}
        return {"init": f"text: {self.text_model.init_info()}; audio: {self.audio_model.backbone_label} "
                        "(frozen) + trained head",
                "text_branch": self.text_model.init_info(), "audio_branch": self.audio_model.backbone_label}

    def extra_metrics(self, data: DetectorData, scores: pd.DataFrame) -> dict:
        """Each branch alone on the scored split (``branches``: the audio head's P(fake) and,
        for late fusion, the text P(fake)); min t-DCF (2019 legacy, 2021 revised) when
        ``asv_scores`` is given."""
        from ..data.manifest import is_fake  # noqa: PLC0415
        from ..metrics import binary_metrics  # noqa: PLC0415

        out: dict[str, Any] = {}
        split = str(scores["split"].iloc[0]) if "split" in scores.columns and len(scores) else ""
        br = self._branch_scores.get(split)
        if br is not None:
            m = br.merge(data.manifest[["video_id", "label"]], on="video_id", how="inner")
            y = is_fake(m)
            out["branches"] = {k: binary_metrics(y, m[k].to_numpy(float)) for k in ("audio", "text") if k in m}
            out["text_fallbacks"] = {**fallback_counts(br["fallback"]), "utterances": int(len(br))}
            if "text" in br:   # late fusion: the value p_text falls back to
                out["text_fallbacks"]["tau"] = float(self.tau)
        path = str(self.params.get("asv_scores") or "")
        m = scores.merge(data.manifest[[c for c in ("video_id", "label", "path", "dataset")
                                        if c in data.manifest.columns]], on="video_id", how="inner")
        if not path and "path" in m.columns:
            from ..metrics_asv import asvspoof2019_asv_scores  # noqa: PLC0415

            found = asvspoof2019_asv_scores(m["path"])
            path = str(found) if found is not None else ""
        if not path:
            out["tdcf"] = ("not computed: no ASV scores (param asv_scores; an ASVspoof 2019 LA "
                           "dev/eval tree's own ASVspoof2019_LA_asv_scores/ are used when present)")
            return out
        from ..metrics_asv import read_asv_scores, tdcf_from_fake_prob  # noqa: PLC0415

        out["tdcf"] = {**tdcf_from_fake_prob(is_fake(m), m["score"].to_numpy(float), read_asv_scores(path)),
                       "asv_scores_file": path}
        return out

    # ------------------------------------------------------------------ per fusion
    def _fit_fusion(self, items, out, seed, logger) -> dict:
        raise NotImplementedError

    def _fuse(self, items, out) -> np.ndarray:
        raise NotImplementedError

    def _save_fusion(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_fusion(self, directory: Path, cfg: dict) -> None:
        raise NotImplementedError

    def _fusion_config(self) -> dict:
        return {}


# ----------------------------------------------------------------------------- mid fusion
def fusion_mlp(in_dim: int, hidden: int = 64, dropout: float = 0.2):
    """The mid-fusion MLP: Linear -> ReLU -> Dropout -> Linear (one logit)."""
    from torch import nn  # noqa: PLC0415  (torch is imported lazily: the registry stays light)

    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


FALLBACK_REASONS = ("missing_transcript", "empty_transcript", "unenrolled_speaker")


def fallback_counts(reasons) -> dict[str, int]:
    """Utterances per fallback reason ("" = none) and their ``total``."""
    reasons = [str(r) for r in reasons]
    out = {k: sum(r == k for r in reasons) for k in FALLBACK_REASONS}
    out["total"] = sum(bool(r) for r in reasons)
    return out


def mid_features(audio_emb: np.ndarray, text_emb: np.ndarray, has_text=None) -> np.ndarray:
    """Mid-fusion input: ``[f_phi / |f_phi|, m f_theta / |f_theta|, m]`` with ``m`` = 1 when the
    utterance has a transcript, 0 when it has none (its text half is then all zeros, whatever
    the text model would make of an empty string)."""
    m = np.ones(len(audio_emb), np.float32) if has_text is None else np.asarray(has_text, np.float32)
    return np.concatenate([_l2n(audio_emb), _l2n(text_emb) * m[:, None], m[:, None]],
                          axis=1).astype(np.float32)


def mask_text(x, drop, text_start: int):
    """Mid-fusion inputs ``x`` (torch) with the text half and the indicator (columns
    ``text_start:``) of the rows where ``drop`` is true zeroed: as if they had no transcript."""
    x = x.clone()
    x[drop, text_start:] = 0.0
    return x


@register("dada_mid")
class DadaMid(_Dada):
    """Mid fusion: frozen audio + text embeddings concatenated -> MLP -> BCE (dada.txt §3.3.1)."""

    defaults: ClassVar[dict] = MID_DEFAULTS
    checks: ClassVar[dict] = {
        "asv_scores": _cfg.Str(), "device": _cfg.DEVICE, "hidden": _cfg.Int(ge=1),
        "dropout": _cfg.Float(ge=0, lt=1), "epochs": _cfg.Int(ge=1), "lr": _cfg.Float(gt=0),
        "weight_decay": _cfg.Float(ge=0), "batch_size": _cfg.Int(ge=1),
        "pos_weight": _cfg.AnyOf(_cfg.Choice("auto", "none"), _cfg.Float(gt=0), nullable=True),
        "text_dropout": _cfg.Float(ge=0, lt=1)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.mlp = None
        self.in_dim = 0

    def _fit_fusion(self, items, out, seed, logger) -> dict:
        import torch  # noqa: PLC0415
        from torch import nn  # noqa: PLC0415

        from ..nn.train import deterministic, pos_weight_from_labels  # noqa: PLC0415

        p = self.params
        x = torch.from_numpy(mid_features(out["audio"], out["text"], items["has_text"].to_numpy()))
        y = torch.from_numpy(items["y"].to_numpy(np.float32))
        text_start = out["audio"].shape[1]
        drop_p = float(p["text_dropout"])
        pw = pos_weight_from_labels(y.numpy()) if p["pos_weight"] == "auto" else (
            None if p["pos_weight"] in (None, "none") else float(p["pos_weight"]))
        self.in_dim = x.shape[1]
        losses = []
        # the branches' thread count (params.yaml), not the machine's
        with deterministic(int(seed), int(self.audio_model.params["num_threads"] or 0)):
            self.mlp = fusion_mlp(self.in_dim, int(p["hidden"]), float(p["dropout"]))
            opt = torch.optim.AdamW(self.mlp.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
            lossf = nn.BCEWithLogitsLoss(pos_weight=None if pw is None else torch.tensor(float(pw)))
            g = torch.Generator().manual_seed(int(seed))
            for epoch in range(int(p["epochs"])):
                self.mlp.train()
                perm = torch.randperm(len(y), generator=g)
                total = 0.0
                for i in range(0, len(y), int(p["batch_size"])):
                    idx = perm[i:i + int(p["batch_size"])]
                    xb = x[idx]
                    if drop_p > 0:   # modality dropout: learn the no-transcript score too
                        xb = mask_text(xb, torch.rand(len(idx), generator=g) < drop_p, text_start)
                    loss = lossf(self.mlp(xb).squeeze(-1), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                losses.append(total / len(y))
                if logger is not None:
                    logger.log_metric("train/loss", losses[-1])
                    logger.next_step()
        self.mlp.eval()
        return {"epochs": len(losses), "final_loss": losses[-1] if losses else None, "pos_weight": pw,
                "text_dropout": drop_p}

    def _fuse(self, items, out) -> np.ndarray:
        import torch  # noqa: PLC0415

        self.mlp.eval()
        x = torch.from_numpy(mid_features(out["audio"], out["text"], items["has_text"].to_numpy()))
        with torch.no_grad():
            return torch.sigmoid(self.mlp(x).squeeze(-1)).numpy().astype(float)

    def _save_fusion(self, directory: Path) -> None:
        from safetensors.torch import save_file  # noqa: PLC0415

        save_file({k: v.contiguous() for k, v in self.mlp.state_dict().items()}, str(directory / "fusion.safetensors"))

    def _fusion_config(self) -> dict:
        return {"in_dim": int(self.in_dim)}

    def _load_fusion(self, directory: Path, cfg: dict) -> None:
        from ..model_files import fit_state_dict, load_safetensors, require  # noqa: PLC0415

        self.in_dim = int(require(cfg, "in_dim", directory / "config.json (fusion)"))
        path = directory / "fusion.safetensors"
        state = load_safetensors(path)
        self.mlp = fusion_mlp(self.in_dim, int(self.params["hidden"]), float(self.params["dropout"]))
        fit_state_dict(self.mlp, state, path)
        self.mlp.eval()

    def num_parameters(self) -> dict:
        fusion = sum(p.numel() for p in self.mlp.parameters()) if self.mlp is not None else 0
        out = {"fusion_mlp": int(fusion)}
        if self.text_model is not None:
            out["text_head"] = self.text_model.num_parameters()["head"]
            out["audio_head"] = self.audio_model.num_parameters()["head"]
        out["total"] = int(sum(out.values()))
        return out


# ----------------------------------------------------------------------------- late fusion
def spoof_rate_by_author(identity, y, prior_strength: float = 1.0) -> tuple[dict[str, float], float]:
    """``p(X = 0 | A = a)`` per claimed speaker: ``(n_fake_a + s tau) / (n_a + s)`` with the
    overall spoof share ``tau`` and ``s = prior_strength``; also returns ``tau``."""
    df = pd.DataFrame({"a": np.asarray(identity).astype(str), "y": np.asarray(y, dtype=float)})
    tau = float(df["y"].mean())
    s = float(prior_strength)
    g = df.groupby("a")["y"].agg(["sum", "count"])
    rates = {str(a): float((r["sum"] + s * tau) / (r["count"] + s)) for a, r in g.iterrows()}
    return rates, tau


def late_text_prob(probs: np.ndarray, authors: list[str], rates: dict[str, float], tau: float,
                   mode: str = "marginal", claimed=None) -> np.ndarray:
    """Text branch P(fake) from ``probs[i, a] = p(A = a | T = t_i)`` (see module docstring)."""
    r = np.array([rates.get(a, tau) for a in authors], dtype=float)
    if mode == "marginal":
        from ..determinism import rowdot  # noqa: PLC0415

        return rowdot(probs, r)  # per row: an utterance scores the same in any batch
    if mode == "claimed":
        idx = {a: k for k, a in enumerate(authors)}
        out = np.empty(len(probs))
        for i, c in enumerate(claimed):
            k = idx.get(str(c))
            # an unenrolled claimed speaker: no evidence from the text, the prior share
            out[i] = tau if k is None else 1.0 - probs[i, k] * (1.0 - r[k])
        return out
    raise ValueError(f"unknown text_mode {mode!r} (marginal | claimed)")


def late_fusion(p_audio: np.ndarray, p_text: np.ndarray, alpha: float) -> np.ndarray:
    """dada.txt Eq. 3: ``alpha p_audio + (1 - alpha) p_text``."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return float(alpha) * np.asarray(p_audio, float) + (1.0 - float(alpha)) * np.asarray(p_text, float)


@register("dada_late")
class DadaLate(_Dada):
    """Late fusion: weighted mean of the audio P(fake) and the text P(fake) of dada.txt §7."""

    defaults: ClassVar[dict] = LATE_DEFAULTS
    checks: ClassVar[dict] = {"asv_scores": _cfg.Str(), "device": _cfg.DEVICE, "alpha": _cfg.Float(ge=0, le=1),
                              "text_mode": _cfg.Choice("claimed", "marginal"),
                              "prior_strength": _cfg.Float(ge=0)}

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.rates: dict[str, float] = {}
        self.tau = 0.5
        self.authors: list[str] = []
        self.centroids = np.zeros((0, 0), dtype=np.float32)
        self.temperature = 0.1

    def _fit_fusion(self, items, out, seed, logger) -> dict:
        self.rates, self.tau = spoof_rate_by_author(items["identity"], items["y"], float(self.params["prior_strength"]))
        enrol = ((items["y"] == 0) & items["has_text"]).to_numpy()
        emb, who = out["text"][enrol], items.loc[enrol, "identity"].to_numpy()
        if len(set(who.tolist())) < 1:
            raise ValueError(f"{self.name}: no bona fide train utterance with a transcript to enrol authors")
        from ..text.model import centroids_of  # noqa: PLC0415

        self.authors, self.centroids = centroids_of(emb, who)
        self.temperature, source = self._fit_temperature(emb, who)
        return {"authors": self.authors, "spoof_rate_by_author": self.rates, "tau": self.tau,
                "temperature": self.temperature, "temperature_source": source,
                "enrolled_utterances": int(enrol.sum())}

    def _fit_temperature(self, emb: np.ndarray, who: np.ndarray) -> tuple[float, str]:
        """On the val split's bona fide transcripts of enrolled speakers when there are >= 4
        of >= 2 speakers (held out: a train leave-one-out that attributes every transcript
        rightly sends the fit to the grid's lower end, see :mod:`dfdetect.text.model`),
        else leave-one-out on the enrolment transcripts."""
        if len(self.authors) < 2:
            return float(self.text_model.temperature), "text model"
        data = getattr(self, "_data", None)
        if data is not None:
            val = self.utterances(data, "val")
            val = val[(val["y"] == 0) & val["has_text"] & val["identity"].isin(self.authors)]
            if len(val) >= 4 and val["identity"].nunique() >= 2:
                from ..nn.train import deterministic  # noqa: PLC0415

                with deterministic(int(data.seed), int(self.text_model.params["num_threads"] or 0)):
                    t_emb = self.text_model.embed(val["text"].tolist())
                return self.text_model.heldout_temperature(t_emb, val["identity"].to_numpy(),
                                                           centroids=self.centroids,
                                                           authors=self.authors), "val"
        return self.text_model.fit_temperature(emb, who), "train leave-one-out"

    def text_fallbacks(self, items: pd.DataFrame) -> np.ndarray:
        """Why each utterance's ``p_text`` is ``tau`` ("" where it is not): no transcript
        (``missing_transcript`` / ``empty_transcript``) or, in ``claimed`` mode, a claimed
        speaker without enrolled transcripts (``unenrolled_speaker``)."""
        reasons = items["no_text"].to_numpy(dtype=object).copy() if "no_text" in items else \
            np.where(items["has_text"].to_numpy(), "", "missing_transcript").astype(object)
        if self.params["text_mode"] == "claimed":
            known = set(self.authors)
            unknown = ~items["identity"].astype(str).isin(known).to_numpy()
            reasons[(reasons == "") & unknown] = "unenrolled_speaker"
        return reasons

    def text_prob(self, items: pd.DataFrame, text_emb: np.ndarray) -> np.ndarray:
        probs = self.text_model.author_probs(text_emb, self.centroids, self.temperature)
        p = late_text_prob(probs, self.authors, self.rates, self.tau, self.params["text_mode"], items["identity"])
        # no transcript: the text says nothing, use the overall spoof share
        return np.where(items["has_text"].to_numpy(), p, self.tau)

    def _fuse(self, items, out) -> np.ndarray:
        out["fallback"] = self.text_fallbacks(items)
        out["p_text"] = self.text_prob(items, out["text"])
        return late_fusion(out["p_audio"], out["p_text"], float(self.params["alpha"]))

    def _save_fusion(self, directory: Path) -> None:
        from safetensors.numpy import save_file  # noqa: PLC0415

        save_file({"centroids": np.ascontiguousarray(self.centroids, dtype=np.float32)},
                  str(directory / "fusion.safetensors"))

    def _fusion_config(self) -> dict:
        return {"authors": self.authors, "rates": self.rates, "tau": self.tau, "temperature": self.temperature}

    def _load_fusion(self, directory: Path, cfg: dict) -> None:
        from ..model_files import load_safetensors, model_file, require  # noqa: PLC0415

        path = directory / "fusion.safetensors"
        self.centroids = require(load_safetensors(path, "numpy"), "centroids", path)
        with model_file(directory / "config.json", "fusion section unreadable"):
            self.authors = list(cfg["authors"])
            self.rates = {str(k): float(v) for k, v in cfg["rates"].items()}
            self.tau, self.temperature = float(cfg["tau"]), float(cfg["temperature"])

    def num_parameters(self) -> dict:
        out = {"fusion": 1}
        if self.text_model is not None:
            out["text_head"] = self.text_model.num_parameters()["head"]
            out["audio_head"] = self.audio_model.num_parameters()["head"]
        out["total"] = int(sum(out.values()))
        return out
