"""Binary weight masks keyed by parameter name (open_lth's ``Mask``), kept as explicit tensors.

A :class:`Mask` is independent of any model object: it can be built from magnitudes (:mod:`.magnitude`) or from
the zeros of a model, saved next to the weights in a checkpoint, applied to a freshly built
model, and enforced after every optimizer step so pruned weights stay exactly zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

PRUNABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


def prunable_parameters(model: nn.Module, exclude: Iterable[str] = ()) -> list[str]:
    """Names of the ``weight`` of every Conv2d and Linear layer, in model order.

    Biases and normalisation parameters are never pruned (the convention of all four studies).
    """
    skip = set(exclude)
    names = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, PRUNABLE_MODULES)]
    unknown = skip - set(names)
    if unknown:
        raise KeyError(f"cannot exclude {sorted(unknown)}: not prunable weights of this model")
    return [n for n in names if n not in skip]


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.named_parameters())


class Mask:
    """A dict of boolean tensors (True = weight active), one per masked parameter."""

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        self._masks = {name: m.detach().to(torch.bool) for name, m in masks.items()}

    # ------------------------------------------------------------------ construction
    @classmethod
    def ones(cls, model: nn.Module, names: Iterable[str] | None = None) -> Mask:
        params = _params(model)
        names = prunable_parameters(model) if names is None else list(names)
        return cls({n: torch.ones_like(params[n], dtype=torch.bool) for n in names})

    @classmethod
    def from_zeros(cls, model: nn.Module, names: Iterable[str] | None = None) -> Mask:
        """The mask of a model whose pruned weights are stored as exact zeros."""
        params = _params(model)
        names = prunable_parameters(model) if names is None else list(names)
        return cls({n: params[n].detach() != 0 for n in names})

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._masks

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(self._masks.items())

    def names(self) -> list[str]:
        return list(self._masks)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Mask)
            and set(self.names()) == set(other.names())
            and all(torch.equal(self[n], other[n].to(self[n].device)) for n in self)
        )

    # ------------------------------------------------------------------ counts
    @property
    def numel(self) -> int:
        return sum(m.numel() for m in self._masks.values())

    @property
    def num_active(self) -> int:
        return int(sum(int(m.sum()) for m in self._masks.values()))

    @property
    def sparsity(self) -> float:
        """Fraction of masked-out entries over all masked tensors."""
        return 1.0 - self.num_active / self.numel if self.numel else 0.0

    def report(self) -> dict:
        """Per-layer and global sparsity of the mask (JSON-ready)."""
        layers = {
            n: {"numel": m.numel(), "active": int(m.sum()), "sparsity": 1.0 - int(m.sum()) / m.numel()}
            for n, m in self._masks.items()
        }
        return {"layers": layers, "numel": self.numel, "active": self.num_active, "sparsity": self.sparsity}

    # ------------------------------------------------------------------ use
    def check_compatible(self, model: nn.Module) -> None:
        params = _params(model)
        missing = [n for n in self._masks if n not in params]
        wrong = [
            f"{n}: mask {tuple(m.shape)} vs weight {tuple(params[n].shape)}"
            for n, m in self._masks.items()
            if n in params and m.shape != params[n].shape
        ]
        if missing or wrong:
            raise ValueError(
                "mask does not fit the model: " + "; ".join([f"no parameter {n!r}" for n in missing] + wrong)
            )

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> None:
        """Zero the masked-out weights of ``model`` in place."""
        self.bind(model).enforce()

    def bind(self, model: nn.Module) -> BoundMask:
        """A mask attached to ``model``'s parameters, cheap to enforce every step."""
        self.check_compatible(model)
        return BoundMask(self, model)

    def to_device(self, device: torch.device | str) -> Mask:
        return Mask({n: m.to(device) for n, m in self._masks.items()})

    def to_tensors(self, prefix: str = "") -> dict[str, torch.Tensor]:
        return {f"{prefix}{n}": m for n, m in self._masks.items()}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], prefix: str = "") -> Mask:
        return cls({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})


class BoundMask:
    """Masks pre-cast to each parameter's dtype/device so enforcement is one fused multiply."""

    def __init__(self, mask: Mask, model: nn.Module) -> None:
        params = _params(model)
        self.mask = mask
        self.params = [params[n] for n in mask.names()]
        self.factors = [mask[n].to(device=p.device, dtype=p.dtype) for n, p in zip(mask.names(), self.params)]

    @torch.no_grad()
    def enforce(self) -> None:
        if self.params:
            torch._foreach_mul_(self.params, self.factors)

    @torch.no_grad()
    def mask_gradients(self) -> None:
        """Zero the gradient of inactive entries, as a masked forward pass (``m * w``) would give:
        their momentum then only decays, so a weight regrown later starts from its own value (0)
        and no stale accumulated gradient (dynamic sparse training; harmless for fixed masks)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            factors = [f for p, f in zip(self.params, self.factors) if p.grad is not None]
            torch._foreach_mul_(grads, factors)
