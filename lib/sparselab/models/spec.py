"""A model's shape spec (:class:`ArchSpec`): everything needed to rebuild it before loading weights.

A checkpoint's sidecar stores it under ``arch``. Beyond the registered architecture and its
keyword arguments, a spec may record how the built model was changed afterwards (narrowed
widths, tied weights); the model registry applies those through hooks it imports by name
(:data:`sparselab.models.registry.BUILD_HOOKS`), so this layer never imports the mechanisms above it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from .registry import BUILD_HOOKS, build_hook, build_model

__all__ = ["ArchSpec"]


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """Everything needed to rebuild a model before loading its weights (its shape spec)."""

    arch: str
    num_classes: int
    input_shape: tuple[int, int, int]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Structured pruning: the width of every conv that was narrowed (producer name -> filters),
    # see sparselab.structured.removal; None for the architecture as registered.
    widths: dict[str, int] | None = None
    # Tied (HashedNet-style) weights: {"modules": [...], "sparsity": s, "seed": k}, see sparselab.dst.tied;
    # the index of every position is in the state dict, so loading restores the exact tying.
    tied: dict[str, Any] | None = None

    def build(self) -> nn.Module:
        """The registered architecture, then every hook whose field is set (widths before tying)."""
        model = build_model(self.arch, self.num_classes, self.input_shape, **self.kwargs)
        for field in BUILD_HOOKS:
            value = getattr(self, field)
            if value:
                model = build_hook(field)(model, value, tuple(self.input_shape))
        return model

    def with_widths(self, widths: dict[str, int] | None) -> ArchSpec:
        return dataclasses.replace(self, widths=dict(widths) if widths else None)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
            "kwargs": self.kwargs,
        }
        if self.widths:
            d["widths"] = dict(self.widths)
        if self.tied:
            d["tied"] = dict(self.tied)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        widths = d.get("widths")
        return cls(
            d["arch"],
            int(d["num_classes"]),
            tuple(d["input_shape"]),
            dict(d.get("kwargs", {})),
            {str(k): int(v) for k, v in widths.items()} if widths else None,
            d.get("tied"),
        )
