"""What a backfill would do and cost: each new object looked at as the submit function would look at it.

The stack's own settings decide (defaults, folder presets, size limit), read from the submit
function's environment: the deployed function's configuration (lambda:GetFunctionConfiguration),
or the local stack's. Each object is read with submit's bounded reads (one ranged GET, more only for
a header past it: upscaler.source_inspection), never downloaded; its options come from the
defaults, its folder's preset and its metadata, and the price from the model page's tiers
(upscaler.pricing). What would be refused is counted by reason, and costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from upscale_cli.errors import StackNotFound
from upscale_cli.target import Target
from upscaler.job_record import job_id_for
from upscaler.parallel import run_each
from upscaler.pricing import PRICE_TIERS, tier_for
from upscaler.settings import ConfigurationError, Settings
from upscaler.source_events import SourceObject
from upscaler.source_inspection import SourceInspector
from upscaler.source_rules import Rejection
from upscaler.storage import ObjectStore

# Objects looked at at once: each is one small ranged GET.
INSPECT_PARALLELISM = 10


@dataclass
class TierEstimate:
    tier: str
    usd_per_image: Decimal
    images: int = 0

    @property
    def usd(self) -> Decimal:
        return self.usd_per_image * self.images


@dataclass
class BackfillEstimate:
    would_send: int = 0  # what Runware would be asked to upscale
    would_refuse: dict[str, int] = field(default_factory=dict)  # REJECTED reason code -> objects
    unreadable_now: dict[str, int] = field(default_factory=dict)  # an S3 error now (submit would retry) -> objects
    presets: dict[str, int] = field(default_factory=dict)  # preset -> objects sent with its options
    tiers: list[TierEstimate] = field(
        default_factory=lambda: [TierEstimate(tier.name, tier.usd_per_image) for tier in PRICE_TIERS]
    )

    @property
    def usd(self) -> Decimal:
        return sum((tier.usd for tier in self.tiers), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {
            "would_send": self.would_send,
            "would_refuse": self.would_refuse,
            "unreadable_now": self.unreadable_now,
            "presets": self.presets,
            "tiers": [
                {"tier": tier.tier, "images": tier.images, "usd_per_image": tier.usd_per_image, "usd": tier.usd}
                for tier in self.tiers
            ],
            "usd": self.usd,
        }


def estimate(
    settings: Settings, objects: ObjectStore, sources: Sequence[SourceObject], into: BackfillEstimate | None = None
) -> BackfillEstimate:
    """The estimate for these sources (new ones of a backfill), as submit would judge each now, added
    to `into` when given (a backfill estimates a page of objects at a time)."""
    inspector = SourceInspector(settings, objects)
    judged = run_each(
        sources, lambda source: inspector.inspect(source, job_id_for(*source.identity)), parallelism=INSPECT_PARALLELISM
    )
    result = into if into is not None else BackfillEstimate()
    by_tier = {tier.tier: tier for tier in result.tiers}
    for outcome in judged:
        if outcome.error is not None:
            _count(result.unreadable_now, type(outcome.error).__name__)
        elif isinstance(outcome.value, Rejection):
            _count(result.would_refuse, outcome.value.code)
        elif outcome.value is not None:
            result.would_send += 1
            by_tier[tier_for(int(outcome.value["target_megapixels"])).name].images += 1
            _count(result.presets, outcome.value.get("preset") or NO_PRESET)
    return result


# How the estimate names the objects that get no folder preset.
NO_PRESET = "(none)"


def _count(counts: dict[str, int], name: str) -> None:
    counts[name] = counts.get(name, 0) + 1


def submit_settings(target: Target) -> Settings:
    """The stack's submit settings: the local stack's environment, or the deployed function's."""
    environment = target.submit_environment
    if environment is None:
        if not target.submit_function:
            raise StackNotFound(
                f"{target.description} has no submit function output (SubmitFunctionName): "
                "the estimate needs its settings"
            )
        configuration = target.client("lambda").get_function_configuration(FunctionName=target.submit_function)
        environment = configuration.get("Environment", {}).get("Variables", {})
    try:
        return Settings.from_environment(environment)
    except ConfigurationError as error:
        raise StackNotFound(f"the submit function of {target.description} has settings it refuses: {error}") from None
