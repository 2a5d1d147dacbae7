"""What Runware charges for an upscale task, by the model page's price tiers: per image, not per megapixel.

Source: the model page of prunaai:p-image@upscale (https://runware.ai/models/prunaai-p-image-upscale,
pricing section): $0.005 per image for 1-4 MP outputs, $0.01 per image for 5-8 MP outputs. The tier
is the task's targetMegapixels. Prices change: the job's `cost` attribute records what Runware
reported for each task; this is for estimates made before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from upscaler.models import TARGET_MEGAPIXELS_RANGE


@dataclass(frozen=True)
class PriceTier:
    lowest_megapixels: int
    highest_megapixels: int
    usd_per_image: Decimal

    @property
    def name(self) -> str:
        return f"{self.lowest_megapixels}-{self.highest_megapixels} MP"


PRICE_TIERS: tuple[PriceTier, ...] = (
    PriceTier(TARGET_MEGAPIXELS_RANGE[0], 4, Decimal("0.005")),
    PriceTier(5, TARGET_MEGAPIXELS_RANGE[1], Decimal("0.01")),
)


def tier_for(target_megapixels: int) -> PriceTier:
    """The tier of a task asking for this many megapixels (1..8)."""
    for tier in PRICE_TIERS:
        if tier.lowest_megapixels <= target_megapixels <= tier.highest_megapixels:
            return tier
    raise ValueError(f"no price tier for {target_megapixels} megapixels")
