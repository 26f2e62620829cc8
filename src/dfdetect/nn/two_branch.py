"""The two-branch recurrent network of two_branch.txt (Masi et al., ECCV 2020), spec B.3.

Per frame: an RGB branch (DenseNet-121 ``conv0 .. transition1``) and a LoG branch (a deep copy
of the same modules with :class:`~dfdetect.nn.layers.DeepLoG` after ``conv0``), both giving
128 planes (28 x 28 at 224 px); the two maps interleaved (``r0, l0, r1, l1, ...``) and fused
by a point-wise convolution with ``fusion_groups`` groups (each group sees as many RGB as LoG
planes); the remaining DenseBlocks (``denseblock2 .. norm5``, dropout after every DenseLayer);
global average pooling to 1024. Per sequence: a bidirectional LSTM whose last forward and
last backward states are concatenated (``cat``, 2D = 256) or added (``sum``).

``forward`` returns, per sequence, the distance ``d = ||Phi - c||`` to the fixed centre buffer
``center`` (hypersphere loss, Eq. 2), or a logit (``head: bce``, the Fig. 4c / Encoder
comparison). Without the LSTM (``temporal: none``) the frame descriptors (1024-d) are used and
a sequence's output is the mean over its frames.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from .layers import DeepLoG

STEM = ("conv0", "norm0", "pool0", "denseblock1", "transition1")
TRUNK = ("denseblock2", "transition2", "denseblock3", "transition3", "denseblock4", "norm5")
#: per-block learning-rate levels L (mu / base^L) of the trunk with the LSTM (spec B.6); the
#: LSTM (and a BCE head) have L = 0; without the LSTM every level is one lower
TRUNK_LEVELS = {"denseblock4": 1, "norm5": 1, "denseblock3": 2, "transition3": 2,
                "denseblock2": 3, "transition2": 3}
STEM_LEVEL = 4


def interleave(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Channels ``a0, b0, a1, b1, ...`` of two (N, C, H, W) maps."""
    return torch.stack((a, b), dim=2).flatten(1, 2)


class TwoBranchNet(nn.Module):
    def __init__(self, backbone: nn.Module, *, branches: int = 2, log_scales: int = 3,
                 fusion_groups: int = 2, fusion_init: str = "rgb_identity",
                 temporal: str = "bilstm", lstm_hidden: int = 128, lstm_merge: str = "cat",
                 head: str = "hypersphere", seed: int = 0):
        """``backbone``: a timm ``densenet121`` (``num_classes=0``); its modules are taken over."""
        super().__init__()
        if branches not in (1, 2):
            raise ValueError(f"branches must be 1 or 2, got {branches!r}")
        if temporal not in ("bilstm", "none"):
            raise ValueError(f"temporal must be bilstm or none, got {temporal!r}")
        if lstm_merge not in ("cat", "sum"):
            raise ValueError(f"lstm_merge must be cat or sum, got {lstm_merge!r}")
        if head not in ("hypersphere", "bce"):
            raise ValueError(f"head must be hypersphere or bce, got {head!r}")
        feats = backbone.features
        self.branches, self.temporal, self.lstm_merge, self.head_kind = branches, temporal, lstm_merge, head
        self.rgb = nn.Sequential(*[getattr(feats, n) for n in STEM])
        stem_out = self.rgb[-1].conv.out_channels if hasattr(self.rgb[-1], "conv") else 128
        if branches == 2:
            conv0 = self.rgb[0]
            log_layers = [copy.deepcopy(conv0), DeepLoG(conv0.out_channels, log_scales)]
            log_layers += [copy.deepcopy(m) for m in list(self.rgb)[1:]]
            self.log = nn.Sequential(*log_layers)
            if (2 * stem_out) % fusion_groups or stem_out % fusion_groups:
                raise ValueError(f"fusion_groups {fusion_groups} must divide {stem_out}")
            self.fuse = nn.Conv2d(2 * stem_out, stem_out, 1, groups=int(fusion_groups), bias=False)
            self._init_fuse(fusion_init, seed)
        self.trunk = nn.Sequential(*[getattr(feats, n) for n in TRUNK])
        self.trunk_names = TRUNK
        feat_dim = int(backbone.num_features)
        if temporal == "bilstm":
            gen = torch.random.fork_rng(devices=[])
            with gen:
                torch.manual_seed(int(seed) + 1)
                self.lstm = nn.LSTM(feat_dim, int(lstm_hidden), batch_first=True, bidirectional=True)
            self.out_dim = 2 * int(lstm_hidden) if lstm_merge == "cat" else int(lstm_hidden)
        else:
            self.out_dim = feat_dim
        if head == "bce":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed) + 2)
                self.classifier = nn.Linear(self.out_dim, 1)
        self.register_buffer("center", torch.zeros(self.out_dim))
        self.register_buffer("center_set", torch.zeros((), dtype=torch.bool))

    def _init_fuse(self, how: str, seed: int) -> None:
        w = self.fuse.weight                     # (out, in / groups, 1, 1)
        out_c, in_per = w.shape[0], w.shape[1]
        out_per = out_c // self.fuse.groups
        with torch.no_grad():
            if how == "random":
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed) + 3)
                    self.fuse.reset_parameters()
                return
            if how not in ("rgb_identity", "average"):
                raise ValueError(f"fusion_init must be rgb_identity, average or random, got {how!r}")
            new = torch.zeros_like(w)
            for o in range(out_c):
                g = o // out_per
                local = 2 * o - g * in_per       # RGB plane o sits at interleaved index 2 o
                if not 0 <= local < in_per:
                    raise ValueError("fusion_init: channel layout does not allow an identity start")
                if how == "rgb_identity":
                    new[o, local] = 1.0
                else:
                    new[o, local] = 0.5
                    new[o, local + 1] = 0.5
            w.copy_(new)

    # ------------------------------------------------------------------ forward
    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1024) GAP descriptors."""
        r = self.rgb(x)
        if self.branches == 2:
            r = self.fuse(interleave(r, self.log(x)))
        return self.trunk(r).mean(dim=(2, 3))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, 3, H, W) -> Phi: (B, out_dim) with the LSTM, (B, F, 1024) without."""
        if x.ndim != 5:
            raise ValueError(f"expected (B, F, 3, H, W) sequences, got {tuple(x.shape)}")
        b, f = x.shape[:2]
        feats = self.frame_features(x.flatten(0, 1)).view(b, f, -1)
        if self.temporal == "none":
            return feats
        _, (h_n, _) = self.lstm(feats)
        return torch.cat((h_n[0], h_n[1]), dim=1) if self.lstm_merge == "cat" else h_n[0] + h_n[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi = self.embed(x)
        if self.head_kind == "bce":
            out = self.classifier(phi)[..., 0]
        else:
            out = torch.linalg.vector_norm(phi - self.center.to(phi.dtype), dim=-1)
        return out.mean(dim=1) if out.ndim == 2 else out

    # ------------------------------------------------------------------ centre, LR groups
    @torch.no_grad()
    def set_center(self, loader, device: str | torch.device = "cpu") -> int:
        """Fix ``center`` to the mean Phi of every sequence of ``loader`` (eval mode, no grad):
        two_branch.txt §3.3, computed with the initialised network before training. Returns the
        number of sequences (frames without the LSTM) averaged."""
        was = self.training
        self.eval()
        total, n = None, 0
        try:
            for batch in loader:
                phi = self.embed(batch[0].to(device)).double()
                phi = phi.reshape(-1, phi.shape[-1])
                s = phi.sum(dim=0)
                total = s if total is None else total + s
                n += phi.shape[0]
        finally:
            self.train(was)
        if n == 0:
            raise ValueError("no real training sequence to compute the hypersphere centre from")
        self.center.copy_((total / n).to(self.center.dtype))
        self.center_set.fill_(True)
        return n

    def param_groups(self, lr: float, decay: str = "per_block", base: float = 2.0) -> list[dict]:
        """Optimizer groups. ``per_block``: ``lr / base^L`` (spec B.6) with L counted from the
        output; the LoG branch and the fusion layer keep ``lr`` (two_branch.txt §3.1); ``none``:
        one group."""
        params = [p for p in self.parameters() if p.requires_grad]
        if decay == "none":
            return [{"params": params, "lr": float(lr), "name": "all"}]
        if decay != "per_block":
            raise ValueError(f"lr_decay must be per_block or none, got {decay!r}")
        shift = 0 if self.temporal == "bilstm" else -1
        levels: dict[int, list] = {}
        names: dict[int, list] = {}

        def add(level: int, name: str, module: nn.Module) -> None:
            ps = [p for p in module.parameters() if p.requires_grad]
            if ps:
                levels.setdefault(level, []).extend(ps)
                names.setdefault(level, []).append(name)

        for name, mod in zip(self.trunk_names, self.trunk):
            add(TRUNK_LEVELS[name] + shift, name, mod)
        add(STEM_LEVEL + shift, "rgb", self.rgb)
        groups = [{"params": levels[L], "lr": float(lr) / float(base) ** L,
                   "name": "+".join(names[L]), "level": L} for L in sorted(levels, reverse=True)]
        top = []
        if self.branches == 2:
            top += [("log", self.log), ("fuse", self.fuse)]
        for name in ("lstm", "classifier"):
            if hasattr(self, name):
                top.append((name, getattr(self, name)))
        for name, mod in top:
            ps = [p for p in mod.parameters() if p.requires_grad]
            if ps:
                groups.append({"params": ps, "lr": float(lr), "name": name, "level": 0})
        return groups


def build(params: dict[str, Any], pretrained: Any, seed: int) -> tuple[TwoBranchNet, dict]:
    """The network of a ``two_branch`` params section and the backbone's init record."""
    from .weights import create_model  # noqa: PLC0415

    backbone, info = create_model("densenet121", pretrained, num_classes=0, hub=params.get("hub", "auto"),
                                  seed=seed, proj_drop_rate=float(params.get("drop_rate", 0.2)))
    net = TwoBranchNet(backbone, branches=int(params.get("branches", 2)),
                       log_scales=int(params.get("log_scales", 3)),
                       fusion_groups=int(params.get("fusion_groups", 2)),
                       fusion_init=str(params.get("fusion_init", "rgb_identity")),
                       temporal=str(params.get("temporal", "bilstm")),
                       lstm_hidden=int(params.get("lstm_hidden", 128)),
                       lstm_merge=str(params.get("lstm_merge", "cat")),
                       head=str(params.get("loss", "hypersphere")), seed=seed)
    return net, info
