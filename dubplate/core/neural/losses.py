"""Image losses that need no downloaded weights: masked L1, (multi-scale) SSIM and LSGAN.

SSIM follows Wang et al. (2004): an 11-tap Gaussian window of sigma 1.5, C1 = (0.01)^2 and
C2 = (0.03)^2 for values in 0-1. Multi-scale SSIM (Wang et al. 2003) takes contrast-structure
at every scale and luminance at the coarsest, with the published scale weights renormalised to
the scales a crop has room for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

WINDOW = 11
SIGMA = 1.5
C1, C2 = 0.01**2, 0.03**2
MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The SSIM window over each channel, as two 1-D passes: a fifth of the 2-D window's
    multiplies, in a loss the renderer evaluates at every scale of every step."""
    taps = torch.arange(WINDOW, device=x.device, dtype=x.dtype) - WINDOW // 2
    g = torch.exp(-(taps**2) / (2 * SIGMA**2))
    g = g / g.sum()
    channels = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, WINDOW).expand(channels, 1, 1, WINDOW), groups=channels)
    return F.conv2d(x, g.view(1, 1, WINDOW, 1).expand(channels, 1, WINDOW, 1), groups=channels)


def _ssim_parts(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel luminance and contrast-structure terms of (B, C, H, W) images in 0-1."""
    moments = _blur(torch.cat([a, b, a * a, b * b, a * b], dim=1))
    mu_a, mu_b, mean_aa, mean_bb, mean_ab = moments.chunk(5, dim=1)
    var_a = mean_aa - mu_a**2
    var_b = mean_bb - mu_b**2
    cov = mean_ab - mu_a * mu_b
    luminance = (2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1)
    contrast_structure = (2 * cov + C2) / (var_a + var_b + C2)
    return luminance, contrast_structure


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) mean SSIM of (B, C, H, W) images in 0-1."""
    luminance, contrast_structure = _ssim_parts(a, b)
    return (luminance * contrast_structure).mean(dim=(1, 2, 3))


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) multi-scale SSIM; scales stop while the image still exceeds twice the window."""
    scales = 1
    while scales < len(MS_WEIGHTS) and min(a.shape[-2:]) // 2**scales >= 2 * WINDOW:
        scales += 1
    weights = torch.tensor(MS_WEIGHTS[:scales], device=a.device, dtype=a.dtype)
    weights = weights / weights.sum()
    result = torch.ones(a.shape[0], device=a.device, dtype=a.dtype)
    for scale in range(scales):
        luminance, contrast_structure = _ssim_parts(a, b)
        if scale == scales - 1:
            contrast_structure = luminance * contrast_structure
        # Clamped: anti-correlated structure would leave the fractional power undefined.
        term = contrast_structure.mean(dim=(1, 2, 3)).clamp(min=1e-6)
        result = result * term ** weights[scale]
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return result


def masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| weighted per pixel by (B, 1, H, W) `weight`."""
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1]).clamp(min=1)


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al. 2017): steadier than the log loss on small data."""
    return ((scores - (1.0 if real else 0.0)) ** 2).mean()
