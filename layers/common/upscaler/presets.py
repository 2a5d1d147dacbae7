"""Folder presets: the options an object gets from the folder it is dropped in.

For files dropped by tools that cannot set S3 user metadata (the console, a sync client, a camera
app). The presets document is a JSON object from key prefixes, inside the inbox prefix, to options
named as the metadata overrides name them:

    {"print/": {"target-megapixels": 8, "output-format": "PNG"},
     "web/": {"target-megapixels": 2, "output-format": "WEBP", "output-quality": 80}}

An object's options are the stack's defaults, then the preset of the longest prefix its key (below
the inbox prefix) starts with, then its own metadata overrides (models.UpscaleOptions.with_overrides).
A document is read whole and refused whole, with every problem in one message, before any upload
is looked at: at deploy (a custom resource, upscaler.deploy_checks), when a function starts, and
when the local stack starts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upscaler.models import OVERRIDE_KEYS, InvalidOption, UpscaleOptions, near_miss_of_option


class PresetsError(ValueError):
    """The presets document cannot be used; the message names every problem found."""


@dataclass(frozen=True)
class Preset:
    prefix: str  # below the inbox prefix; also the preset's name in job records
    overrides: Mapping[str, str]  # option name (as in metadata) -> value as text, checked


@dataclass(frozen=True)
class Presets:
    # Longest prefix first, so the first match is the longest.
    presets: tuple[Preset, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.presets)

    def preset_for(self, key: str, inbox_prefix: str) -> Preset | None:
        """The preset of the longest prefix the key starts with, below the inbox prefix; None if none."""
        if not key.startswith(inbox_prefix):
            return None
        relative = key[len(inbox_prefix) :]
        return next((preset for preset in self.presets if relative.startswith(preset.prefix)), None)

    def misplaced(self, inbox_prefix: str) -> list[str]:
        """Why presets whose prefix repeats the inbox prefix would never apply (prefixes are below it)."""
        return [problem for preset in self.presets if (problem := _prefix_problem(preset.prefix, inbox_prefix))]

    def options_for(
        self, key: str, inbox_prefix: str, defaults: UpscaleOptions, metadata: Mapping[str, str]
    ) -> tuple[UpscaleOptions, str | None]:
        """The options an object gets (defaults, its folder's preset, its own metadata) and the preset's
        name. Raises InvalidOption for an invalid metadata override, as with_overrides does."""
        preset = self.preset_for(key, inbox_prefix)
        base = defaults.with_overrides(preset.overrides) if preset else defaults
        return base.with_overrides(metadata), preset.prefix if preset else None


NO_PRESETS = Presets()


def parse_presets(document: str, *, inbox_prefix: str = "") -> Presets:
    """The presets of a JSON document ("" or "{}": none); PresetsError names every problem found.

    With the inbox prefix, a prefix that repeats it is refused: prefixes are read below the inbox
    prefix, so such a preset would never apply and its folder would get the defaults unnoticed.
    """
    if not document.strip():
        return NO_PRESETS
    try:
        parsed = json.loads(document)
    except ValueError as error:
        raise PresetsError(f"the presets document is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise PresetsError(
            'the presets document must be a JSON object from prefix to options, e.g. {"print/": '
            '{"target-megapixels": 8, "output-format": "PNG"}}'
        )
    presets: list[Preset] = []
    problems: list[str] = []
    for prefix, options in parsed.items():
        found = _prefix_problem(prefix, inbox_prefix) or _options_problems(prefix, options)
        if isinstance(found, str):
            problems.append(found)
        elif found:
            problems.extend(found)
        else:
            presets.append(Preset(prefix, _as_text(options)))
    if problems:
        count = "a problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise PresetsError(f"the presets document has {count}: {'; '.join(problems)}")
    return Presets(tuple(sorted(presets, key=lambda preset: len(preset.prefix), reverse=True)))


def _prefix_problem(prefix: str, inbox_prefix: str) -> str | None:
    if not prefix:
        return 'preset "": an empty prefix is every object: set the stack\'s defaults instead'
    if inbox_prefix and prefix.startswith(inbox_prefix):
        inner = prefix[len(inbox_prefix) :] or "..."
        return (
            f"preset {prefix!r}: prefixes are below the inbox prefix {inbox_prefix!r}; "
            f"write {inner!r} for keys under {prefix!r}"
        )
    return None


def _options_problems(prefix: str, options: Any) -> list[str]:
    """Every problem of one preset's options: unknown names (near misses named), values out of range."""
    if not isinstance(options, dict) or not options:
        return [f'preset {prefix!r}: options must be a non-empty JSON object, e.g. {{"target-megapixels": 8}}']
    problems = []
    for name, value in options.items():
        if name not in OVERRIDE_KEYS:
            meant = near_miss_of_option(name)
            hint = f"did you mean {meant!r}?" if meant else f"the options are {', '.join(OVERRIDE_KEYS)}"
            problems.append(f"preset {prefix!r}: unknown option {name!r}; {hint}")
        elif isinstance(value, bool | int | str) and not (isinstance(value, bool) and name not in _FLAGS):
            try:
                UpscaleOptions().with_overrides({name: _text_of(value)})
            except InvalidOption as error:
                problems.append(f"preset {prefix!r}: {error}")
        else:
            problems.append(f"preset {prefix!r}: {name}: {json.dumps(value)} is not a valid value")
    return problems


_FLAGS = frozenset({"enhance-details", "realism"})


def _text_of(value: bool | int | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_text(options: Mapping[str, bool | int | str]) -> dict[str, str]:
    return {name: _text_of(value) for name, value in options.items()}
