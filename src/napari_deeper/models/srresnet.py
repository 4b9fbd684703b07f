"""SRResNet on spectral component images (Ledig et al. 2017; Haque et al. 2024 for Raman).

16 residual blocks at low resolution, a long skip connection, sub-pixel (PixelShuffle) upsampling
and a 9x9 output convolution, as in SRResNet. Two changes, both for this use: batch normalisation
is left out (as in EDSR; the statistics of normalised component images differ from cube to cube
and small batches make them noisy), and, like :mod:`napari_deeper.models.hyrisr`, the network
predicts a correction to the bicubic upscale of the component images, with one upsampler per
scale (2, 3, 4) on a shared body.
"""

from __future__ import annotations

import torch
from torch import nn

from .hyrisr import MultiScaleHeads, conv3


class ResidualBlock(nn.Module):
    """conv-PReLU-conv plus the input."""

    def __init__(self, features: int):
        super().__init__()
        self.body = nn.Sequential(conv3(features, features), nn.PReLU(features),
                                  conv3(features, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """Correction to the bicubic upscale of ``n_components`` component images, for each scale.

    ``forward(x, scale)``: ``x`` is ``(N, n_components, h, w)``; returns
    ``(N, n_components, h*scale, w*scale)``.
    """

    def __init__(self, n_components: int = 12, features: int = 32, blocks: int = 16,
                 scales=(2, 3, 4)):
        super().__init__()
        self.n_components = int(n_components)
        self.scales = tuple(int(s) for s in scales)
        self.head = nn.Sequential(nn.Conv2d(self.n_components, features, 9, padding=4),
                                  nn.PReLU(features))
        self.body = nn.Sequential(*[ResidualBlock(features) for _ in range(blocks)],
                                  conv3(features, features))
        self.heads = MultiScaleHeads(features, self.n_components, self.scales, tail_kernel=9)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        features = self.head(x)
        return self.heads(features + self.body(features), scale)
