"""The output's size before anything is sent: its sides must fit the output format and a sane shape.

Runware scales to the target megapixels with the aspect ratio kept; its model page documents no
limit on shape or side, so these are the encoders' own limits and a documented maximum ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from upscaler.models import OUTPUT_FORMATS, PIXELS_PER_MEGAPIXEL, TARGET_MEGAPIXELS_RANGE, UpscaleOptions

# Longest side per output format. JPEG stores 16-bit sides (65,535), but libjpeg, the usual
# encoder, refuses more than 65,500; WEBP stores 14 bits (16,383); PNG stores 31 bits.
MAX_OUTPUT_SIDE = {"JPG": 65_500, "WEBP": 16_383, "PNG": 2**31 - 1}
FORMAT_NAMES = {"JPG": "JPEG", "WEBP": "WEBP", "PNG": "PNG"}

# Wider or taller than 64:1 is refused whatever the options: Runware documents no limit, and past
# it even an 8 MP output is a strip under 354 px high (e.g. 20000x8 is 2500:1).
MAX_ASPECT_RATIO = 64


@dataclass(frozen=True)
class GeometryProblem:
    code: str
    message: str


def output_size(width: int, height: int, target_megapixels: int) -> tuple[int, int]:
    """The output's sides: the target area (capped at 8 MP) with the input's aspect ratio."""
    target = min(target_megapixels, TARGET_MEGAPIXELS_RANGE[1]) * PIXELS_PER_MEGAPIXEL
    scale = math.sqrt(target / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def geometry_problem(
    width: int, height: int, options: UpscaleOptions, max_aspect_ratio: float = MAX_ASPECT_RATIO
) -> GeometryProblem | None:
    """Why an input of these displayed sides cannot be upscaled with these options, or None."""
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect_ratio:
        return GeometryProblem(
            "extremeAspectRatio",
            f"the image is {width}x{height}, an aspect ratio of {ratio:.1f}:1; images wider or taller "
            f"than {max_aspect_ratio:g}:1 are not sent, whatever the options: crop it to "
            f"{max_aspect_ratio:g}:1 or less",
        )
    out_width, out_height = output_size(width, height, options.target_megapixels)
    limit = MAX_OUTPUT_SIDE[options.output_format]
    if max(out_width, out_height) <= limit:
        return None
    helps = []
    formats = [
        other
        for other in OUTPUT_FORMATS
        if other != options.output_format and max(out_width, out_height) <= MAX_OUTPUT_SIDE[other]
    ]
    if formats:
        helps.append(f"x-amz-meta-output-format: {' or '.join(formats)}")
    smaller = [
        target
        for target in range(TARGET_MEGAPIXELS_RANGE[0], options.target_megapixels)
        if max(output_size(width, height, target)) <= limit
    ]
    if smaller:
        most = max(smaller)
        helps.append(f"x-amz-meta-target-megapixels: {most}" + (" or less" if most > 1 else ""))
    advice = f"; set {', or '.join(helps)}" if helps else "; no option makes it fit"
    return GeometryProblem(
        "outputTooLarge",
        f"the output would be about {out_width}x{out_height} px at {options.target_megapixels} MP, "
        f"more than the {limit:,} px per side that {FORMAT_NAMES[options.output_format]} allows{advice}",
    )
