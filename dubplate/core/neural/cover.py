"""A per-actor network that tells a covered mouth from the actor's own, learnt from their footage.

The colour test of `occlusion.py` finds a mouth covered where the lower face is unlike the
actor's model. Where the model misses the actor's lips as a rule (lipstick, teeth between lips
fitted shut), a finger or a microphone head over the lips is no more unlike than the lips often
are, and that test leaves the lips alone. This network learns the actor's own mouth instead:
it is shown each uncovered footage crop beside the same crop with a random occluder drawn over
it (an ellipse or a strip, filled from elsewhere in the footage, with a flat colour or with the
skin's), and learns what tells the two apart. Shown the pair, it cannot learn the frame, only
the cover. A frame is covered, by this test, where its odds are well over even (COVERED_LOGIT).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from dubplate.core.errors import DubplateError
from dubplate.core.progress import Progress

INPUT_PX = 64  # the network's view of the mouth
# The view's side, in mouth widths: the lips, the chin and the cheeks beside them.
VIEW_MOUTH_WIDTHS = 2.2
# A cover over at least this share of the mouth (within the outer lip contour) covers it; one
# over at most CLEAR_SHARE of it leaves it clear; between, the example is not shown (a finger
# tip at the corner is neither).
COVERED_SHARE = 0.2
CLEAR_SHARE = 0.05
WIDTH = 24  # channels of the first layer; each stride doubles them
GROUPS = 4  # GroupNorm: a frame's score must not depend on the frames batched with it
# The side of the view's surroundings covers are drawn on in training, in view sides: room for
# the view's moves and scales.
SURROUNDINGS = 1.5
REPORT_TRIES = 20  # random covers drawn per crop, at most, for the report's fresh ones
MAX_TILT = 15.0  # degrees the training views turn either way: a head's roll in dialogue
# The logit over which a mouth is covered (odds of about 7 to 1). A mouth opened wider than any in
# the footage scored about even odds, the same frames under a cover 4 or more.
COVERED_LOGIT = 2.0


@dataclass(frozen=True)
class CoverSettings:
    steps: int = 1500
    pairs: int = 16  # each a crop clean and covered
    learning_rate: float = 2e-3
    weight_decay: float = 1e-3
    seed: int = 0


class CoverNet(nn.Module):
    """(B, 3, INPUT_PX, INPUT_PX) views of the mouth, display values - 0.5 -> (B,) logits that it
    is covered. `view` holds where the mouth lies in the actor's crops, as shares of their side:
    the view's left, top and side."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for scale in (1, 2, 4):
            out = width * scale
            layers += [nn.Conv2d(channels, out, 3, 2, 1), nn.GroupNorm(GROUPS, out), nn.GELU()]
            if scale < 4:
                layers += [nn.Conv2d(out, out, 3, 1, 1), nn.GroupNorm(GROUPS, out), nn.GELU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(channels, 1))
        self.register_buffer("view", torch.tensor([0.25, 0.25, 0.5]))

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(views)).squeeze(-1)

    @torch.no_grad()
    def covered(self, crops: np.ndarray) -> np.ndarray:
        """(F,) bool: which of the (F, N, N, 3) float 0-1 display crops have a covered mouth."""
        self.eval()
        view = self.view.cpu().numpy() * crops.shape[1]
        views = [cut_view(crop, view) for crop in crops]
        return (self(as_batch(views)) > COVERED_LOGIT).cpu().numpy()


def cut_view(
    image: np.ndarray, view: np.ndarray, px: int = INPUT_PX, interpolation: int = cv2.INTER_AREA
) -> np.ndarray:
    """(px, px, ...) the `view` (left, top, side in pixels) of an image, resampled (area
    averaged by default); mirrored past the image's edges."""
    left, top, side = (int(round(v)) for v in view)
    size = image.shape[0]
    pad = max(0, -left, -top, left + side - size, top + side - size)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    box = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    return cv2.resize(box, (px, px), interpolation=interpolation)


def surroundings(
    crops: np.ndarray, mouths: np.ndarray, view: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The crops and mouth masks cut to the `view`'s (crop pixels) surroundings at the network's
    own scale, the view within them, and the whole crops at that scale (what covers are filled
    from: skin, hair, clothes, the set). Covers drawn there cost a seventh of a 256-px crop's
    pixels, and what lies further out is never seen."""
    left, top, side = view
    grown = SURROUNDINGS * side
    box = np.array([left - (grown - side) / 2, top - (grown - side) / 2, grown])
    px = round(SURROUNDINGS * INPUT_PX)
    regions = np.stack([cut_view(crop, box, px) for crop in crops])
    masks = [cut_view(m.astype(np.uint8), box, px, cv2.INTER_NEAREST_EXACT) for m in mouths]
    margin = (px - INPUT_PX) / 2
    scale = INPUT_PX / side
    whole = round(crops.shape[1] * scale)
    pool = np.stack([cv2.resize(c, (whole, whole), interpolation=cv2.INTER_AREA) for c in crops])
    return regions, np.stack(masks).astype(bool), np.array([margin, margin, INPUT_PX]), pool


def as_batch(views: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(views).astype(np.float32)).permute(0, 3, 1, 2) - 0.5


def random_cover(
    crop: np.ndarray, mouth: np.ndarray, view: np.ndarray, pool: np.ndarray, rng
) -> tuple[np.ndarray, float]:
    """`crop` (N, N, 3 float 0-1) with a random occluder near the mouth, and the share of the
    `mouth` mask it hides (where it is at least half opaque). The occluder: an ellipse (a hand,
    a glass, a microphone head) or a strip (a finger, a pen), soft-edged, filled from a window
    anywhere in a random `pool` image ((P, M, M, 3) uint8: whole crops, of skin, hair, clothes
    and the set), with a shaded flat colour, or with the skin's own."""
    size = crop.shape[0]
    left, top, side = view
    centre = (
        int(left + side * (0.5 + rng.uniform(-0.25, 0.25))),
        int(top + side * (0.5 + rng.uniform(-0.2, 0.2))),
    )
    if rng.random() < 0.5:
        axes = (int(side * rng.uniform(0.05, 0.4)), int(side * rng.uniform(0.05, 0.4)))
    else:
        axes = (int(side * rng.uniform(0.03, 0.1)), int(side * rng.uniform(0.2, 0.6)))
    shape = np.zeros((size, size), np.uint8)
    cv2.ellipse(shape, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    fill = _cover_fill(crop, mouth, pool, rng)
    alpha = cv2.GaussianBlur(shape.astype(np.float32), (0, 0), rng.uniform(0.5, 2.5))
    covered = crop * (1 - alpha[..., None]) + fill * alpha[..., None]
    # What it hides is where it is at least half: a thin strip blurred is hardly there.
    share = float(((alpha >= 0.5) & mouth).sum() / max(mouth.sum(), 1))
    return covered.astype(np.float32), share


def _cover_fill(crop, mouth, pool, rng) -> np.ndarray:
    size = crop.shape[0]
    kind = rng.random()
    if kind < 0.4:
        other = pool[rng.integers(len(pool))]
        times = -(-size // min(other.shape[:2])) + 1  # tiled: a window may start anywhere
        tiled = np.tile(other, (times, times, 1))
        top, left = int(rng.integers(other.shape[0])), int(rng.integers(other.shape[1]))
        return tiled[top : top + size, left : left + size].astype(np.float32) / 255
    if kind < 0.8:
        colour = rng.uniform(0, 1, 3) * rng.uniform(0.1, 1.0)
        shading = rng.normal(0, 0.05, (size, size)).astype(np.float32)
        shading = cv2.GaussianBlur(shading, (0, 0), size / 32)[..., None]
        return np.clip(colour + shading, 0, 1).astype(np.float32)
    skin = np.median(crop[~mouth], axis=0) * rng.uniform(0.8, 1.2, 3)
    return np.broadcast_to(np.clip(skin, 0, 1), crop.shape).astype(np.float32)


def train_cover_net(
    crops: np.ndarray, mouths: np.ndarray, settings: CoverSettings, label: str = "cover"
) -> tuple[CoverNet, dict]:
    """A CoverNet learnt from (F, N, N, 3) uint8 uncovered display crops and their (F, N, N)
    mouth masks. The report says how it does on fresh covers of the same crops and on the
    crops as they are: what it was taught, not proof on real occluders."""
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    view = view_of_mouths(mouths)
    network = CoverNet()
    network.view.copy_(torch.from_numpy(view.astype(np.float32)))
    regions, region_mouths, inner, pool = surroundings(crops, mouths, view * crops.shape[1])
    optimiser = torch.optim.AdamW(
        network.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )
    progress = Progress(label, settings.steps, unit="steps", every_s=5)
    for _ in range(settings.steps):
        views, labels = _pairs(regions, region_mouths, inner, pool, settings.pairs, rng)
        network.train()
        loss = nn.functional.binary_cross_entropy_with_logits(network(views), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        progress.advance()
    return network.eval(), _report(network, regions, region_mouths, inner, pool, settings)


def view_of_mouths(mouths: np.ndarray) -> np.ndarray:
    """(3,) the view around the (F, N, N) masks' median mouth: left, top, side as shares of N."""
    boxes = []
    for mask in mouths:
        ys, xs = np.nonzero(mask)
        if len(xs):
            boxes.append(((xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2, np.ptp(xs)))
    if not boxes:
        raise DubplateError("no crop shows a mouth: nothing to learn a covered one from")
    x, y, width = np.median(np.array(boxes), axis=0)
    side = VIEW_MOUTH_WIDTHS * (width + 1)
    return np.array([x - side / 2, y - side / 2, side]) / mouths.shape[1]


def _pairs(crops, mouths, view, pool, pairs, rng) -> tuple[torch.Tensor, torch.Tensor]:
    """`pairs` random crops each clean and covered, seen through a view a little moved, scaled
    and turned, in a little other light: the network must not learn the crops' exact place,
    angle or grade."""
    views, labels = [], []
    while len(views) < 2 * pairs:
        row = rng.integers(len(crops))
        crop = crops[row].astype(np.float32) / 255
        covered, share = random_cover(crop, mouths[row], view, pool, rng)
        if CLEAR_SHARE < share < COVERED_SHARE:
            continue
        # The crop follows the face but does not turn with it: a tilted head tilts the mouth.
        centre = view[:2] + view[2] / 2 + rng.normal(0, 0.04, 2) * view[2]
        turn = cv2.getRotationMatrix2D(tuple(centre), rng.uniform(-MAX_TILT, MAX_TILT), 1.0)
        side = view[2] * rng.uniform(0.9, 1.1)
        moved = np.array([*(centre - side / 2), side])
        gain, offset = rng.uniform(0.8, 1.2, 3), rng.uniform(-0.05, 0.05)
        for image, covers in ((crop, False), (covered, share >= COVERED_SHARE)):
            turned = cv2.warpAffine(image, turn, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            views.append(np.clip(cut_view(turned, moved) * gain + offset, 0, 1))
            labels.append(float(covers))
    return as_batch(views), torch.tensor(labels)


@torch.no_grad()
def _report(network, regions, mouths, view, pool, settings) -> dict:
    """The share of the crops' (`regions`) mouths flagged as they are, and of fresh covers
    (another seed's) over COVERED_SHARE of the mouth that are caught."""
    rng = np.random.default_rng(settings.seed + 1)
    clean = [region.astype(np.float32) / 255 for region in regions]
    covered = []
    for _ in range(REPORT_TRIES * len(clean)):  # most covers hide enough; a mouth cut off, none
        row = rng.integers(len(clean))
        image, share = random_cover(clean[row], mouths[row], view, pool, rng)
        if share >= COVERED_SHARE:
            covered.append(image)
        if len(covered) == len(clean):
            break
    network.eval()

    def flagged(images: list[np.ndarray]) -> float:
        logits = network(as_batch([cut_view(image, view) for image in images]))
        return round(float((logits > COVERED_LOGIT).float().mean()), 4)

    return {
        "steps": settings.steps,
        "frames": len(clean),
        "clean_flagged": flagged(clean),
        "fresh_covers_caught": flagged(covered) if covered else None,
    }
