"""The ledger's options (stdlib only): what the measurement jobs read back from their params, so a
job's code digest never covers the parser (:mod:`.config`)."""

from __future__ import annotations

import dataclasses
import re

from ...config.hparams import Hparams, HparamsError

__all__ = ["FIXED_MEASURES", "LedgerOptions", "MeasureSpec", "measure_names"]

# Measures the ledger can rank against the generalisation gap besides the path-norms ``L<q>``.
FIXED_MEASURES: tuple[str, ...] = (
    "sparsity",  # zeros among Conv2d/Linear weights, measured on the checkpoint
    "params_alive",  # parameters minus those a mask holds at zero
    "flops",  # one batch-1 forward pass as computed
    "flops_sparse",  # ShrinkBench's count: every masked weight skipped
    "bound",  # Theorem 3.1's first factor times the L1 path-norm
    "bound_margin",  # bound over the median train margin (the margin-normalised bound)
    "inverse_margin",  # 1 / median train margin
)
_PATHNORM = re.compile(r"L(\d+(?:\.\d+)?)$")


def measure_names(qs: tuple[float, ...]) -> tuple[str, ...]:
    """Every measure name the ledger's CSV has a column for, with the configured exponents."""
    return (*FIXED_MEASURES, *(f"L{q:g}" for q in qs))


@dataclasses.dataclass(frozen=True)
class MeasureSpec(Hparams):
    """How each checkpoint is measured (rule param ``options`` of ``ledger_measure``)."""

    qs: tuple[float, ...] = (1.0, 2.0, 4.0)  # exact L^q path-norms (``bound`` needs 1)
    margin_samples: int | None = None  # seeded subset of the train split for margins and train top-1; None: all
    seed: int = 0  # of that subset
    batch_size: int = 512

    def validate(self, path: str) -> None:
        if 1.0 not in self.qs:
            raise HparamsError(
                f"{path}.qs: {list(self.qs)} must contain 1 (Theorem 3.1's bound is on the L1 path-norm)"
            )
        if any(q <= 0 for q in self.qs):
            raise HparamsError(f"{path}.qs: exponents must be > 0, got {list(self.qs)}")
        if self.margin_samples is not None and self.margin_samples < 1:
            raise HparamsError(f"{path}.margin_samples: must be >= 1 or null (the whole train split)")
        if self.batch_size < 1:
            raise HparamsError(f"{path}.batch_size: must be >= 1")


@dataclasses.dataclass(frozen=True)
class LedgerOptions(MeasureSpec):
    """The ``ledger`` section: the measurement (:class:`MeasureSpec`), the report's title and
    which measures the Kendall τ table and the figure rank against the generalisation gap."""

    enabled: bool = True
    title: str = "Complexity ledger"
    measures: tuple[str, ...] = ("sparsity", "params_alive", "flops_sparse", "L1", "L2", "L4", "bound", "bound_margin")

    def validate(self, path: str) -> None:
        super().validate(path)
        known = measure_names(self.qs)
        unknown = [m for m in self.measures if m not in known]
        if unknown:
            raise HparamsError(
                f"{path}.measures: unknown {unknown}; choose from {list(known)} (L<q> needs q in {path}.qs)"
            )
        if not self.measures:
            raise HparamsError(f"{path}.measures: name at least one measure")

    def spec(self) -> dict[str, object]:
        """The measurement's rule param: only what the measurement reads (a new title or measure
        list never reruns it)."""
        keys = {f.name for f in dataclasses.fields(MeasureSpec)}
        return {k: v for k, v in self.to_dict().items() if k in keys}
