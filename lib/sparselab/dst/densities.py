"""Per-layer densities of a sparse network at a global density: uniform and Erdős–Rényi-Kernel (ERK).

ERK (Evci et al., ICML 2020, §3, after Mocanu et al.'s Erdős–Rényi): the density of a tensor of
shape (d_1, ..., d_k) is ``eps * (sum_i d_i / prod_i d_i) ** power`` (conv: (out + in + kh + kw) /
(out·in·kh·kw); Linear: (out + in) / (out·in)), with the one ``eps`` that makes the active count
``sum_l density_l · n_l`` equal ``density · sum_l n_l``. Where that gives a layer density above 1,
the layer with the largest raw score is made dense, ``eps`` is solved again over the rest with the
dense layers' entries taken out of the budget, and so on until every density is at most 1 (RigL's
``get_sparsities``, one layer at a time, ties all at once).

Layers kept dense (``dense``: e.g. the first layer, as in RigL's ImageNet recipe) are outside the
budget: the global density applies to the other layers (RigL ignores custom-sparsity layers in the
ERK solve the same way). Uniform gives every other layer the global density.

The densities are floats; :func:`sparsities` turns them into the ``sparsity`` mapping that
:func:`.layers.initial_masks` takes (whose rounding, ``int(d·n + 0.1)`` entries, at least one,
decides the exact counts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from torch import nn

__all__ = ["DensityKind", "erk_densities", "uniform_densities", "layer_densities_for", "sparsities"]

DensityKind = Literal["uniform", "erk"]


def _check_density(density: float) -> None:
    if not 0.0 < density <= 1.0:
        raise ValueError(f"global density must be in (0, 1], got {density}")


def uniform_densities(
    shapes: Mapping[str, Sequence[int]], density: float, dense: Sequence[str] = ()
) -> dict[str, float]:
    """Every tensor at ``density``, those named in ``dense`` at 1."""
    _check_density(density)
    return {n: 1.0 if n in dense else float(density) for n in shapes}


def erk_densities(
    shapes: Mapping[str, Sequence[int]], density: float, dense: Sequence[str] = (), power: float = 1.0
) -> dict[str, float]:
    """ERK densities (module docstring) by parameter name, in the order of ``shapes``."""
    _check_density(density)
    unknown = [n for n in dense if n not in shapes]
    if unknown:
        raise KeyError(f"dense layers {unknown} are not among the sparse tensors")
    numel = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: (sum(s) / math.prod(s)) ** power for n, s in shapes.items()}
    forced = set(dense)
    made_dense: set[str] = set()
    while True:
        sparse = [n for n in shapes if n not in forced and n not in made_dense]
        if not sparse:
            break
        budget = density * sum(numel[n] for n in shapes if n not in forced) - sum(numel[n] for n in made_dense)
        eps = budget / sum(raw[n] * numel[n] for n in sparse)
        top = max(raw[n] for n in sparse)
        if eps * top <= 1.0:
            break
        made_dense.update(n for n in sparse if raw[n] == top)
    out = {}
    for n in shapes:
        out[n] = 1.0 if n in forced or n in made_dense else float(eps * raw[n])
    return out


def layer_densities_for(
    model: nn.Module,
    names: Sequence[str],
    density: float,
    kind: DensityKind = "erk",
    dense_first: bool = False,
    power: float = 1.0,
) -> dict[str, float]:
    """The densities of the named weights of ``model``; ``dense_first`` keeps ``names[0]`` dense."""
    params = dict(model.named_parameters())
    shapes = {n: tuple(params[n].shape) for n in names}
    dense = [names[0]] if dense_first and names else []
    if kind == "erk":
        return erk_densities(shapes, density, dense, power)
    if kind == "uniform":
        return uniform_densities(shapes, density, dense)
    raise ValueError(f"layer densities must be 'uniform' or 'erk', got {kind!r}")


def sparsities(densities: Mapping[str, float]) -> dict[str, float]:
    """``1 - density`` per tensor, for :func:`.layers.initial_masks`."""
    return {n: 1.0 - d for n, d in densities.items()}
