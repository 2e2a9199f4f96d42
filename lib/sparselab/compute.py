"""Device choice, determinism switches and the CUDA-only speed-ups (bf16 autocast, channels_last)."""

from __future__ import annotations

import contextlib
import os
from typing import ContextManager

import torch
from torch import nn

from .config import ComputeHparams


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available; an explicit ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"compute.device is {name!r} but no CUDA device is available; use 'auto' or 'cpu'")
    return device


def configure_determinism(deterministic: bool, compiled: bool = False) -> None:
    """Deterministic kernels and no cuDNN autotuning (autotuning picks kernels by timing).

    ``torch.set_deterministic_debug_mode`` sets the same flag as ``use_deterministic_algorithms``
    but without importing torch's compiler stack (about 2 s per job); the compiler's own
    determinism flag is set only when the model is compiled.
    """
    if deterministic:
        # cuBLAS needs a fixed workspace for deterministic matmuls; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_deterministic_debug_mode("error" if deterministic else "default")
    if compiled:
        torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def uses_cuda_features(device: torch.device, compute: ComputeHparams) -> tuple[bool, bool]:
    """(bf16 autocast, channels_last): both only on CUDA, where they pay off."""
    on_cuda = device.type == "cuda"
    return on_cuda and compute.amp, on_cuda and compute.channels_last


def autocast(device: torch.device, enabled: bool) -> ContextManager:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def prepare_model(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
