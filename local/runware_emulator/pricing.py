"""What an upscale task costs, as the model page prices it: per image, by the output's tier.

Source: https://runware.ai/models/prunaai-p-image-upscale (pricing section, summarised in the
project's reference notes on Runware's API): $0.005 per image for 1-4 MP outputs, $0.01 per image
for 5-8 MP outputs. Not per megapixel.

The tier is the task's targetMegapixels. The model page does not mark targetMegapixels as
required and documents no default; for a task without it, the tier is the output's megapixels,
rounded (an assumption, since the page says nothing about such a task).
"""

from __future__ import annotations

from decimal import Decimal

from local.runware_emulator.protocol import MAX_TARGET_MEGAPIXELS, PIXELS_PER_MEGAPIXEL

# (highest megapixels of the tier, USD per image)
PRICE_TIERS: tuple[tuple[int, Decimal], ...] = ((4, Decimal("0.005")), (8, Decimal("0.01")))


def price_per_image(megapixels: int) -> Decimal:
    """The price of one output at this many megapixels (1..8; more is priced as 8, less as 1)."""
    for highest, price in PRICE_TIERS:
        if megapixels <= highest:
            return price
    return PRICE_TIERS[-1][1]


def nearest_megapixels(pixels: int) -> int:
    """Whole megapixels nearest to `pixels`, within the model's 1..8: the emulator's output size for a
    task without targetMegapixels (Runware documents no default; an assumption, said so here)."""
    return min(MAX_TARGET_MEGAPIXELS, max(1, round(pixels / PIXELS_PER_MEGAPIXEL)))


def task_cost(target_megapixels: int | None, output_pixels: int) -> float:
    """The `cost` field of a result (a JSON number in USD, as Runware's results carry it)."""
    tier = target_megapixels if target_megapixels is not None else nearest_megapixels(output_pixels)
    return float(price_per_image(tier))
