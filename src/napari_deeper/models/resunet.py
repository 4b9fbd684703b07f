"""DeepeR's 1D residual U-net for per-spectrum denoising, made fully convolutional.

The published network (Horgan et al. 2021) ends in three ``Linear(500, 500)`` layers, which ties
it to 500 bands. Here the head is convolutional, so any band count works: the spectrum is padded
by reflection to a multiple of ``2 ** levels`` and the output cropped back. The network predicts a
correction that is added to its input (a global residual), which trains faster at small widths.
Spectra are expected already normalised (the inference code divides each by its maximum).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvAct(nn.Module):
    """Conv1d (same length) followed by PReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=dilation * (kernel // 2), dilation=dilation)
        self.act = nn.PReLU(c_out)

    def forward(self, x):
        return self.act(self.conv(x))


class ResidualBlock(nn.Module):
    """``n_convs`` conv + PReLU layers whose output is added to the block's input."""

    def __init__(self, channels: int, n_convs: int = 3, kernel: int = 3):
        super().__init__()
        self.body = nn.Sequential(*[ConvAct(channels, channels, kernel) for _ in range(n_convs)])

    def forward(self, x):
        return x + self.body(x)


class GlobalContext(nn.Module):
    """Feature-wise scale and shift computed from the whole spectrum (mean and max over length).

    Stands in for the global view DeepeR's dense layers had: which species are present and how
    noisy the spectrum is are properties of the whole spectrum, not of a neighbourhood.
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or channels
        self.mlp = nn.Sequential(nn.Linear(2 * channels, hidden), nn.PReLU(hidden), nn.Linear(hidden, 2 * channels))

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)
        scale, shift = self.mlp(pooled).unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + scale) + shift


class AttentionBlock(nn.Module):
    """A transformer encoder block over the positions of a feature map (pre-norm, GELU MLP).

    At the bottleneck the spectrum is ``2**levels`` times shorter, so attending from every
    position to every other is cheap; it lets the network recognise band patterns that span the
    whole spectrum, the way DeepeR's dense head could, at any length.
    """

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, x):
        h = x.transpose(1, 2)
        n = self.norm1(h)
        h = h + self.attention(n, n, n, need_weights=False)[0]
        h = h + self.mlp(self.norm2(h))
        return h.transpose(1, 2)


class ResUNet1d(nn.Module):
    """1D residual U-net: ``levels`` poolings, widths ``width * 2**level``, PReLU, kernel 3.

    With ``global_context`` the bottleneck features are modulated by a :class:`GlobalContext`
    block, and ``attention_blocks`` transformer blocks attend across the whole (shortened)
    spectrum: both are length-agnostic stand-ins for DeepeR's dense head.

    ``forward`` takes ``(N, L)`` or ``(N, 1, L)`` spectra of any length ``L >= 2 ** levels`` and
    returns the denoised spectra in the same shape.
    """

    def __init__(self, width: int = 32, levels: int = 2, n_convs: int = 2, kernel: int = 3,
                 max_width: int = 128, global_context: bool = False, attention_blocks: int = 0):
        super().__init__()
        self.levels = levels
        widths = [min(max_width, width * 2**i) for i in range(levels + 1)]
        self.stem = ConvAct(1, widths[0], kernel)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(levels):
            self.encoders.append(ResidualBlock(widths[i], n_convs, kernel))
            self.downs.append(ConvAct(widths[i], widths[i + 1], kernel))
        self.bottom = ResidualBlock(widths[-1], n_convs, kernel)
        self.context = nn.Sequential(
            *([GlobalContext(widths[-1])] if global_context else []),
            *[AttentionBlock(widths[-1]) for _ in range(attention_blocks)],
        )
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(levels)):
            self.ups.append(ConvAct(widths[i + 1] + widths[i], widths[i], kernel))
            self.decoders.append(ResidualBlock(widths[i], n_convs, kernel))
        # Fully convolutional head: a dilated conv gives the output a wide receptive field
        # (the role DeepeR's dense layers played) without fixing the length.
        self.head = nn.Sequential(
            ConvAct(widths[0], widths[0], kernel, dilation=4),
            nn.Conv1d(widths[0], 1, kernel, padding=kernel // 2),
        )

    @property
    def multiple(self) -> int:
        return 2**self.levels

    def forward(self, x):
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(1)
        length = x.shape[-1]
        pad = (-length) % self.multiple
        if pad:
            x = F.pad(x, (0, pad), mode="reflect" if pad < length else "replicate")
        h = self.stem(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            h = encoder(h)
            skips.append(h)
            h = down(F.max_pool1d(h, 2))
        h = self.context(self.bottom(h))
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = decoder(up(torch.cat([h, skip], dim=1)))
        out = (x + self.head(h))[..., :length]
        return out.squeeze(1) if squeeze else out
