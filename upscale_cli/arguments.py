"""Argument types that refuse what cannot work before anything is done (argparse reports them: exit 2)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    """An integer within low..high (high: no bound if None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
            raise argparse.ArgumentTypeError(f"must be a whole number {bound}, got {value}")
        return value

    return parse


def seconds(*, positive: bool = False) -> Callable[[str], float]:
    """A finite number of seconds (or minutes): at least 0, or above 0 if `positive`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"must be a number {'above' if positive else 'of at least'} 0, got {text}")
        return value

    return parse
