"""Model size and cost: parameters (all and alive), FLOPs of one forward pass, compression ratio.

FLOPs come from ``torch.utils.flop_counter`` (a multiply-add counts 2, so convolutions and
matmuls give twice the multiply-accumulates that ptflops, used by Lubana & Dick, reports; ``macs``
is given too). Filters that can only be masked (a ResNet's residual-stream producers, see
:mod:`sparselab.structured.removal`) are still computed by the full-width module, so ``flops``
counts them as the original code did; ``flops_alive`` leaves out their dead output rows, what a
kernel that skips zero filters would cost. The compression ratio is by parameters, dense over
alive (never by file size, which the original used and which counts masked filters as present).

``flops_sparse`` is ShrinkBench's theoretical count (Blalock et al., MLSys 2020): every Linear and
Conv2d weight a mask holds at zero saves its multiply-adds at every output position, as if a kernel
skipped each zero weight; ``theoretical_speedup`` is dense FLOPs over that. No dense-hardware kernel
realises it for unstructured masks: measured latency (``bench/speedup.py``) is the honest column.

``flops_nm`` counts what N:M kernels execute: a Linear layer whose mask is N:M along its inputs
costs N/M of its dense FLOPs (2:4: half, what ``torch.sparse.to_sparse_semi_structured`` runs);
convolutions count dense whatever their masks, since no kernel executes them sparsely.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..sparsity.mask import Mask
from ..sparsity.nm import is_nm

__all__ = ["Complexity", "complexity", "count_flops", "flops_nm", "flops_sparse", "theoretical_speedup"]


@dataclasses.dataclass(frozen=True)
class Complexity:
    params: int  # every parameter of the modules
    params_alive: int  # minus the entries a mask holds at zero
    flops: int  # one forward pass at batch 1, as computed
    flops_alive: int  # minus the dead output rows of masked convolutions

    @property
    def macs(self) -> int:
        return self.flops // 2

    def compression(self, dense_params: int) -> float:
        """Dense parameters over alive parameters (1.0 = nothing removed)."""
        return dense_params / self.params_alive if self.params_alive else float("inf")

    def to_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "macs": self.macs}


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one eval-mode forward pass at batch size 1 (the model's mode is restored)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def _dead_conv_flops(model: nn.Module, input_shape: Sequence[int], mask: Mask) -> int:
    """FLOPs spent on output filters a mask holds at zero (whole conv rows)."""
    dead_rows: dict[str, int] = {}
    convs: dict[str, nn.Conv2d] = {}
    for name, m in model.named_modules():
        key = f"{name}.weight"
        if isinstance(m, nn.Conv2d) and key in mask:
            rows = mask[key].reshape(m.out_channels, -1).any(dim=1)
            if (~rows).any():
                dead_rows[name] = int((~rows).sum())
                convs[name] = m
    if not dead_rows:
        return 0
    spatial: dict[str, int] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: spatial.__setitem__(name, out.shape[-2] * out.shape[-1])
        )
        for name in dead_rows
    ]
    try:
        count_flops(model, input_shape)  # runs the forward pass that fills ``spatial``
    finally:
        for h in hooks:
            h.remove()
    total = 0
    for name, dead in dead_rows.items():
        m = convs[name]
        per_row = 2 * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] * spatial[name]
        total += dead * per_row
    return total


def complexity(model: nn.Module, input_shape: Sequence[int], mask: Mask | None = None) -> Complexity:
    """Parameters and FLOPs of ``model`` (with ``mask``'s zeros counted as removed for *_alive)."""
    params = sum(p.numel() for p in model.parameters())
    masked_out = sum(int((~mask[n]).sum()) for n in mask) if mask is not None else 0
    flops = count_flops(model, input_shape)
    dead = _dead_conv_flops(model, input_shape, mask) if mask is not None else 0
    return Complexity(params=params, params_alive=params - masked_out, flops=flops, flops_alive=flops - dead)


def flops_nm(model: nn.Module, input_shape: Sequence[int], mask: Mask, n: int = 2, m: int = 4) -> int:
    """FLOPs of one forward pass (batch 1) where the Linear layers whose mask is N:M run at N/M of
    their dense cost; everything else (convolutions included, N:M or not) counts dense."""
    sparse_linears = {
        name: mod
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and f"{name}.weight" in mask and is_nm(mask[f"{name}.weight"], n, m)
    }
    rows: dict[str, int] = {}
    hooks = [
        mod.register_forward_hook(
            lambda mod, inp, _out, name=name: rows.__setitem__(name, inp[0].numel() // mod.in_features)
        )
        for name, mod in sparse_linears.items()
    ]
    try:
        flops = count_flops(model, input_shape)
    finally:
        for h in hooks:
            h.remove()
    saved = 0
    for name, mod in sparse_linears.items():
        dense = 2 * rows[name] * mod.in_features * mod.out_features
        saved += dense - dense * n // m
    return flops - saved


def _positions(model: nn.Module, input_shape: Sequence[int], names: Sequence[str]) -> dict[str, int]:
    """Output positions per input row of the named Linear/Conv2d modules in one batch-1 forward
    pass: a conv's output H·W, a Linear's rows (leading dims of its input)."""
    positions: dict[str, int] = {}

    def hook(name: str, mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        if isinstance(mod, nn.Linear):
            positions[name] = inp[0].numel() // mod.in_features
        else:
            positions[name] = out.shape[-2] * out.shape[-1]

    hooks = [
        model.get_submodule(n).register_forward_hook(lambda mod, inp, out, n=n: hook(n, mod, inp, out)) for n in names
    ]
    try:
        count_flops(model, input_shape)
    finally:
        for h in hooks:
            h.remove()
    return positions


def flops_sparse(model: nn.Module, input_shape: Sequence[int], mask: Mask | None) -> int:
    """FLOPs of one forward pass (batch 1) with every masked-out Linear/Conv2d weight skipped:
    2 FLOPs per zero weight and output position fewer than :func:`count_flops` (module docstring)."""
    flops = count_flops(model, input_shape)
    if mask is None:
        return flops
    zeros: dict[str, int] = {}
    for name, mod in model.named_modules():
        key = f"{name}.weight"
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and key in mask:
            dead = int((~mask[key]).sum())
            if dead:
                zeros[name] = dead
    if not zeros:
        return flops
    positions = _positions(model, input_shape, list(zeros))
    return flops - sum(2 * dead * positions[n] for n, dead in zeros.items())


def theoretical_speedup(dense_flops: int, flops: int) -> float:
    """Dense FLOPs over remaining FLOPs (ShrinkBench's theoretical speed-up; 1.0 = none)."""
    if flops <= 0:
        raise ValueError(f"remaining FLOPs must be positive, got {flops}")
    return dense_flops / flops
