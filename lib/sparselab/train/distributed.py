"""Data-parallel training across processes: torchrun launch, DDP wrapping, synchronised BatchNorm.

A training job with ``gpu > 1`` re-runs its own script under ``torchrun`` (one process per
device; NCCL on GPUs, gloo on CPU). Every process builds the same data, model and callbacks; the
engine shards each global batch over the processes, wraps the model in DDP and reduces the
metrics. The design goal is that N processes end with the same weights as one process with the
same global batch: the loss is a sum over the global batch scaled so DDP's gradient average is
the global mean, BatchNorm statistics are computed over the global batch, and mask enforcement
and pruning callbacks run identically on every process (their random choices come from seeded
generators, so every process makes the same ones).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..launch import World

log = logging.getLogger("sparselab")


def current_world() -> World:
    """The process group's world once initialised, else what the environment says."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), int(os.environ.get("LOCAL_RANK", dist.get_rank())), dist.get_world_size())
    return World.from_env()


def init_process_group(device: torch.device) -> World:
    """Join the torchrun process group (once): NCCL when training on CUDA, gloo otherwise."""
    world = World.from_env()
    if not world.distributed or dist.is_initialized():
        return current_world()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    log.info("process %d of %d joined the %s process group", world.rank, world.size, backend)
    return world


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the CUDA device of its local rank."""
    world = World.from_env()
    if device.type == "cuda" and world.distributed and device.index is None:
        if torch.cuda.device_count() < world.size:
            raise RuntimeError(
                f"{world.size} training processes but {torch.cuda.device_count()} visible CUDA device(s): "
                "lower the config's resources.gpus or make more devices visible"
            )
        return torch.device("cuda", world.local_rank)
    return device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes (in place, also returned); a no-op in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_min(t: torch.Tensor) -> torch.Tensor:
    """Elementwise minimum over processes (in place, also returned); a no-op in a single process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate a 1-D tensor over processes in rank order (shards may differ in length)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return t
    size = torch.tensor([t.numel()], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, dtype=t.dtype, device=t.device)
    padded[: t.numel()] = t
    parts = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)])


# ---------------------------------------------------------------- BatchNorm over the global batch
class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: every process's loss
    depends on every process's input through the sum."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(t.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(grad.clone())


def differentiable_sum(t: torch.Tensor) -> torch.Tensor:
    return _SumOverProcesses.apply(t)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover the global batch of all processes, on any device.

    ``torch.nn.SyncBatchNorm`` only runs on GPUs; this one reduces with differentiable
    all-reduces (two passes: the mean, then the centred second moment, as a single process would
    compute them), so gloo/CPU training matches one process too. It shares its parameters and
    buffers with the module it stands in for, so swapping back afterwards loses nothing.
    """

    def __init__(self, original: nn.modules.batchnorm._BatchNorm) -> None:
        nn.Module.__init__(self)
        self.num_features, self.eps, self.momentum = original.num_features, original.eps, original.momentum
        self.affine, self.track_running_stats = original.affine, original.track_running_stats
        self.weight, self.bias = original.weight, original.bias
        self.running_mean, self.running_var = original.running_mean, original.running_var
        self.num_batches_tracked = original.num_batches_tracked
        self.training = original.training

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and self.track_running_stats:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        c = x.size(1)
        local = torch.cat([x.sum(dims, dtype=torch.float64), x.new_full((1,), x.numel() / c, dtype=torch.float64)])
        reduced = differentiable_sum(local)  # the per-channel sums and the sample count, in one call
        n = reduced[c]
        mean = reduced[:c] / n
        centred = x - mean.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
        var = differentiable_sum((centred * centred).sum(dims, dtype=torch.float64)) / n
        if self.track_running_stats and self.training:
            running_mean, running_var, tracked = self.running_mean, self.running_var, self.num_batches_tracked
            if running_mean is None or running_var is None or tracked is None:
                raise RuntimeError("GlobalBatchNorm: track_running_stats is set but the running buffers are missing")
            with torch.no_grad():
                tracked.add_(1)
                m = 1.0 / float(tracked) if self.momentum is None else self.momentum
                unbiased = var * n / (n - 1).clamp(min=1)
                running_mean.mul_(1 - m).add_(mean.to(running_mean.dtype), alpha=m)
                running_var.mul_(1 - m).add_(unbiased.to(running_var.dtype), alpha=m)
        shape = (1, -1, *([1] * (x.dim() - 2)))
        out = centred * torch.rsqrt(var.to(x.dtype) + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


@contextlib.contextmanager
def global_batchnorm(model: nn.Module, device: torch.device) -> Iterator[nn.Module]:
    """Swap every BatchNorm for one over the global batch while training, then swap the originals
    back (the substitutes share parameters and buffers, so the trained values stay)."""
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
                stand_in = _synced(child, device)
                setattr(parent, name, stand_in)
                swapped.append((parent, name, child))
    try:
        yield model
    finally:
        for parent, name, original in swapped:
            original.train(getattr(parent, name).training)
            setattr(parent, name, original)


def _synced(bn: nn.modules.batchnorm._BatchNorm, device: torch.device) -> nn.Module:
    if device.type != "cuda":
        return GlobalBatchNorm(bn)
    sync = nn.SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var, sync.num_batches_tracked = (
        bn.running_mean,
        bn.running_var,
        bn.num_batches_tracked,
    )
    sync.train(bn.training)
    return sync


def buffer_sync(every_forward: bool) -> dict[str, Any]:
    """DDP's keyword for syncing buffers (BatchNorm statistics) from rank 0 at every forward:
    ``forward_sync_buffers`` in recent torch, ``broadcast_buffers`` before."""
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers": every_forward}
