"""The engine's CUDA speed paths, checked on CPU (issue 16, points 2-3): SGD's multi-tensor and
fused kernels compute the same update as the per-parameter loop, the captured (compiled) step
trains like the eager one, and the batch prefetcher is a plain pass-through off CUDA."""

from __future__ import annotations

import os
import types

import pytest
import torch
from torch import nn

from sparselab.config import OptimizerHparams
from sparselab.models import build_model
from sparselab.sparsity.mask import Mask
from sparselab.train import optim
from sparselab.train.optim import build_optimizer, sgd_kernel


def lenet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("lenet300_100", 10, (1, 8, 8), hidden=[32, 16], batch_norm=True)


def _fake(cuda: bool, floating: bool = True) -> types.SimpleNamespace:
    return types.SimpleNamespace(is_cuda=cuda, is_floating_point=lambda: floating)


# ----------------------------------------------------------------------------- SGD kernels
def test_sgd_kernel_fused_on_cuda_foreach_without_fused_and_the_default_loop_on_cpu(monkeypatch) -> None:
    assert sgd_kernel([_fake(False), _fake(False)]) == {}  # CPU: today's per-parameter loop
    assert sgd_kernel([_fake(True), _fake(False)]) == {}  # mixed devices: torch's default
    monkeypatch.setattr(optim, "_SGD_HAS_FUSED", True)
    assert sgd_kernel([_fake(True), _fake(True)]) == {"fused": True}
    assert sgd_kernel([_fake(True), _fake(True, floating=False)]) == {"foreach": True}
    monkeypatch.setattr(optim, "_SGD_HAS_FUSED", False)  # an older torch
    assert sgd_kernel([_fake(True)]) == {"foreach": True}


def test_cpu_keeps_the_per_parameter_loop() -> None:
    opt = build_optimizer(lenet(), OptimizerHparams(weight_decay=5e-4))
    assert not opt.defaults.get("foreach") and not opt.defaults.get("fused")


def _masked_steps(**kernel: bool) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """Ten SGD steps (nesterov, weight decay on weights only) with masked gradients and weights."""
    model = lenet()
    names = [n for n, p in model.named_parameters() if p.dim() == 2]
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=g) > 0.7 for n, p in model.named_parameters() if n in names}).bind(
        model
    )
    mask.enforce()
    params = [p for p in model.parameters()]
    opt = torch.optim.SGD(
        [
            {"params": [p for p in params if p.dim() > 1], "weight_decay": 5e-4},
            {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
        ],
        lr=0.1,
        momentum=0.9,
        nesterov=True,
        **kernel,
    )
    x, y = torch.randn(10, 64, 1, 8, 8, generator=g), torch.randint(0, 10, (10, 64), generator=g)
    for i in range(10):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        mask.mask_gradients()
        opt.step()
        mask.enforce()
    bufs = [opt.state[p]["momentum_buffer"] for p in params]
    return {k: v.clone() for k, v in model.state_dict().items()}, bufs


@pytest.mark.parametrize("kernel", ["foreach", "fused"])
def test_multi_tensor_and_fused_sgd_equal_the_loop_with_masks(kernel: str) -> None:
    if kernel == "fused" and not optim._SGD_HAS_FUSED:
        pytest.skip("this torch has no fused SGD")
    try:
        got, got_bufs = _masked_steps(**{kernel: True})
    except RuntimeError as e:  # fused SGD on CPU is newer than fused SGD on CUDA
        pytest.skip(f"{kernel} SGD does not run on CPU here: {e}")
    want, want_bufs = _masked_steps(foreach=False)
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=k)
    for a, b in zip(got_bufs, want_bufs):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- the captured step
def test_capture_none_auto_graphs(monkeypatch) -> None:
    from sparselab.compute import captures
    from sparselab.config import ComputeHparams

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not captures(cuda, ComputeHparams(), distributed=False)  # default: none
    assert captures(cuda, ComputeHparams(capture="auto"), distributed=False)
    assert not captures(cpu, ComputeHparams(capture="auto"), distributed=False)
    assert not captures(cuda, ComputeHparams(capture="auto"), distributed=True)
    assert captures(cpu, ComputeHparams(capture="graphs"), distributed=False)
    with pytest.raises(ValueError, match="single-process"):
        captures(cuda, ComputeHparams(capture="graphs"), distributed=True)


def _has_cxx() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.compile
@pytest.mark.skipif(
    os.environ.get("SPARSELAB_COMPILE_TEST") != "1",
    reason="compiles with inductor (20-60 s on 2 cores): set SPARSELAB_COMPILE_TEST=1",
)
@pytest.mark.skipif(not _has_cxx(), reason="inductor on CPU needs a C++ compiler")
def test_the_captured_step_trains_like_the_eager_one_with_a_mask_and_batchnorm(monkeypatch) -> None:
    """Full batches through the compiled model (inductor on CPU), the odd last batch eagerly; BN
    switches to eval mode for the per-epoch evaluation and back; the mask holds."""
    from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
    from sparselab.data import build_splits
    from sparselab.dst.layers import initial_masks, sparse_tensors
    from sparselab.train import engine

    splits = build_splits(DataHparams(source="digits", val_fraction=0.1))
    hp = TrainHparams.from_dict(
        {
            "epochs": 2,
            "batch_size": 256,
            "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"kind": "cosine"},
        }
    )
    assert len(splits.train) % hp.batch_size, "the test needs an odd-sized last batch"
    sizes: list[int] = []
    real = engine.capture_forward

    def counted(model: nn.Module):  # type: ignore[no-untyped-def]
        compiled = real(model)

        def forward(x: torch.Tensor) -> torch.Tensor:
            sizes.append(len(x))
            return compiled(x)

        return forward

    monkeypatch.setattr(engine, "capture_forward", counted)

    def run(capture: str):  # type: ignore[no-untyped-def]
        model = lenet()
        masks = initial_masks(model, sparse_tensors(model, "lenet300_100"), 0.8, torch.Generator().manual_seed(0))
        compute = ComputeHparams(device="cpu", progress="lines", capture=capture)
        return engine.train(model, splits, hp, seeds=SeedHparams(), compute=compute, mask=Mask(masks)), masks

    eager, masks = run("none")
    assert sizes == []
    captured, _ = run("graphs")
    steps = -(-len(splits.train) // hp.batch_size)
    assert sizes == [hp.batch_size] * ((steps - 1) * hp.epochs)  # every full batch, never the last one
    for k, v in eager.model.state_dict().items():
        torch.testing.assert_close(captured.model.state_dict()[k], v, rtol=1e-4, atol=1e-5, msg=k)
    params = dict(captured.model.named_parameters())
    assert all((params[n][~m] == 0).all() for n, m in masks.items())
    assert captured.history[-1]["val_top1"] == pytest.approx(eager.history[-1]["val_top1"], abs=0.02)


# ----------------------------------------------------------------------------- prefetching
class _Loader:
    """Batches ``(x, y)`` that record how far they were pulled."""

    def __init__(self, n: int) -> None:
        self.batches = [(torch.randn(4, 1, 2, 2), torch.arange(4) + 10 * i) for i in range(n)]
        self.pulled = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for b in self.batches:
            self.pulled += 1
            yield b


def test_the_prefetcher_is_a_lazy_pass_through_off_cuda() -> None:
    from sparselab.train.prefetch import DevicePrefetcher

    loader = _Loader(3)
    batches = DevicePrefetcher(loader, torch.device("cpu"))
    assert len(batches) == 3
    it = iter(batches)
    x, y = next(it)
    assert loader.pulled == 1  # nothing fetched ahead on CPU
    assert x is loader.batches[0][0] and y is loader.batches[0][1]  # no copies
    rest = list(it)
    assert [b[1][0].item() for b in rest] == [10, 20]  # in order, each once
    assert all(a is b[0] for (a, _), b in zip(rest, loader.batches[1:]))
    again = list(DevicePrefetcher(loader, "cpu", channels_last=True))  # a fresh pass, channels_last applied
    assert len(again) == 3 and all(x.is_contiguous(memory_format=torch.channels_last) for x, _ in again)


# ----------------------------------------------------------------------------- resume across machines
def test_a_state_saved_with_fused_sgd_resumes_with_this_machines_kernel(tmp_path) -> None:
    """Optimizer state dicts carry ``fused``/``foreach`` in their groups: a resume file written on a
    GPU (fused SGD) must not switch a CPU run to another kernel (and away from bitwise resume)."""
    from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
    from sparselab.data import build_splits
    from sparselab.train.callbacks import Callback
    from sparselab.train.engine import train
    from sparselab.train.state import RESUME_FILE, TrainState

    class Crash(Callback):
        def on_step_end(self, ctx) -> None:  # type: ignore[no-untyped-def]
            if ctx.epoch == 2:
                raise KeyboardInterrupt("simulated kill")

    splits = build_splits(DataHparams(source="digits", val_fraction=0.0))
    hp = TrainHparams.from_dict(
        {
            "epochs": 2,
            "batch_size": 128,
            "optimizer": {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
            "schedule": {"kind": "cosine"},
        }
    )
    cpu = ComputeHparams(device="cpu", progress="lines")
    whole = train(lenet(), splits, hp, seeds=SeedHparams(), compute=cpu)
    with pytest.raises(KeyboardInterrupt):
        train(lenet(), splits, hp, seeds=SeedHparams(), compute=cpu, callbacks=[Crash()], state_dir=tmp_path)
    state = TrainState.load(tmp_path / RESUME_FILE)
    for group in state.optimizer["param_groups"]:
        group["fused"], group["foreach"] = True, None  # as fused SGD on CUDA writes it
    state.save(tmp_path / RESUME_FILE)
    resumed = train(lenet(), splits, hp, seeds=SeedHparams(), compute=cpu, state_dir=tmp_path)
    assert resumed.resumed_from_epoch == 1
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
