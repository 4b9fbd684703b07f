"""The noise-learning attention U-net (He et al. 2024): predicts a spectrum's noise in the DCT domain.

A 1D U-net whose every block is refined by CBAM (channel attention, then spatial attention). The
input is the orthonormal DCT-II of the (normalised) spectrum; the output is the DCT of the noise;
the denoised spectrum is ``input - IDCT(output)``. The DCT is a matrix product with an orthonormal
DCT matrix built once per length and device and cached, so it runs on the GPU like the rest.
Any band count works: the coefficients are zero-padded (at the high-frequency end) to a multiple
of ``2 ** levels`` and cropped back.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_DCT_CACHE: dict[tuple, torch.Tensor] = {}


def dct_matrix(length: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``C`` (``length x length``): ``dct(x) = x @ C.T``."""
    key = (int(length), str(device), dtype)
    matrix = _DCT_CACHE.get(key)
    if matrix is None:
        # built outside inference mode, so a matrix cached during inference can serve training
        with torch.inference_mode(False):
            n = torch.arange(length, dtype=torch.float64)
            k = n[:, None]
            matrix = torch.cos(math.pi * (n[None, :] + 0.5) * k / length) * math.sqrt(2.0 / length)
            matrix[0] /= math.sqrt(2.0)
            matrix = matrix.to(device=device, dtype=dtype)
        if len(_DCT_CACHE) > 32:
            _DCT_CACHE.clear()
        _DCT_CACHE[key] = matrix
    return matrix


def dct(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal DCT-II along the last axis."""
    return x @ dct_matrix(x.shape[-1], x.device, x.dtype).T


def idct(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`dct` (the DCT-III, orthonormal)."""
    return y @ dct_matrix(y.shape[-1], y.device, y.dtype)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.ReLU(), nn.Conv1d(hidden, channels, 1))

    def forward(self, x):
        avg = self.mlp(x.mean(dim=-1, keepdim=True))
        peak = self.mlp(x.amax(dim=-1, keepdim=True))
        return x * torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    def __init__(self, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class AttentionBlock(nn.Module):
    """Two conv + BatchNorm-free ReLU layers, then CBAM (channel, then spatial attention)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.LeakyReLU(0.1),
            nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2), nn.LeakyReLU(0.1),
        )
        self.channel = ChannelAttention(c_out)
        self.spatial = SpatialAttention()

    def forward(self, x):
        return self.spatial(self.channel(self.body(x)))


class AUNet1d(nn.Module):
    """Attention U-net in the DCT domain. ``forward`` maps noisy spectra to denoised spectra.

    Takes ``(N, L)`` or ``(N, 1, L)``; ``predict_noise`` returns the noise estimate instead.
    """

    def __init__(self, width: int = 16, levels: int = 3, kernel: int = 3, max_width: int = 64):
        super().__init__()
        self.levels = levels
        widths = [min(max_width, width * 2**i) for i in range(levels + 1)]
        self.encoders = nn.ModuleList(
            [AttentionBlock(1 if i == 0 else widths[i - 1], widths[i], kernel) for i in range(levels)]
        )
        self.bottom = AttentionBlock(widths[levels - 1], widths[levels], kernel)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(levels)):
            self.ups.append(nn.ConvTranspose1d(widths[i + 1], widths[i], 2, stride=2))
            self.decoders.append(AttentionBlock(2 * widths[i], widths[i], kernel))
        self.head = nn.Conv1d(widths[0], 1, 1)

    @property
    def multiple(self) -> int:
        return 2**self.levels

    def predict_noise(self, x):
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(1)
        length = x.shape[-1]
        h = dct(x)
        pad = (-length) % self.multiple
        if pad:
            h = F.pad(h, (0, pad))
        skips = []
        for encoder in self.encoders:
            h = encoder(h)
            skips.append(h)
            h = F.max_pool1d(h, 2)
        h = self.bottom(h)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = decoder(torch.cat([up(h), skip], dim=1))
        noise = idct(self.head(h)[..., :length])
        return noise.squeeze(1) if squeeze else noise

    def forward(self, x):
        return x - self.predict_noise(x)
