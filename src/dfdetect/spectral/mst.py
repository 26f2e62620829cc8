"""MST++: multi-stage spectral-wise transformer for RGB -> 31-band reconstruction.

Cai et al., "MST++: Multi-stage Spectral-wise Transformer for Efficient Spectral
Reconstruction" (NTIRE 2022). Structure (as defined by the paper and its reference code):

- ``conv_in`` (3x3, 3 -> 31), three cascaded single-stage spectral transformers (SST), ``conv_out``
  (3x3, 31 -> 31) with a global residual from ``conv_in``; the input is reflect-padded to a
  multiple of 8 and the output cropped back.
- An SST is a U-shaped net: 3x3 embedding, two encoder levels (spectral-wise attention block
  (SAB) then a 4x4 stride-2 conv that doubles the channels), an SAB bottleneck, two decoder
  levels (2x2 transposed conv, 1x1 fusion of the skip, SAB), a 3x3 mapping and a residual.
- A SAB is ``x + S-MSA(x)`` then ``x + FFN(LayerNorm(x))``. S-MSA treats each *channel* as a
  token: Q, K, V are linear maps of the pixels, Q and K are L2-normalised over the pixels, the
  attention map is the d x d matrix ``softmax(sigma * K Q^T)`` (a learned scale per head), the
  output is projected and added to a positional branch (two depthwise 3x3 convs on V).
  The FFN is 1x1 (x4) -> GELU -> depthwise 3x3 -> GELU -> 1x1.

The implementation works on pixel-major (channels-last) features throughout (the 1x1 maps are
single GEMMs over ``(b, h, w, c)``, Q/K/V come from one fused matmul, the FFN runs in row bands
at inference), which is what makes it faster on CPU than the reference code while computing the
same function. The FFN's LayerNorm is applied separately with its own affine (``norm_w``,
``norm_b``), exactly as the reference code; it is not folded into the first FFN matrix: :func:`load_official_checkpoint` maps the authors' ``state_dict`` onto it.

``attention="flexi"`` selects the FlexiAttention variant of HyperFake (Shekar et al., section
IV-B-1: "downsampling spectral features, applying attention, and then upsampling them"). The paper
gives no equations; here the S-MSA branch runs on features average-pooled by ``flexi_factor``
(Q, K, V, the d x d attention and the projection all at the lower resolution) and its output and
V are upsampled (bilinear) back before the positional branch and the residual. It has exactly the
baseline's parameters (checkpoints are interchangeable) and ``flexi_factor**2`` fewer
attention-branch FLOPs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

N_BANDS = 31
WAVELENGTHS_NM = tuple(range(400, 701, 10))  # the 31 band centres of ARAD-1K / NTIRE 2022


def _trunc_normal(t: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    with torch.no_grad():
        return nn.init.trunc_normal_(t, std=std, a=-2.0, b=2.0)


def _gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, in place when autograd is off (saves one large allocation per call)."""
    if torch.is_grad_enabled():
        return F.gelu(x)
    return torch.ops.aten.gelu_(x)


class SpectralMSA(nn.Module):
    """Spectral-wise multi-head self-attention (S-MSA); tokens are channels, not pixels.

    Works on pixel-major features ``(b, h, w, c)`` (contiguous), so Q/K/V and the projection
    are single GEMMs and the depthwise convolutions run on channels-last memory.
    """

    def __init__(self, dim: int, dim_head: int, heads: int, attention: str = "smsa",
                 flexi_factor: int = 2):
        super().__init__()
        if attention not in ("smsa", "flexi"):
            raise ValueError(f"attention must be 'smsa' or 'flexi', got {attention!r}")
        self.dim, self.dim_head, self.heads = dim, dim_head, heads
        inner = dim_head * heads
        if inner != dim:
            raise ValueError("S-MSA's positional branch needs heads * dim_head == dim")
        self.attention = attention
        self.flexi_factor = int(flexi_factor)
        self.qkv = nn.Parameter(_trunc_normal(torch.empty(3 * inner, dim)))  # rows: Q | K | V
        self.rescale = nn.Parameter(torch.ones(heads, 1, 1))
        self.proj_w = nn.Parameter(_trunc_normal(torch.empty(dim, inner)))
        self.proj_b = nn.Parameter(torch.zeros(dim))
        self.pos1 = nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim)
        self.pos2 = nn.Conv2d(dim, dim, 3, 1, 1, bias=False, groups=dim)

    def _attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(projected attention output, V), both (b, h, w, c), at the resolution of ``x``."""
        b, h, w, c = x.shape
        n, hd, d = h * w, self.heads, self.dim_head
        qkv = F.linear(x.reshape(b, n, c), self.qkv)                    # b, n, 3I
        q, k, v = qkv.split(hd * d, dim=-1)
        # cosine similarity of channels over the pixels (F.normalize's eps) without copying Q, K:
        # K^T Q from one GEMM on strided views, divided by the outer product of the norms
        qn = torch.linalg.vector_norm(q, dim=1).clamp_min(1e-12).reshape(b, hd, 1, d)
        kn = torch.linalg.vector_norm(k, dim=1).clamp_min(1e-12).reshape(b, hd, d, 1)
        gram = torch.matmul(k.reshape(b, n, hd, d).permute(0, 2, 3, 1),
                            q.reshape(b, n, hd, d).transpose(1, 2))        # b, heads, d, d
        attn = (gram / (kn * qn) * self.rescale).softmax(dim=-1)
        # (attn @ V)^T = V^T attn^T: pixel-major output, a view when heads == 1
        out = torch.matmul(v.reshape(b, n, hd, d).transpose(1, 2), attn.transpose(-2, -1))
        out = out.transpose(1, 2).reshape(b, n, hd * d)
        out = F.linear(out, self.proj_w, self.proj_b)
        return out.reshape(b, h, w, c), v.reshape(b, h, w, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        r = self.flexi_factor
        if self.attention == "flexi" and r > 1 and min(h, w) >= 2 * r:
            low = F.avg_pool2d(x.permute(0, 3, 1, 2), r, ceil_mode=True, count_include_pad=False)
            out, v = self._attend(low.permute(0, 2, 3, 1).contiguous())
            both = torch.cat([out, v], dim=-1).permute(0, 3, 1, 2)
            both = F.interpolate(both, size=(h, w), mode="bilinear", align_corners=False)
            out = both[:, :c].permute(0, 2, 3, 1)
            vc = both[:, c:].contiguous(memory_format=torch.channels_last)
        else:
            out, v = self._attend(x)
            vc = v.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        pos = self.pos2(_gelu(self.pos1(vc))).permute(0, 2, 3, 1)
        return out.add_(pos) if not torch.is_grad_enabled() else out + pos


class FeedForward(nn.Module):
    """LayerNorm over channels, then 1x1 (x mult) -> GELU -> depthwise 3x3 -> GELU -> 1x1."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        hid = dim * mult
        self.norm_w = nn.Parameter(torch.ones(dim))
        self.norm_b = nn.Parameter(torch.zeros(dim))
        self.fc1 = nn.Parameter(torch.empty(hid, dim))
        self.dw = nn.Conv2d(hid, hid, 3, 1, 1, bias=False, groups=hid)
        self.fc2 = nn.Parameter(torch.empty(dim, hid))
        for p in (self.fc1, self.fc2):  # PyTorch's default Conv2d init (the reference's 1x1 convs)
            nn.init.kaiming_uniform_(p, a=math.sqrt(5))

    #: pixels per image in one row band of the inference path (keeps the 4c-wide hidden
    #: activations of a band in cache instead of streaming full-image tensors through memory)
    tile_pixels: int = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        y = F.layer_norm(x, (c,), self.norm_w, self.norm_b, 1e-5)
        rows = max(2, self.tile_pixels // max(w, 1))
        if not torch.is_grad_enabled() and h > rows:
            return self._banded(y, rows)
        y = _gelu(F.linear(y, self.fc1))                                 # b, h, w, 4c
        y = _gelu(self.dw(y.permute(0, 3, 1, 2)))                        # channels-last conv
        return F.linear(y.permute(0, 2, 3, 1), self.fc2)

    def _banded(self, y: torch.Tensor, rows: int) -> torch.Tensor:
        """The same function computed in bands of ``rows`` image rows (plus a one-row halo for
        the 3x3 depthwise conv; zero rows at the image border, as the conv's padding)."""
        b, h, w, c = y.shape
        out = torch.empty_like(y)
        wdw = self.dw.weight
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            z = _gelu(F.linear(y[:, max(0, r0 - 1):min(h, r1 + 1)], self.fc1)).permute(0, 3, 1, 2)
            top, bottom = int(r0 == 0), int(r1 == h)
            if top or bottom:
                z = F.pad(z, (0, 0, top, bottom))
            z = _gelu(F.conv2d(z, wdw, padding=(0, 1), groups=wdw.shape[0]))
            out[:, r0:r1] = F.linear(z.permute(0, 2, 3, 1), self.fc2)
        return out


class SAB(nn.Module):
    """Spectral-wise attention block: ``num_blocks`` x (S-MSA residual, FFN residual)."""

    def __init__(self, dim: int, dim_head: int, heads: int, num_blocks: int, **attn_kw):
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"msa": SpectralMSA(dim, dim_head, heads, **attn_kw),
                           "ffn": FeedForward(dim)}) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, c, h, w) -> (b, c, h, w), channels-last memory in and out."""
        t = x.permute(0, 2, 3, 1).contiguous()
        inplace = not torch.is_grad_enabled()
        for blk in self.blocks:
            t = t.add_(blk["msa"](t)) if inplace else t + blk["msa"](t)
            t = t.add_(blk["ffn"](t)) if inplace else t + blk["ffn"](t)
        return t.permute(0, 3, 1, 2)


class SST(nn.Module):
    """Single-stage spectral-wise transformer (the reference code's ``MST``), U-shaped."""

    def __init__(self, dim: int = 31, levels: int = 2, num_blocks=(1, 1, 1), **attn_kw):
        super().__init__()
        self.levels = levels
        self.embedding = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)
        self.encoder = nn.ModuleList()
        d = dim
        for i in range(levels):
            self.encoder.append(nn.ModuleDict({
                "sab": SAB(d, dim, d // dim, num_blocks[i], **attn_kw),
                "down": nn.Conv2d(d, 2 * d, 4, 2, 1, bias=False)}))
            d *= 2
        self.bottleneck = SAB(d, dim, d // dim, num_blocks[-1], **attn_kw)
        self.decoder = nn.ModuleList()
        for i in range(levels):
            self.decoder.append(nn.ModuleDict({
                "up": nn.ConvTranspose2d(d, d // 2, 2, 2),
                "fuse": nn.Conv2d(d, d // 2, 1, 1, bias=False),
                "sab": SAB(d // 2, dim, (d // 2) // dim, num_blocks[levels - 1 - i], **attn_kw)}))
            d //= 2
        self.mapping = nn.Conv2d(dim, dim, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.embedding(x)
        skips = []
        for enc in self.encoder:
            fea = enc["sab"](fea)
            skips.append(fea)
            fea = enc["down"](fea)
        fea = self.bottleneck(fea)
        for i, dec in enumerate(self.decoder):
            fea = dec["up"](fea)
            fea = dec["fuse"](torch.cat([fea, skips[self.levels - 1 - i]], dim=1))
            fea = dec["sab"](fea)
        return self.mapping(fea) + x


class MSTPlusPlus(nn.Module):
    """RGB (b, 3, H, W) -> spectral cube (b, 31, H, W); any H, W (reflect-padded to x8)."""

    def __init__(self, in_channels: int = 3, out_channels: int = N_BANDS, n_feat: int = 31,
                 stage: int = 3, attention: str = "smsa", flexi_factor: int = 2):
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels, "n_feat": n_feat,
                       "stage": stage, "attention": attention, "flexi_factor": flexi_factor}
        self.conv_in = nn.Conv2d(in_channels, n_feat, 3, 1, 1, bias=False)
        self.stages = nn.Sequential(*[SST(dim=n_feat, levels=2, num_blocks=(1, 1, 1),
                                          attention=attention, flexi_factor=flexi_factor)
                                      for _ in range(stage)])
        self.conv_out = nn.Conv2d(n_feat, out_channels, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        if ph or pw:
            x = F.pad(x, [0, pw, 0, ph], mode="reflect")
        x = self.conv_in(x.contiguous(memory_format=torch.channels_last))
        out = self.conv_out(self.stages(x)) + x
        return out[:, :, :h, :w].contiguous()


def build(attention: str = "smsa", flexi_factor: int = 2, **kw) -> MSTPlusPlus:
    return MSTPlusPlus(attention=attention, flexi_factor=flexi_factor, **kw)


# ----------------------------------------------------------------------------- size and cost
def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, height: int = 128, width: int = 128, batch: int = 1) -> dict:
    """Matmul/conv FLOPs of one forward pass (torch's FlopCounterMode; 1 MAC = 2 FLOPs).

    Element-wise work (GELU, softmax, normalisation) is not counted, as in the papers' tables.
    """
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    p = next(model.parameters())
    x = torch.zeros(batch, model.config["in_channels"] if hasattr(model, "config") else 3,
                    height, width, dtype=p.dtype, device=p.device)
    counter = FlopCounterMode(display=False)
    # the plain (autograd) path: the banded inference path recomputes one halo row per band
    with torch.enable_grad(), counter:
        model(x)
    flops = int(counter.get_total_flops())
    return {"flops": flops, "gflops": flops / 1e9, "gmacs": flops / 2e9,
            "input": [batch, 3, height, width]}


# ----------------------------------------------------------------------------- official weights
_OFFICIAL_BLOCK = re.compile(r"blocks\.(\d+)\.(0|1)\.(.+)$")


def _sab_key_from_official(rest: str) -> list[tuple[str, str]] | str:
    """Official SAB sub-key (after ``blocks.j.``) -> our sub-key (q/k/v handled by caller)."""
    m = _OFFICIAL_BLOCK.match(rest)
    if not m:
        raise KeyError(rest)
    j, part, tail = m.groups()
    if part == "0":
        table = {"rescale": "msa.rescale", "proj.weight": "msa.proj_w", "proj.bias": "msa.proj_b",
                 "pos_emb.0.weight": "msa.pos1.weight", "pos_emb.2.weight": "msa.pos2.weight",
                 "to_q.weight": "msa.qkv#0", "to_k.weight": "msa.qkv#1", "to_v.weight": "msa.qkv#2"}
    else:
        table = {"norm.weight": "ffn.norm_w", "norm.bias": "ffn.norm_b",
                 "fn.net.0.weight": "ffn.fc1", "fn.net.2.weight": "ffn.dw.weight",
                 "fn.net.4.weight": "ffn.fc2"}
    if tail not in table:
        raise KeyError(rest)
    return f"blocks.{j}.{table[tail]}"


def _map_official_key(key: str) -> str:
    m = re.match(r"body\.(\d+)\.(.+)$", key)
    if not m:
        if key in ("conv_in.weight", "conv_out.weight"):
            return key
        raise KeyError(key)
    s, rest = m.groups()
    pre = f"stages.{s}."
    if rest in ("embedding.weight", "mapping.weight"):
        return pre + rest
    m = re.match(r"encoder_layers\.(\d+)\.0\.(.+)$", rest)
    if m:
        return pre + f"encoder.{m.group(1)}.sab." + _sab_key_from_official(m.group(2))
    m = re.match(r"encoder_layers\.(\d+)\.1\.weight$", rest)
    if m:
        return pre + f"encoder.{m.group(1)}.down.weight"
    m = re.match(r"bottleneck\.(.+)$", rest)
    if m:
        return pre + "bottleneck." + _sab_key_from_official(m.group(1))
    m = re.match(r"decoder_layers\.(\d+)\.(0|1)\.(weight|bias)$", rest)
    if m:
        i, part, kind = m.groups()
        return pre + f"decoder.{i}.{'up' if part == '0' else 'fuse'}.{kind}"
    m = re.match(r"decoder_layers\.(\d+)\.2\.(.+)$", rest)
    if m:
        return pre + f"decoder.{m.group(1)}.sab." + _sab_key_from_official(m.group(2))
    raise KeyError(key)


def convert_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' ``MST_Plus_Plus.state_dict()`` (optionally ``module.``-prefixed) -> ours."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[str, list] = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        try:
            ours = _map_official_key(k)
        except KeyError:
            raise KeyError(f"unexpected key in MST++ checkpoint: {key!r}") from None
        if "#" in ours:
            name, idx = ours.split("#")
            qkv.setdefault(name, [None, None, None])[int(idx)] = value
            continue
        if ours.endswith((".ffn.fc1", ".ffn.fc2")):
            value = value.reshape(value.shape[0], value.shape[1])   # 1x1 conv -> matrix
        out[ours] = value
    for name, parts in qkv.items():
        if any(p is None for p in parts):
            raise KeyError(f"MST++ checkpoint lacks one of to_q/to_k/to_v for {name}")
        out[name] = torch.cat(parts, dim=0)
    return out


def to_official_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`convert_official_state_dict` (for exporting to the authors' code)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        official = _official_key(key)
        if isinstance(official, list):
            for i, off in enumerate(official):
                out[off] = value.chunk(3, dim=0)[i].clone()
        else:
            if key.endswith((".ffn.fc1", ".ffn.fc2")):
                value = value.reshape(value.shape[0], value.shape[1], 1, 1)
            out[official] = value
    return out


def _official_key(key: str):
    if key in ("conv_in.weight", "conv_out.weight"):
        return key
    m = re.match(r"stages\.(\d+)\.(.+)$", key)
    if not m:
        raise KeyError(key)
    s, rest = m.groups()
    pre = f"body.{s}."
    if rest in ("embedding.weight", "mapping.weight"):
        return pre + rest

    def sab(sub: str):
        m2 = re.match(r"blocks\.(\d+)\.(msa|ffn)\.(.+)$", sub)
        j, part, tail = m2.groups()
        if part == "msa":
            if tail == "qkv":
                return [f"blocks.{j}.0.to_{c}.weight" for c in "qkv"]
            t = {"rescale": "rescale", "proj_w": "proj.weight", "proj_b": "proj.bias",
                 "pos1.weight": "pos_emb.0.weight", "pos2.weight": "pos_emb.2.weight"}[tail]
            return f"blocks.{j}.0.{t}"
        t = {"norm_w": "norm.weight", "norm_b": "norm.bias", "fc1": "fn.net.0.weight",
             "dw.weight": "fn.net.2.weight", "fc2": "fn.net.4.weight"}[tail]
        return f"blocks.{j}.1.{t}"

    def prefixed(p: str, sub):
        return [p + s_ for s_ in sub] if isinstance(sub, list) else p + sub

    m = re.match(r"encoder\.(\d+)\.sab\.(.+)$", rest)
    if m:
        return prefixed(pre + f"encoder_layers.{m.group(1)}.0.", sab(m.group(2)))
    m = re.match(r"encoder\.(\d+)\.down\.weight$", rest)
    if m:
        return pre + f"encoder_layers.{m.group(1)}.1.weight"
    m = re.match(r"bottleneck\.(.+)$", rest)
    if m:
        return prefixed(pre + "bottleneck.", sab(m.group(1)))
    m = re.match(r"decoder\.(\d+)\.(up|fuse)\.(weight|bias)$", rest)
    if m:
        i, part, kind = m.groups()
        return pre + f"decoder_layers.{i}.{0 if part == 'up' else 1}.{kind}"
    m = re.match(r"decoder\.(\d+)\.sab\.(.+)$", rest)
    if m:
        return prefixed(pre + f"decoder_layers.{m.group(1)}.2.", sab(m.group(2)))
    raise KeyError(key)


def load_official_checkpoint(path: str | Path, attention: str = "smsa", flexi_factor: int = 2,
                             map_location: str | torch.device = "cpu") -> MSTPlusPlus:
    """Build MST++ from the authors' checkpoint (``mst_plus_plus.pth``).

    Accepts ``{'state_dict': ...}`` (their ``save_checkpoint`` / released weights, keys possibly
    prefixed ``module.`` by DataParallel) or a bare state dict, in the authors' key layout or
    ours. Loaded with ``weights_only=True`` (no code is unpickled); strict: every key must map.
    """
    from ..model_files import torch_load  # noqa: PLC0415  (ModelLoadError names the file)

    ckpt = torch_load(path, map_location)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: not an MST++ checkpoint (expected a dict with 'state_dict')")
    keys = list(state)
    ours = any(k.startswith("stages.") for k in keys)
    state = dict(state) if ours else convert_official_state_dict(state)
    model = MSTPlusPlus(attention=attention, flexi_factor=flexi_factor)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: MST++ checkpoint does not match the architecture; "
                         f"missing {missing[:5]}..., unexpected {unexpected[:5]}...")
    return model.eval()


def save_weights(model: MSTPlusPlus, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
    """Plain ``{'state_dict', 'config', ...}`` checkpoint, loadable with ``weights_only=True``."""
    from ..store import save_torch_atomic  # noqa: PLC0415

    obj = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
           "config": dict(model.config)}
    obj.update(extra or {})
    save_torch_atomic(obj, path)


def load_weights(path: str | Path, map_location: str | torch.device = "cpu",
                 attention: str | None = None) -> MSTPlusPlus:
    """Load :func:`save_weights` output (or an official checkpoint) with ``weights_only=True``."""
    from ..model_files import torch_load  # noqa: PLC0415  (ModelLoadError names the file)

    ckpt = torch_load(path, map_location)
    if isinstance(ckpt, Mapping) and "config" in ckpt:
        cfg = dict(ckpt["config"])
        if attention is not None:
            cfg["attention"] = attention
        model = MSTPlusPlus(**cfg)
        model.load_state_dict(ckpt["state_dict"], strict=True)
        return model.eval()
    return load_official_checkpoint(path, attention=attention or "smsa", map_location=map_location)
