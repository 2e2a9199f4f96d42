"""Tied ("HashedNet-like") weights: the DSR paper's parameter-matched baseline (dsr.md §2.4).

A tied layer keeps ``k = round((1 - s) * n)`` free values (the *bank*) and an int64 *index*
buffer that maps each of its ``n`` weight positions to a bank entry; the effective weight is
``bank[index].view(shape)``. Unlike HashedNet's random hash, the assignment is balanced: the
positions are shuffled with a seeded generator and dealt bank indices cyclically, so every entry
is shared by floor(n/k) or ceil(n/k) positions. Tying is element-wise (the reference's g = 4 runs)
and static for the whole run.

Mechanism: :func:`torch.nn.utils.parametrize.register_parametrization` with ``unsafe=True``.
:meth:`TiedWeight.right_inverse` turns the dense weight into a 1-D bank, so the only learnable
tensor left is the bank (``<layer>.parametrizations.weight.original``) and the index is a buffer
(``<layer>.parametrizations.weight.0.index``): both travel with ``state_dict()``, optimizers see
the bank, and autograd accumulates the gradients of positions sharing an entry into it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..models.access import module_tensor

TIEABLE_MODULES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

BankInit = Callable[[torch.Tensor, torch.Size, torch.Generator], None]
"""Fills a bank in place, given the dense weight shape it stands for and a seeded generator."""


# ---------------------------------------------------------------------------------- bank inits
def _fans(shape: torch.Size) -> tuple[int, int]:
    """PyTorch's conv/linear convention: fan_in = in·kh·kw (in per group), fan_out = out·kh·kw."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(bank: torch.Tensor, values: torch.Tensor) -> None:
    with torch.no_grad():
        bank.copy_(values.to(device=bank.device, dtype=bank.dtype))


def uniform_fan_in_(bank: torch.Tensor, shape: torch.Size, generator: torch.Generator) -> None:
    """U(±1/sqrt(fan_in)): the default Linear/Conv2d range, drawn on CPU for determinism."""
    bound = 1.0 / math.sqrt(_fans(shape)[0])
    _fill(bank, torch.empty(bank.numel()).uniform_(-bound, bound, generator=generator))


def reference_uniform_(bank: torch.Tensor, shape: torch.Size, generator: torch.Generator) -> None:
    """U(±1/sqrt(fan_in)) with entry 0 set to 0: exactly what the reference ``TiedTensor`` does."""
    uniform_fan_in_(bank, shape, generator)
    with torch.no_grad():
        bank[0] = 0.0


def he_fan_out_normal_(bank: torch.Tensor, shape: torch.Size, generator: torch.Generator) -> None:
    """N(0, sqrt(2/(out·kh·kw))): the re-draw WRN/ResNet apply over their conv banks."""
    std = math.sqrt(2.0 / _fans(shape)[1])
    _fill(bank, torch.empty(bank.numel()).normal_(0.0, std, generator=generator))


# ---------------------------------------------------------------------------------- the parametrization
def bank_size(n: int, sparsity: float) -> int:
    """``k = round((1 - s) * n)``, at least 1 (Python's round, as the reference)."""
    _check_sparsity(sparsity)
    return max(1, round((1.0 - sparsity) * n))


def balanced_index(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Shuffle the n positions and deal bank indices 0..k-1 cyclically: usage floor/ceil(n/k)."""
    if not 1 <= k <= n:
        raise ValueError(f"bank size must be in [1, {n}], got {k}")
    order = torch.randperm(n, generator=generator)
    index = torch.empty(n, dtype=torch.int64)
    index[order] = torch.arange(n, dtype=torch.int64) % k
    return index


class TiedWeight(nn.Module):
    """Parametrization ``bank -> bank[index].view(shape)``; the index is a (saved) buffer.

    Register with ``unsafe=True``: the stored tensor (the bank, 1-D of ``k`` values) has a
    different shape from the weight it produces.
    """

    index: torch.Tensor

    def __init__(self, shape: Iterable[int], k: int, generator: torch.Generator) -> None:
        super().__init__()
        self.shape = torch.Size(shape)
        self.bank_size = int(k)
        self.register_buffer("index", balanced_index(self.shape.numel(), self.bank_size, generator))

    def forward(self, bank: torch.Tensor) -> torch.Tensor:
        return bank[self.index].view(self.shape)

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        """The bank closest (least squares) to a dense weight: the mean over each entry's positions.

        Used at registration and by ``layer.weight = w``; tied weights are reproduced exactly.
        """
        flat = weight.detach().reshape(-1)
        index = self.index.to(flat.device)
        sums = torch.zeros(self.bank_size, dtype=flat.dtype, device=flat.device).index_add_(0, index, flat)
        counts = torch.bincount(index, minlength=self.bank_size).to(flat.dtype)
        return sums / counts

    def extra_repr(self) -> str:
        return f"shape={tuple(self.shape)}, bank_size={self.bank_size}"


# ---------------------------------------------------------------------------------- model-level API
def _check_sparsity(sparsity: float) -> None:
    real = isinstance(sparsity, numbers.Real) and not isinstance(sparsity, bool)
    if not (real and 0.0 <= sparsity < 1.0):  # NaN fails the comparison too
        raise ValueError(f"tied sparsity must be a number in [0, 1), got {sparsity!r}")


def _resolve(model: nn.Module, names: Iterable[str]) -> list[str]:
    """The requested names in model order, checked to be untied Conv2d/Linear modules."""
    wanted = list(dict.fromkeys(names))
    modules = dict(model.named_modules())
    for name in wanted:
        if name not in modules:
            raise KeyError(f"no module named {name!r} in the model")
        module = modules[name]
        if not isinstance(module, TIEABLE_MODULES):
            raise TypeError(f"can only tie Conv2d/Linear weights; {name!r} is {type(module).__name__}")
        if parametrize.is_parametrized(module, "weight"):
            raise ValueError(f"the weight of {name!r} is already parametrized")
    order = {name: i for i, name in enumerate(modules)}
    return sorted(wanted, key=order.__getitem__)


def tie_weights(
    model: nn.Module,
    names: Iterable[str],
    sparsity: float,
    seed: int,
    init: BankInit = reference_uniform_,
) -> dict[str, int]:
    """Replace the ``weight`` of each named Conv2d/Linear by a tied bank; return bank size per module.

    One generator seeded with ``seed`` draws, layer by layer in model order, the index and then
    the bank, so the result does not depend on the order of ``names``. ``init`` fills each bank
    (default: the reference's U(±1/sqrt(fan_in)) with entry 0 zeroed; pass
    :func:`he_fan_out_normal_` for WRN/ResNet convs).
    """
    _check_sparsity(sparsity)
    ordered = _resolve(model, names)
    generator = torch.Generator().manual_seed(int(seed))
    sizes: dict[str, int] = {}
    for name in ordered:
        module = model.get_submodule(name)
        weight = module_tensor(module, "weight")
        shape = weight.shape
        k = bank_size(shape.numel(), sparsity)
        tied = TiedWeight(shape, k, generator).to(weight.device)
        parametrize.register_parametrization(module, "weight", tied, unsafe=True)
        init(bank_of(module), shape, generator)
        sizes[name] = k
    return sizes


def tie_from_spec(model: nn.Module, tied: Mapping[str, Any], input_shape: tuple[int, int, int]) -> nn.Module:
    """The model registry's build hook for a spec's ``tied`` (:data:`sparselab.models.registry.BUILD_HOOKS`):
    ``{"modules": [...], "sparsity": s, "seed": k}`` tied again as at training (the state dict then
    restores the exact banks and indices)."""
    tie_weights(model, tied["modules"], float(tied["sparsity"]), int(tied["seed"]))
    return model


def bank_of(module: nn.Module) -> nn.Parameter:
    """The learnable bank of a tied layer."""
    if not is_tied(module):
        raise ValueError(f"{type(module).__name__} has no tied weight")
    return module.parametrizations.weight.original  # type: ignore[union-attr,return-value]


def is_tied(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight") and any(
        isinstance(p, TiedWeight)
        for p in module.parametrizations.weight  # type: ignore[union-attr]
    )


def tied_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Every tied layer of a model by module name (e.g. to add an L1 term over the banks, §2.7)."""
    return {name: m for name, m in model.named_modules() if is_tied(m)}


def tied_parameter_count(model: nn.Module) -> int:
    """Learnable values: bank sizes plus every other parameter (the paper's "# parameters").

    ``model.parameters()`` yields each bank (never a dense copy of a tied weight) exactly once, so
    this is the plain count; it is a function so callers need not know how tying is stored.
    """
    return sum(p.numel() for p in model.parameters())
