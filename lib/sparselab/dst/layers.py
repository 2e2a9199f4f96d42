"""Which tensors a dynamic sparse network makes sparse, and its initial random masks (DSR notes §1.4-1.5).

The paper sparsifies different layers per model: WRN-28-k only the 3x3 convs inside its residual
blocks (stem, 1x1 shortcuts and classifier dense); ResNet-50 every bottleneck conv and the final
Linear (stem and downsample convs dense); LeNet-300-100 all three Linear layers. ``policy="paper"``
picks those sets by architecture; ``"conv_fc"`` every Conv2d and Linear weight; a list of parameter
names is taken as given.

Initial masks are uniform per tensor: exactly ``int((1 - s) * n + 0.1)`` entries on (at least one),
at positions drawn from a seeded generator; ``s`` is the conv or the Linear sparsity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ..sparsity.mask import Mask

__all__ = [
    "PAPER_LAYERS",
    "Granularity",
    "sparse_tensors",
    "layer_sparsities",
    "initial_masks",
    "active_count",
    "mask_shape",
    "entry_magnitudes",
    "expand",
]

# Masks may be coarser than their weights: one entry per element, per kernel row or per whole kernel.
Granularity = Literal["element", "row", "kernel"]
_KEEP_DIMS = {"element": 4, "row": 3, "kernel": 2}


def entry_magnitudes(weight: Tensor, granularity: Granularity = "element") -> Tensor:
    """|w| reduced to the mask's shape: per element, or the mean |w| over each kernel row (conv
    dims out, in, kh) or whole kernel (out, in). Linear weights are always per element."""
    w = weight.detach().abs()
    keep = _KEEP_DIMS[granularity]
    if w.dim() <= 2 or keep >= w.dim():
        return w
    return w.mean(dim=tuple(range(keep, w.dim())))


def expand(mask: Tensor, weight: Tensor) -> Tensor:
    """A mask of a coarser granularity broadcast to the weight's shape."""
    return mask.view(*mask.shape, *[1] * (weight.dim() - mask.dim())).expand_as(weight)


# architecture -> rule picking the paper's sparse weights (module name, module) -> bool
PAPER_LAYERS = {
    "wrn": lambda name, m: isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and name.startswith("block"),
    "resnet50": lambda name, m: (
        (isinstance(m, nn.Conv2d) and ".conv" in name and name.startswith("layer"))
        or (isinstance(m, nn.Linear) and name == "fc")
    ),
    "lenet300_100": lambda name, m: isinstance(m, nn.Linear),
}


def sparse_tensors(model: nn.Module, arch: str, policy: str | Sequence[str] = "paper") -> list[str]:
    """Parameter names of the sparse weights, in model order."""
    if not isinstance(policy, str):
        names = list(policy)
        params = dict(model.named_parameters())
        unknown = [n for n in names if n not in params]
        if unknown:
            raise KeyError(f"sparse layers {unknown} are not parameters of the model")
        return names
    if policy == "conv_fc":
        rule = lambda name, m: isinstance(m, (nn.Conv2d, nn.Linear))  # noqa: E731
    elif policy == "paper":
        if arch not in PAPER_LAYERS:
            raise ValueError(
                f"no paper sparse-layer set for {arch!r} (known: {', '.join(PAPER_LAYERS)}); "
                "use sparse_layers: conv_fc or a list of parameter names"
            )
        rule = PAPER_LAYERS[arch]
    else:
        raise ValueError(f"sparse layer policy must be 'paper', 'conv_fc' or a list of names, got {policy!r}")
    return [f"{name}.weight" for name, m in model.named_modules() if rule(name, m)]


def layer_sparsities(model: nn.Module, names: Sequence[str], conv: float, fc: float | None) -> dict[str, float]:
    """The sparsity of each named tensor: ``fc`` for Linear weights where given, else ``conv``."""
    params = dict(model.named_parameters())
    return {n: (fc if fc is not None and params[n].dim() == 2 else conv) for n in names}


def mask_shape(weight: torch.Tensor, granularity: Granularity) -> tuple[int, ...]:
    keep = {"element": 4, "row": 3, "kernel": 2}[granularity]
    return tuple(weight.shape) if weight.dim() <= 2 else tuple(weight.shape[:keep])


def active_count(n: int, sparsity: float) -> int:
    """Entries switched on in a tensor of ``n`` entries at ``sparsity`` (the original's rounding)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return max(1, int((1.0 - sparsity) * n + 0.1))


def initial_masks(
    model: nn.Module,
    names: Sequence[str],
    sparsity: float | Mapping[str, float],
    generator: torch.Generator,
    granularity: Granularity = "element",
) -> dict[str, torch.Tensor]:
    """Uniform random masks of the entry shape (:func:`mask_shape`), one per named weight."""
    params = dict(model.named_parameters())
    out = {}
    for name in names:
        s = sparsity[name] if isinstance(sparsity, Mapping) else sparsity
        shape = mask_shape(params[name], granularity)
        n = int(torch.Size(shape).numel())
        on = torch.randperm(n, generator=generator)[: active_count(n, s)]
        m = torch.zeros(n, dtype=torch.bool)
        m[on] = True
        out[name] = m.view(shape)
    return out


def to_mask(model: nn.Module, entry_masks: Mapping[str, torch.Tensor]) -> Mask:
    """The engine's element-wise :class:`Mask` of entry masks of any granularity."""
    params = dict(model.named_parameters())
    return Mask({n: expand(m.to(params[n].device), params[n]).clone() for n, m in entry_masks.items()})
