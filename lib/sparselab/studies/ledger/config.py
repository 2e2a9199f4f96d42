"""The complexity ledger's configuration (``ledger:``; stdlib only, imported at parse time).

The ledger has no experiments of its own: its rows are the final checkpoints the other studies'
plans list (``ledger_checkpoints()``), so the section only says how to measure and what to rank.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...config.shared import SchemaBinding, SharedConfig, typed
from .options import LedgerOptions

__all__ = ["SCHEMA_BINDINGS", "LedgerConfig", "parse"]

SCHEMA_BINDINGS: tuple[SchemaBinding, ...] = ((LedgerOptions, (), set()),)


@dataclasses.dataclass(frozen=True)
class LedgerConfig:
    options: LedgerOptions

    @property
    def title(self) -> str:
        return self.options.title

    def used_datasets(self) -> set[str]:
        """None of its own: it reads the datasets of the checkpoints the other studies make."""
        return set()


def parse(raw: Mapping[str, Any], shared: SharedConfig) -> LedgerConfig | None:
    """The typed section, None when disabled (the default: a config without ``ledger:``)."""
    options = typed(LedgerOptions, raw, "ledger")
    return LedgerConfig(options) if options.enabled else None
