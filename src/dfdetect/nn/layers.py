"""Layers of the two-branch recurrent network (two_branch.txt, Masi et al. ECCV 2020).

:class:`DeepLoG` is the multi-scale Deep Laplacian of Gaussian of Eq. 1,
``x' = w_1x1( x - up(down(w_N2D x)) )`` over ``S`` scales, ``K -> S K -> K'`` planes. The paper
gives neither the kernel nor the down/up operators; this reading (spec B.3):

- a fixed (buffer, not learnt) separable 5 x 5 binomial kernel ``[1, 4, 6, 4, 1] / 16`` (Burt &
  Adelson's generating kernel, the paper's reference [10]), depthwise, reflect padding
  (replicate where a side is shorter than 3 px);
- a Gaussian pyramid ``g_0 = x``, ``g_s = avg_pool2d(blur(g_{s-1}), 2, ceil_mode=True)``; 2 x 2
  averaging rather than decimation, which with ``align_corners=False`` upsampling would shift
  the map by half a pixel;
- bands ``b_s = x - bilinear_up(g_s)`` for ``s = 1..S``, concatenated (``S K`` planes) and mixed
  by a 1 x 1 convolution initialised to the mean of the ``S`` bands of the same channel (when
  ``K' = K``), so the LoG branch stays channel-aligned with the RGB branch.

The per-channel value of the top-left pixel is subtracted before filtering; every operator
preserves constants, so this changes nothing mathematically but makes a constant map give
exactly 0 in floating point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BINOMIAL5 = (1.0, 4.0, 6.0, 4.0, 1.0)


class DeepLoG(nn.Module):
    """Multi-scale Deep LoG (two_branch.txt Eq. 1) over ``channels`` feature maps."""

    def __init__(self, channels: int, scales: int = 3, out_channels: int | None = None):
        super().__init__()
        if int(channels) < 1 or int(scales) < 1:
            raise ValueError(f"DeepLoG: channels and scales must be >= 1, got {channels}, {scales}")
        self.channels, self.scales = int(channels), int(scales)
        self.out_channels = int(out_channels or channels)
        k = torch.tensor(BINOMIAL5, dtype=torch.float32)
        k = k / k.sum()
        # depthwise separable kernel: (K, 1, 5, 1) and (K, 1, 1, 5); buffers, never trained
        self.register_buffer("kernel_v", k.view(1, 1, 5, 1).repeat(self.channels, 1, 1, 1))
        self.register_buffer("kernel_h", k.view(1, 1, 1, 5).repeat(self.channels, 1, 1, 1))
        self.mix = nn.Conv2d(self.scales * self.channels, self.out_channels, 1, bias=False)
        self.reset_mix()

    def reset_mix(self) -> None:
        """Mean of the ``S`` bands of channel ``o`` for output ``o`` (``K' = K``); else default."""
        if self.out_channels != self.channels:
            return
        with torch.no_grad():
            w = torch.zeros_like(self.mix.weight)
            for s in range(self.scales):
                idx = torch.arange(self.channels)
                w[idx, s * self.channels + idx, 0, 0] = 1.0 / self.scales
            self.mix.weight.copy_(w)

    def blur(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mode_v = "reflect" if h >= 3 else "replicate"
        mode_h = "reflect" if w >= 3 else "replicate"
        kv = self.kernel_v.to(dtype=x.dtype)
        kh = self.kernel_h.to(dtype=x.dtype)
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode=mode_v), kv, groups=self.channels)
        return F.conv2d(F.pad(x, (2, 2, 0, 0), mode=mode_h), kh, groups=self.channels)

    def bands(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The ``S`` residuals ``x - up(g_s)`` (each shaped like ``x``)."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"DeepLoG: expected (N, {self.channels}, H, W), got {tuple(x.shape)}")
        x = x - x[..., :1, :1]
        size = x.shape[-2:]
        g, out = x, []
        for _ in range(self.scales):
            g = F.avg_pool2d(self.blur(g), 2, ceil_mode=True)
            up = F.interpolate(g, size=size, mode="bilinear", align_corners=False)
            out.append(x - up)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat(self.bands(x), dim=1))
