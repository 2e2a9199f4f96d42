"""What every part of the workflow configuration shares: its error type, sparsity path form, references."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ConfigError", "format_sparsity", "reference"]


class ConfigError(ValueError):
    """The workflow configuration is invalid; the message names the key and the fix."""


def format_sparsity(s: float) -> str:
    """The path form of a sparsity: the shortest string that round-trips (0.9 -> '0.9')."""
    return "0" if s == 0 else repr(float(s))


def reference(value: str, defined: Mapping[str, Any], key: str, section: str) -> None:
    """``value`` must name an entry of ``section``."""
    if value not in defined:
        raise ConfigError(f"{key}: {value!r} is not defined under {section}: (defined: {', '.join(sorted(defined))})")
