"""HyRISR, compact: residual groups of channel-attention blocks on spectral component images.

DeepeR's HyRISR is an RCAN adapted to 500 bands (about 150 M parameters, body at high
resolution). This one keeps the ideas and drops the weight: the bands are compressed outside the
network into ``n_components`` principal-component images (any band count, see
``napari_deeper.superres.deep``), the body of residual groups of channel-attention blocks runs at
**low** resolution, and a sub-pixel (PixelShuffle) upsampler per scale brings the features to high
resolution at the very end. The network predicts a *correction* to the bicubic upscale of the
component images (global residual); its last convolution starts at zero, so an untrained network
is exactly bicubic.

One network serves scales 2, 3 and 4: the body is shared and each scale has its own upsampler and
output convolution (as in MDSR), so every training batch, whatever its scale, trains the body.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3(n_in: int, n_out: int) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1)


class ScaleHead(nn.Module):
    """Sub-pixel upsampling by ``scale`` (x4 as two x2 steps), then an output convolution."""

    def __init__(self, features: int, n_out: int, scale: int, tail_kernel: int = 3):
        super().__init__()
        steps = [2, 2] if scale == 4 else [scale]
        layers: list[nn.Module] = []
        for step in steps:
            layers += [nn.Conv2d(features, features * step * step, 3, padding=1),
                       nn.PixelShuffle(step), nn.PReLU(features)]
        self.upsample = nn.Sequential(*layers)
        self.tail = nn.Conv2d(features, n_out, tail_kernel, padding=tail_kernel // 2)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsample(x))


class MultiScaleHeads(nn.Module):
    """One :class:`ScaleHead` per supported scale, chosen at call time."""

    def __init__(self, features: int, n_out: int, scales, tail_kernel: int = 3):
        super().__init__()
        self.scales = tuple(int(s) for s in scales)
        self.heads = nn.ModuleDict(
            {f"x{s}": ScaleHead(features, n_out, s, tail_kernel) for s in self.scales}
        )

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        key = f"x{int(scale)}"
        if key not in self.heads:
            raise ValueError(f"this network was built for scales {self.scales}, not {scale}")
        return self.heads[key](x)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: reweight channels by a gate computed from their global means."""

    def __init__(self, features: int, reduction: int):
        super().__init__()
        hidden = max(1, features // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(features, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, features, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel-attention block: conv-ReLU-conv-attention plus the input."""

    def __init__(self, features: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            conv3(features, features), nn.ReLU(inplace=True), conv3(features, features),
            ChannelAttention(features, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """A run of RCABs, a convolution, and a skip connection around them."""

    def __init__(self, features: int, blocks: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(
            *[RCAB(features, reduction) for _ in range(blocks)], conv3(features, features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HyRISR(nn.Module):
    """Correction to the bicubic upscale of ``n_components`` component images, for each scale.

    ``forward(x, scale)``: ``x`` is ``(N, n_components, h, w)`` normalised low-resolution
    component images; returns ``(N, n_components, h*scale, w*scale)``.
    """

    def __init__(self, n_components: int = 12, features: int = 32, groups: int = 3,
                 blocks: int = 4, reduction: int = 8, scales=(2, 3, 4)):
        super().__init__()
        self.n_components = int(n_components)
        self.scales = tuple(int(s) for s in scales)
        self.head = conv3(self.n_components, features)
        self.body = nn.Sequential(
            *[ResidualGroup(features, blocks, reduction) for _ in range(groups)],
            conv3(features, features),
        )
        self.heads = MultiScaleHeads(features, self.n_components, self.scales)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        features = self.head(x)
        return self.heads(features + self.body(features), scale)
