"""A temporal convolution network from per-frame audio features to lower-face coefficients."""

from __future__ import annotations

import torch
from torch import nn

from dubplate.core.audio.features import VISEME_COLUMNS
from dubplate.core.audio.phones import VISEMES

# Dilations 1, 2, 4 after a 3-tap input layer: each output sees +-8 frames (+-0.32 s at 25 fps).
DILATIONS = (1, 2, 4)
FRAMES_EACH_SIDE = 1 + sum(DILATIONS)  # the input layer adds one
# A few seconds to minutes of one actor is little data: narrow, heavily dropped-out members,
# averaged, held out better than one wider network on the shared clips (bench/a2e_bench.py).
HIDDEN = 32
DROPOUT = 0.5
MEMBERS = 4


class Member(nn.Module):
    def __init__(self, features: int, coefficients: int, hidden: int, dropout: float):
        super().__init__()
        self.input = nn.Sequential(
            nn.Dropout(dropout), nn.Conv1d(features, hidden, 3, padding=1), nn.GELU()
        )
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(hidden, hidden, 3, padding=d, dilation=d, padding_mode="replicate"),
                nn.GELU(),
                nn.Dropout(dropout),
            )
            for d in DILATIONS
        )
        self.output = nn.Conv1d(hidden, coefficients, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.input(features.transpose(1, 2))
        for block in self.blocks:
            x = x + block(x)
        return self.output(x).transpose(1, 2)


class A2E(nn.Module):
    """(B, F, features) -> (B, F, coefficients): a linear viseme prior, plus what the members
    (averaged: each alone learns some noise) add to it, learnt normalised. The buffers carry
    the prior, the normalisation, the calibrated gain and the actor's rest (closed-mouth)
    coefficients with the weights."""

    def __init__(
        self,
        features: int,
        coefficients: int,
        hidden: int = HIDDEN,
        dropout: float = DROPOUT,
        members: int = MEMBERS,
    ):
        super().__init__()
        self.members = nn.ModuleList(
            Member(features, coefficients, hidden, dropout) for _ in range(members)
        )
        self.register_buffer("target_mean", torch.zeros(coefficients))
        self.register_buffer("target_std", torch.ones(coefficients))
        self.register_buffer("rest", torch.zeros(coefficients))
        # Each viseme's coefficients: the prior is their mix by the frame's viseme shares.
        self.register_buffer("viseme_map", torch.zeros(len(VISEMES), coefficients))
        # How far to trust the network's departure from the viseme prior (held-out calibrated).
        self.register_buffer("gain", torch.ones(()))

    def member_outputs(self, features: torch.Tensor) -> torch.Tensor:
        """(M, B, F, coefficients), normalised."""
        return torch.stack([member(features) for member in self.members])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The normalised departure from the prior."""
        return self.member_outputs(features).mean(dim=0)

    def prior(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., VISEME_COLUMNS] @ self.viseme_map

    def coefficients(self, features: torch.Tensor) -> torch.Tensor:
        return self.prior(features) + self.gain * self(features) * self.target_std
