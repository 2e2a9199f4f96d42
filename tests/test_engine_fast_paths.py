"""The engine's CUDA speed paths, checked on CPU (issue 16, points 2-3): SGD's multi-tensor and
fused kernels compute the same update as the per-parameter loop, the captured (compiled) step
trains like the eager one, and the batch prefetcher is a plain pass-through off CUDA."""

from __future__ import annotations

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
    mask = Mask({n: torch.rand(p.shape, generator=g) > 0.7 for n, p in model.named_parameters() if n in names}).bind(model)
    mask.enforce()
    params = [p for p in model.parameters()]
    opt = torch.optim.SGD(
        [{"params": [p for p in params if p.dim() > 1], "weight_decay": 5e-4},
         {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}],
        lr=0.1, momentum=0.9, nesterov=True, **kernel,
    )  # fmt: skip
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
