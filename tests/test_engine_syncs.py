"""No host syncs inside the training step between events (issue 16, point 2).

On a GPU every ``.item()``, ``bool(t)``, ``.cpu()``, ``nonzero`` ... in the step makes the host wait
for the device, so a launch-bound small net can no longer queue the next step's kernels. This
counts them on CPU: torch functions that read a tensor's values on the host (a
``TorchFunctionMode``) and the aten ops that do (a ``TorchDispatchMode``: ``_local_scalar_dense``
is what every scalar read-back ends in), during each step's body (fetching the batch excluded:
that is the loader's business), for every per-step mechanism of the studies. Steps where a
mechanism fires (a DSR/SET reallocation) may read back; every other step must not.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from sparselab.config import ComputeHparams, DataHparams, GmpRamp, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.dst.acdc import ACDC
from sparselab.dst.callbacks import DSR, SET, StaticSparse, StepSchedule
from sparselab.dst.gmp import GradualPruning, GradualSpec
from sparselab.dst.layers import initial_masks, sparse_tensors
from sparselab.dst.penalties import L1Penalty
from sparselab.models import build_model
from sparselab.sparsity.mask import Mask
from sparselab.train import engine

COMPUTE = ComputeHparams(device="cpu", progress="lines")
DATA = DataHparams(source="digits", val_fraction=0.1)

# Tensor methods that read values back to the host (on CUDA: a device sync).
READBACK_FUNCS = {
    "item",
    "tolist",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "cpu",
    "numpy",
    "nonzero",
    "__format__",
    "__repr__",
    "__str__",
    "any",
    "all",
}
# aten ops that need the values on the host (or a data-dependent output shape).
READBACK_OPS = {
    "_local_scalar_dense",
    "nonzero",
    "is_nonzero",
    "masked_select",
    "unique",
    "_unique2",
    "unique_consecutive",
    "repeat_interleave",
    "item",
}


class _Readbacks(TorchFunctionMode):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log, self.on = log, False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if self.on and name in READBACK_FUNCS:
            # any()/all() return tensors: only a host read-back when the caller asked for a bool
            if name not in ("any", "all"):
                self.log.append(name)
        return func(*args, **(kwargs or {}))


class _ReadbackOps(TorchDispatchMode):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log, self.on = log, False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if self.on and func.overloadpacket.__name__ in READBACK_OPS:
            self.log.append(f"aten.{func.overloadpacket.__name__}")
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def readbacks_per_step(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """Yields a list that gets one entry per training step: the host read-backs of its body."""
    per_step: list[list[str]] = []
    log: list[str] = []
    funcs, ops = _Readbacks(log), _ReadbackOps(log)
    real = engine.progress.batches

    def counted(iterable, total, desc, bar):  # type: ignore[no-untyped-def]
        it = iter(real(iterable, total, desc, bar))
        while True:
            try:
                batch = next(it)  # the loader's own work is not the step's
            except StopIteration:
                return
            log.clear()
            funcs.on = ops.on = True
            try:
                yield batch
            finally:  # the step's body ran between the yield and the next fetch
                funcs.on = ops.on = False
                per_step.append(list(log))

    monkeypatch.setattr(engine.progress, "batches", counted)
    with funcs, ops:
        yield per_step


def lenet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("lenet300_100", 10, (1, 8, 8), hidden=[32, 16], batch_norm=True)


def recipe(epochs: int = 2, **kw) -> TrainHparams:  # type: ignore[no-untyped-def]
    return TrainHparams.from_dict(
        {
            "epochs": epochs,
            "batch_size": 128,
            "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"kind": "cosine", "warmup_epochs": 1},
            **kw,
        }
    )


def masks_for(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return initial_masks(model, sparse_tensors(model, "lenet300_100"), 0.8, torch.Generator().manual_seed(0))


@functools.cache
def splits():  # type: ignore[no-untyped-def]
    return build_splits(DATA)


def run(monkeypatch: pytest.MonkeyPatch, model: torch.nn.Module, hp: TrainHparams, **kw) -> list[list[str]]:  # type: ignore[no-untyped-def]
    with readbacks_per_step(monkeypatch) as per_step:
        engine.train(model, splits(), hp, seeds=SeedHparams(), compute=COMPUTE, **kw)
    assert per_step, "no training step was counted"
    return per_step


def syncing_steps(per_step: list[list[str]]) -> dict[int, list[str]]:
    """1-based global step -> the read-backs of its body, for every step that had any."""
    return {i + 1: calls for i, calls in enumerate(per_step) if calls}


def test_the_counter_sees_a_read_back_in_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    class Peek(engine.Callback):
        def on_step_end(self, ctx) -> None:  # type: ignore[no-untyped-def]
            if ctx.step == 3:
                next(ctx.model.parameters()).sum().item()

    per_step = run(monkeypatch, lenet(), recipe(epochs=1), callbacks=(Peek(),))
    assert list(syncing_steps(per_step)) == [3]


def test_dense_and_masked_steps_never_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    assert syncing_steps(run(monkeypatch, lenet(), recipe(label_smoothing=0.1, temperature=2.0))) == {}
    model = lenet()
    names = sparse_tensors(model, "lenet300_100")
    masked = run(monkeypatch, model, recipe(), mask=Mask(masks_for(model)), callbacks=(L1Penalty(names, 1e-4),))
    assert syncing_steps(masked) == {}


@pytest.mark.parametrize("method", ["dsr", "set", "static"])
def test_dynamic_sparse_steps_read_back_only_at_reallocations(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    model = lenet()
    masks, period = masks_for(model), 5
    cb = {
        "dsr": lambda: DSR(masks, StepSchedule({0: period}), None, 0, target=20),
        "set": lambda: SET(masks, StepSchedule({0: period}), None, 0, fraction=0.1),
        "static": lambda: StaticSparse(masks),
    }[method]()
    per_step = run(monkeypatch, model, recipe(), callbacks=(cb,))
    events = {s for s in range(1, len(per_step) + 1) if s % period == 0} if method != "static" else set()
    assert set(syncing_steps(per_step)) == events  # a reallocation reads magnitudes back; nothing else does


def test_acdc_and_gmp_steps_never_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both change masks at epoch ends only (compression, decompression, ramp steps)."""
    model = lenet()
    names = sparse_tensors(model, "lenet300_100")
    per_step = run(monkeypatch, model, recipe(epochs=10, batch_size=512), callbacks=(ACDC(names, 0.8, 10),))
    assert syncing_steps(per_step) == {}
    model = lenet()
    spec = GradualSpec(target=0.8, by="threshold", ramp=GmpRamp(start=0, freq=1, end=2))
    gmp = GradualPruning(spec, {n: 0.8 for n in names})
    per_step = run(monkeypatch, model, recipe(epochs=3), mask=Mask.ones(model, names), callbacks=(gmp,))
    assert syncing_steps(per_step) == {}
