"""Device choice, determinism switches and the CUDA-only speed-ups (bf16 autocast, channels_last,
the captured training step).

Every job that moves models or batches to a device does it through here: :func:`place` turns a
job's ``compute`` settings into a :class:`Placement` once (device chosen, determinism set), and
the job moves its model (:meth:`Placement.model`) and batches (:meth:`Placement.batch`) with it and
runs plain predictions under :meth:`Placement.autocast`. ``tests/test_compute.py`` fails on a
device set up by hand anywhere else in the library.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

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


def autocast(device: torch.device, enabled: bool) -> AbstractContextManager:
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


def captures(device: torch.device, compute: ComputeHparams, distributed: bool) -> bool:
    """Whether the training step's forward and backward run captured (:func:`capture_forward`).

    ``auto`` captures on CUDA in single-process training only: that is where launches dominate a
    small net's step, and CUDA graphs with DDP's collectives are not something this engine
    relies on. ``graphs`` asks for it everywhere (on CPU it is plain inductor: how the tests run the
    path) and is an error with several processes.
    """
    if compute.capture == "none":
        return False
    if distributed:
        if compute.capture == "graphs":
            raise ValueError("compute.capture: graphs is single-process only; use auto (off with several GPUs) or none")
        return False
    return compute.capture == "graphs" or device.type == "cuda"


def capture_forward(model: nn.Module) -> nn.Module:
    """The model compiled for the training step: on CUDA its forward and backward replay as CUDA
    graphs (cudagraph trees, ``mode="reduce-overhead"``), one launch each instead of hundreds.

    Correct under the engine's mask and rewiring events because they change parameters only in
    place (the graphs read the same addresses); batches are copied into the graph's own input
    buffer on every replay. ``dynamic=False``: one shape, the full batch (the engine runs an
    odd-sized last batch eagerly instead of compiling a second graph).
    """
    return torch.compile(model, mode="reduce-overhead", dynamic=False)  # type: ignore[return-value]


def begin_captured_step(device: torch.device) -> None:
    """Mark a new training step for cudagraph trees: the previous step's graph outputs (logits,
    saved activations, gradients) are dead from here and their memory is reused."""
    if device.type == "cuda":
        mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)  # torch >= 2.1
        if mark is not None:
            mark()


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a job computes and with which CUDA speed-ups (both off on CPU), built by :func:`place`.

    ``amp`` (bf16 autocast) is for forward passes that are plain predictions (training,
    evaluation, feature extraction): :meth:`autocast`. Exact quantities (path-norms, margins,
    bounds, importance scores) never run under it and stay in float32/float64."""

    device: torch.device = torch.device("cpu")
    amp: bool = False
    channels_last: bool = False
    num_workers: int | str = 0  # compute.num_workers: DataLoader workers for image folders (int or "auto")
    decode_on_device: bool = False  # compute.decode: device: image folders decoded on ``device``

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` moved to the device (in place, as ``Module.to``), channels_last where on."""
        return prepare_model(model, self.device, self.channels_last)

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """An input batch on the device (non-blocking; channels_last for images where on)."""
        return to_device(x, self.device, self.channels_last)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return y.to(self.device, non_blocking=True)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast where ``amp`` is on; nothing otherwise."""
        return autocast(self.device, self.amp)

    def loader_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`sparselab.data.make_loader` for this placement: in-memory data
        held and batched on the device, image folders read by ``num_workers`` workers into pinned
        memory (CUDA) or decoded on the device (``compute.decode: device``)."""
        return {
            "device": self.device,
            "num_workers": self.num_workers,
            "pin_memory": self.device.type == "cuda",
            "decode_device": self.device if self.decode_on_device else None,
        }

    def options(self) -> dict[str, bool]:
        """``amp`` and ``channels_last`` as the keyword arguments of the evaluation helpers
        (:func:`sparselab.metrics.classification.evaluate` and the like)."""
        return {"amp": self.amp, "channels_last": self.channels_last}


def place(
    compute: ComputeHparams,
    *,
    compiled: bool = False,
    local: Callable[[torch.device], torch.device] | None = None,
) -> Placement:
    """The job's :class:`Placement` from its ``compute`` settings: the device (``local`` maps it
    to this process's device under data parallelism), determinism switched as asked, and bf16
    autocast and channels_last as asked where the device is CUDA."""
    device = select_device(compute.device)
    if local is not None:
        device = local(device)
    configure_determinism(compute.deterministic, compiled=compiled)
    amp, channels_last = uses_cuda_features(device, compute)
    return Placement(device, amp, channels_last, compute.num_workers, compute.decode == "device")
