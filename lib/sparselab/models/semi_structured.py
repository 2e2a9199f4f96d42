"""2:4 Linear layers converted for inference with ``torch.sparse.to_sparse_semi_structured``.

The sparse tensor cores (CUDA, compute capability 8.0 or newer) multiply a 2:4 weight at half its
MACs. :func:`to_semi_structured` replaces the weight of every Linear layer that is 2:4 (along
``in_features``, :mod:`sparselab.sparsity.nm`) by a compressed semi-structured tensor, in place,
for inference only (the new weights do not train). Everything else stays dense, and the report
says why for each layer:

- convolutions: PyTorch has no semi-structured convolution kernel, so they run dense even when
  their masks are 2:4 (count their FLOPs as dense: :func:`sparselab.metrics.complexity.flops_nm`);
- Linear layers that are not 2:4, or whose shape or dtype the kernel does not take (CUTLASS for
  float32: both dimensions multiples of 32; cuSPARSELt for float16/bfloat16: multiples of 16).

Where the kernel cannot run (CPU, older GPU, a build without it) nothing is converted and the
report says why; ``require=True`` raises :class:`SemiStructuredUnavailable` instead.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.sparse import SparseSemiStructuredTensor

from ..sparsity.nm import is_nm

__all__ = ["SemiStructuredReport", "SemiStructuredUnavailable", "semi_structured_support", "to_semi_structured"]


class SemiStructuredUnavailable(RuntimeError):
    """The semi-structured sparse kernel cannot run here."""


@dataclasses.dataclass(frozen=True)
class SemiStructuredReport:
    available: bool
    reason: str  # why the kernel is unavailable ("" when available)
    converted: tuple[str, ...]  # Linear weights now semi-structured
    dense: dict[str, str]  # weight name -> why it stays dense

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"converted": list(self.converted)}


def semi_structured_support(device: torch.device | str) -> str:
    """Why 2:4 kernels cannot run on ``device`` ("" when they can)."""
    device = torch.device(device)
    if not hasattr(torch.sparse, "to_sparse_semi_structured"):
        return f"this PyTorch ({torch.__version__}) has no torch.sparse.to_sparse_semi_structured"
    if device.type != "cuda":
        return f"semi-structured (2:4) sparse kernels need a CUDA device; the model is on {device.type}"
    if not torch.cuda.is_available():
        return "semi-structured (2:4) sparse kernels need CUDA, which is not available"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 8:
        return f"semi-structured (2:4) sparse kernels need compute capability 8.0 or newer, not {major}.{minor}"
    return ""


def _backend(dtype: torch.dtype) -> type[SparseSemiStructuredTensor] | None:
    """The semi-structured tensor class for ``dtype``: cuSPARSELt where it runs, else CUTLASS."""
    cusparselt = torch.sparse.SparseSemiStructuredTensorCUSPARSELT
    if dtype in cusparselt._DTYPE_SHAPE_CONSTRAINTS and torch.backends.cusparselt.is_available():
        return cusparselt
    cutlass = torch.sparse.SparseSemiStructuredTensorCUTLASS
    return cutlass if dtype in cutlass._DTYPE_SHAPE_CONSTRAINTS else None


def _why_dense(weight: torch.Tensor) -> tuple[str, type[SparseSemiStructuredTensor] | None]:
    if not is_nm(weight, 2, 4):
        return "not 2:4 along in_features", None
    backend = _backend(weight.dtype)
    if backend is None:
        return f"no semi-structured kernel for {weight.dtype}", None
    c = backend._DTYPE_SHAPE_CONSTRAINTS[weight.dtype]
    rows, cols = weight.shape
    if rows % c.sparse_min_rows or cols % c.sparse_min_cols or rows < c.sparse_min_rows or cols < c.sparse_min_cols:
        return (
            f"shape {tuple(weight.shape)} is not a multiple of ({c.sparse_min_rows}, {c.sparse_min_cols}) "
            f"({backend.BACKEND}, {weight.dtype})"
        ), None
    return "", backend


@torch.no_grad()
def to_semi_structured(model: nn.Module, *, require: bool = False) -> SemiStructuredReport:
    """Replace the weights of the model's 2:4 Linear layers by semi-structured sparse tensors (in place).

    The model must already hold its pruned weights as zeros (apply its mask first). Returns what
    was converted and why every other prunable layer stays dense.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    reason = semi_structured_support(device)
    if reason and require:
        raise SemiStructuredUnavailable(reason)
    dense: dict[str, str] = {}
    converted: list[str] = []
    for name, module in model.named_modules():
        key = f"{name}.weight"
        if isinstance(module, nn.Conv2d):
            dense[key] = "convolution: no semi-structured sparse kernel in PyTorch, runs dense"
        elif isinstance(module, nn.Linear):
            if reason:
                dense[key] = f"kernel unavailable: {reason}"
                continue
            why, backend = _why_dense(module.weight)
            if backend is None:
                dense[key] = why
                continue
            sparse = backend.from_dense(module.weight.detach().contiguous())
            module.weight = nn.Parameter(sparse, requires_grad=False)
            converted.append(key)
    return SemiStructuredReport(available=not reason, reason=reason, converted=tuple(converted), dense=dense)
