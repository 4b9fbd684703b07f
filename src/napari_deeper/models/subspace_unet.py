"""A small 2-D U-net over a cube's spectral component images (the self-supervised denoiser's network).

The cube is projected outside the network on its leading principal components (any band count,
see :mod:`napari_deeper.denoise.selfsupervised`); the network sees up to ``channels`` component
images, each scaled to unit total variance, next to one constant channel per component holding
its noise level on that scale (zero for an unused channel) and one holding its fine detail in
noise units (see :func:`napari_deeper.denoise.selfsupervised.network_input`). It predicts a *correction* to the
component images (global residual) in units of each one's noise (the correction is multiplied by
the noise-level channel), so that a step of training moves a faint component and a bright one by
as much noise; the last convolution starts at zero, so an untrained network returns its input:
plain PCA at the chosen rank.

Any image size works: the input is mirror-padded to a multiple of ``2 ** levels`` inside and the
output cropped back.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _block(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(n_out, n_out, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
    )


class SubspaceUNet(nn.Module):
    """U-net from ``(N, 3 * channels, H, W)`` (values, noise levels, details) to ``(N, channels, H, W)``.

    ``width`` features at full resolution, doubled at each of ``levels`` downsamplings (average
    pooling; bilinear upsampling with skip connections on the way up).
    """

    def __init__(self, channels: int = 32, width: int = 24, levels: int = 2):
        super().__init__()
        self.channels = int(channels)
        self.levels = int(levels)
        widths = [int(width) * 2**i for i in range(self.levels + 1)]
        self.down = nn.ModuleList([_block(3 * self.channels, widths[0])])
        self.down.extend(_block(widths[i], widths[i + 1]) for i in range(self.levels))
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(self.levels)))
        self.tail = nn.Conv2d(widths[0], self.channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, levels = x[:, : self.channels], x[:, self.channels:2 * self.channels]
        height, width = x.shape[-2:]
        multiple = 2**self.levels
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            mode = "reflect" if min(height, width) > max(pad_h, pad_w) else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i:
                h = F.avg_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        # the correction is predicted in noise units: scaled by each component's noise level
        return values + self.tail(h)[..., :height, :width] * levels
