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
# Two a network: a bag of networks (train.py `train_bag`) averages more, and costs as many.
HIDDEN = 32
DROPOUT = 0.5
MEMBERS = 2


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
    the prior, the normalisation, each member's calibrated gain and the actor's rest
    (closed-mouth) coefficients with the weights. A bag of networks (`bag`) is one A2E whose
    members are all of theirs, each with its own network's gain."""

    def __init__(
        self,
        features: int,
        coefficients: int,
        hidden: int = HIDDEN,
        dropout: float = DROPOUT,
        members: int = MEMBERS,
    ):
        super().__init__()
        self.layout = {
            "features": features,
            "coefficients": coefficients,
            "hidden": hidden,
            "dropout": dropout,
        }
        self.members = nn.ModuleList(
            Member(features, coefficients, hidden, dropout) for _ in range(members)
        )
        self.register_buffer("target_mean", torch.zeros(coefficients))
        self.register_buffer("target_std", torch.ones(coefficients))
        self.register_buffer("rest", torch.zeros(coefficients))
        # Each viseme's coefficients: the prior is their mix by the frame's viseme shares.
        self.register_buffer("viseme_map", torch.zeros(len(VISEMES), coefficients))
        # How far to trust each member's departure from the viseme prior (held-out calibrated).
        self.register_buffer("gain", torch.ones(members))

    def member_outputs(self, features: torch.Tensor) -> torch.Tensor:
        """(M, B, F, coefficients), normalised."""
        return torch.stack([member(features) for member in self.members])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The normalised departure from the prior."""
        return self.member_outputs(features).mean(dim=0)

    def prior(self, features: torch.Tensor) -> torch.Tensor:
        return features[..., VISEME_COLUMNS] @ self.viseme_map

    def coefficients(self, features: torch.Tensor) -> torch.Tensor:
        gained = self.gain[:, None, None, None] * self.member_outputs(features)
        return self.prior(features) + gained.mean(dim=0) * self.target_std


def bag(networks: list[A2E]) -> A2E:
    """One A2E averaging `networks` trained on the same footage (their prior and normalisation
    are the same): each keeps its members and its gain."""
    first = networks[0]
    members = sum(len(network.members) for network in networks)
    bagged = A2E(**first.layout, members=members).to(first.rest.device)
    for name in ("target_mean", "target_std", "rest", "viseme_map"):
        getattr(bagged, name).copy_(getattr(first, name))
    sources = [member for network in networks for member in network.members]
    for member, source in zip(bagged.members, sources, strict=True):
        member.load_state_dict(source.state_dict())
    bagged.gain.copy_(torch.cat([network.gain for network in networks]))
    return bagged.eval()
