"""N:M semi-structured sparsity: masks, SR-STE training, 2:4 conversion for inference, N:M FLOPs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams
from sparselab.data import build_splits
from sparselab.dst.nm import SRSTE
from sparselab.metrics.complexity import count_flops, flops_nm
from sparselab.models import build_model
from sparselab.models.semi_structured import SemiStructuredUnavailable, to_semi_structured
from sparselab.sparsity.mask import Mask
from sparselab.sparsity.nm import is_nm, nm_eligible_parameters, nm_mask, nm_mask_tensor
from sparselab.train.engine import train

T, F = True, False


# ---------------------------------------------------------------------------------------- masks
def test_linear_mask_by_hand_with_ties_broken_by_index() -> None:
    w = torch.tensor(
        [
            [0.1, -0.5, 0.3, 0.2, 1.0, 1.0, 1.0, 1.0],  # all four tied: the first two stay
            [-2.0, 2.0, 0.0, 0.0, 0.0, 3.0, -3.0, 0.5],  # |-2| = |2| tie at the top; |3| = |-3|
        ]
    )
    expected = torch.tensor([[F, T, T, F, T, T, F, F], [T, T, F, F, F, T, T, F]])
    assert torch.equal(nm_mask_tensor(w, 2, 4), expected)
    assert torch.equal(nm_mask_tensor(w, 1, 4), torch.tensor([[F, T, F, F, T, F, F, F], [T, F, F, F, F, T, F, F]]))


def test_conv_groups_run_along_input_channels_at_each_kernel_position() -> None:
    # (out=1, C_in=4, kh=1, kw=2); both kernel positions hold [4, 3, 2, 1] over the input channels.
    w = torch.tensor([4.0, 3.0, 2.0, 1.0]).view(1, 4, 1, 1).repeat(1, 1, 1, 2)
    mask = nm_mask_tensor(w, 2, 4)
    # ASP's layout: channels 0 and 1 stay at both positions (a flattening over C_in*kh*kw would
    # keep channel 0 at both positions, then channel 2 at both).
    assert torch.equal(mask[0, :, 0, 0], torch.tensor([T, T, F, F]))
    assert torch.equal(mask[0, :, 0, 1], torch.tensor([T, T, F, F]))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8), (3, 3)])
def test_every_group_keeps_exactly_n_largest(n: int, m: int) -> None:
    g = torch.Generator().manual_seed(n * 10 + m)
    lin = torch.randn(16, 8 * m, generator=g)
    conv = torch.randn(8, 2 * m, 3, 3, generator=g)
    for w in (lin, conv):
        mask = nm_mask_tensor(w, n, m)
        groups_w = (w.permute(0, 2, 3, 1) if w.dim() == 4 else w).reshape(-1, m).abs()
        groups_k = (mask.permute(0, 2, 3, 1) if w.dim() == 4 else mask).reshape(-1, m)
        assert (groups_k.sum(dim=1) == n).all()
        if n < m:  # magnitude order: every kept entry beats every pruned one of its group
            kept_min = torch.where(groups_k, groups_w, torch.inf).min(dim=1).values
            pruned_max = torch.where(~groups_k, groups_w, -torch.inf).max(dim=1).values
            assert (kept_min > pruned_max).all()
        assert is_nm(mask, n, m) and is_nm(w * mask, n, m)
        if n < m:
            assert not is_nm(w, n, m)


def test_a_layer_whose_input_is_not_a_multiple_of_m_is_refused_by_name() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 10), nn.Linear(10, 4))
    with pytest.raises(ValueError, match=r"0\.weight: input channels .* = 3 is not a multiple of M=4"):
        nm_mask(model)
    with pytest.raises(ValueError, match=r"3\.weight: in_features = 10 is not a multiple of M=4"):
        nm_mask(model, names=["2.weight", "3.weight"])
    assert nm_eligible_parameters(model) == ["2.weight"]
    mask = nm_mask(model, names=nm_eligible_parameters(model))
    assert mask.names() == ["2.weight"] and is_nm(mask["2.weight"], 2, 4)
    with pytest.raises(ValueError, match="1 <= N <= M"):
        nm_mask_tensor(torch.ones(2, 4), 5, 4)


def test_is_nm_counts_nonzeros_per_group() -> None:
    assert is_nm(torch.tensor([[1.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 5.0]]), 2, 4)
    assert not is_nm(torch.tensor([[1.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 5.0]]), 2, 4)
    assert not is_nm(torch.zeros(2, 6), 2, 4)  # 6 is no multiple of 4


def test_an_enforced_nm_mask_keeps_nm_through_optimizer_steps() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    mask = nm_mask(model)
    bound = mask.bind(model)
    bound.enforce()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 16)).square().sum().backward()
        bound.mask_gradients()
        opt.step()
        bound.enforce()
    for name, p in model.named_parameters():
        if name in mask:
            assert is_nm(p, 2, 4) and Mask.from_zeros(model, [name]) == Mask({name: mask[name]})


# ---------------------------------------------------------------------------------------- SR-STE
def _ctx(model: nn.Module, select: str = "last") -> SimpleNamespace:
    ctx = SimpleNamespace(model=model, mask=None, hparams=SimpleNamespace(select=select), step=0)
    ctx.set_mask = lambda mask: setattr(ctx, "mask", mask)
    return ctx


def _sgd_step(cb: SRSTE, ctx: SimpleNamespace, layer: nn.Linear, x: torch.Tensor, lr: float) -> torch.Tensor:
    layer.weight.grad = None
    layer(x).sum().backward()
    cb.on_before_step(ctx)  # type: ignore[arg-type]
    grad = layer.weight.grad.clone()  # type: ignore[union-attr]
    with torch.no_grad():
        layer.weight.sub_(lr * layer.weight.grad)  # type: ignore[operator]
    ctx.step += 1
    cb.on_step_end(ctx)  # type: ignore[arg-type]
    return grad


@pytest.mark.parametrize("period", [1, None])
def test_srste_gradient_and_update_match_the_closed_form(period: int | None) -> None:
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    cb, ctx = SRSTE(["weight"], 2, 4, decay=0.5, period=period), _ctx(layer)
    cb.on_train_start(ctx)  # type: ignore[arg-type]
    assert torch.equal(layer.weight.detach(), torch.tensor([[0.0, -2.0, 3.0, 0.0]]))  # forward sees W * E
    x = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    grad = _sgd_step(cb, ctx, layer, x, lr=1.0)
    # straight-through gradient x (pruned entries too) + lambda * (1 - E) * W
    assert torch.allclose(grad, torch.tensor([[3.0 + 0.5 * 1.0, 0.0, 0.0, 0.5 * 0.5]]))
    dense = torch.tensor([[1.0 - 3.5, -2.0, 3.0, 0.5 - 0.25]])
    assert torch.allclose(cb.dense["weight"], dense)
    if period == 1:  # |-2.5| now beats |-2|: the pruned weight regrew through the STE
        assert torch.equal(cb.masks["weight"], torch.tensor([[T, F, T, F]]))
        assert torch.allclose(layer.weight.detach(), torch.tensor([[-2.5, 0.0, 3.0, 0.0]]))
    else:  # fixed: the mask stays, the pruned weights still learn and decay
        assert torch.equal(cb.masks["weight"], torch.tensor([[F, T, T, F]]))
        assert torch.allclose(layer.weight.detach(), torch.tensor([[0.0, -2.0, 3.0, 0.0]]))
    cb.on_train_end(ctx)  # type: ignore[arg-type]
    assert ctx.mask == cb.mask() and is_nm(layer.weight, 2, 4)


def test_srste_period_and_resume_state() -> None:
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    cb, ctx = SRSTE(["weight"], 2, 4, decay=0.0, period=2), _ctx(layer)
    cb.on_train_start(ctx)  # type: ignore[arg-type]
    x = torch.tensor([[3.0, 0.0, 0.0, 0.0]])
    _sgd_step(cb, ctx, layer, x, lr=1.0)  # step 1: dense [-2, -2, 3, .5]; no re-selection yet
    assert cb.updates == 0 and torch.equal(cb.masks["weight"], torch.tensor([[F, T, T, F]]))
    _sgd_step(cb, ctx, layer, x, lr=1.0)  # step 2: dense [-5, -2, 3, .5]; re-selected
    assert cb.updates == 1 and torch.equal(cb.masks["weight"], torch.tensor([[T, F, T, F]]))
    resumed = SRSTE(["weight"], 2, 4, decay=0.0, period=2)
    resumed.load_state_dict(cb.state_dict())
    resumed.on_train_start(ctx)  # type: ignore[arg-type]  # must not re-read the (masked) model weights
    assert torch.equal(resumed.dense["weight"], torch.tensor([[-5.0, -2.0, 3.0, 0.5]]))
    assert torch.equal(resumed.masks["weight"], cb.masks["weight"]) and resumed.updates == 1


def test_gradual_ramp_fades_pruned_weights_linearly_to_exact_nm() -> None:
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    cb, ctx = SRSTE(["weight"], 2, 4, decay=0.0, period=None, ramp=0.5), _ctx(layer)
    ctx.hparams.epochs, ctx.steps_per_epoch = 2, 4  # 8 steps: the ramp ends after step 4
    cb.on_train_start(ctx)  # type: ignore[arg-type]
    assert cb.ramp_steps == 4 and torch.equal(layer.weight.detach(), torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    x = torch.zeros(1, 4)  # no gradient: only the fading moves the shown weights
    for step, beta in ((1, 0.75), (2, 0.5), (3, 0.25), (4, 0.0), (5, 0.0)):
        _sgd_step(cb, ctx, layer, x, lr=1.0)
        assert cb.beta(step) == beta
        assert torch.allclose(layer.weight.detach(), torch.tensor([[beta * 1.0, -2.0, 3.0, beta * 0.5]]))
    assert torch.equal(cb.dense["weight"], torch.tensor([[1.0, -2.0, 3.0, 0.5]]))  # W itself never faded
    row: dict[str, float] = {}
    cb.on_epoch_end(ctx, row)  # type: ignore[arg-type]
    assert row["srste_beta"] == 0.0 and is_nm(layer.weight, 2, 4)
    with pytest.raises(ValueError, match="ramp"):
        SRSTE(["weight"], ramp=1.5)


def test_srste_refuses_an_engine_mask_and_best_val_with_a_changing_mask() -> None:
    layer = nn.Linear(4, 1, bias=False)
    ctx = _ctx(layer)
    ctx.mask = Mask({"weight": torch.ones(1, 4, dtype=torch.bool)})
    with pytest.raises(ValueError, match="engine enforces a mask"):
        SRSTE(["weight"]).on_train_start(ctx)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="select: last"):
        SRSTE(["weight"]).on_train_start(_ctx(layer, "best_val"))  # type: ignore[arg-type]
    SRSTE(["weight"], period=None).on_train_start(_ctx(layer, "best_val"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="period"):
        SRSTE(["weight"], period=0)


def test_srste_training_ends_nm_and_finetuning_keeps_it() -> None:
    torch.manual_seed(0)
    model = build_model("lenet300_100", 10, (1, 8, 8), hidden=[32, 16])
    names = nm_eligible_parameters(model)
    assert len(names) == 3
    recipe = TrainHparams.from_dict(
        {"epochs": 1, "batch_size": 200, "optimizer": {"lr": 0.05, "momentum": 0.9}, "schedule": {"kind": "constant"}}
    )
    splits = build_splits(DataHparams(source="digits"))
    common = {"seeds": SeedHparams(), "compute": ComputeHparams(device="cpu", progress="lines")}
    cb = SRSTE(names, 2, 4, decay=2e-4, period=1)
    result = train(model, splits, recipe, callbacks=(cb,), **common)  # type: ignore[arg-type]
    assert result.mask is not None and result.mask.names() == names and cb.updates > 0
    params = dict(result.model.named_parameters())
    assert all(is_nm(result.mask[n], 2, 4) and is_nm(params[n], 2, 4) for n in names)
    assert abs(result.mask.sparsity - 0.5) < 1e-9
    again = train(result.model, splits, recipe, mask=result.mask, **common)  # type: ignore[arg-type]
    params = dict(again.model.named_parameters())
    assert all(is_nm(params[n], 2, 4) for n in names)


# ---------------------------------------------------------------------------------------- inference
def _two_four_model() -> tuple[nn.Module, Mask]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    mask = nm_mask(model)
    mask.apply_(model)
    return model, mask


def test_conversion_on_cpu_reports_the_kernel_unavailable() -> None:
    model, _ = _two_four_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = to_semi_structured(model)
    assert not report.available and "CUDA" in report.reason and report.converted == ()
    assert "no semi-structured sparse kernel" in report.dense["0.weight"]
    assert report.dense["2.weight"].startswith("kernel unavailable")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(SemiStructuredUnavailable, match="CUDA"):
        to_semi_structured(model, require=True)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_conversion_on_cuda_matches_the_dense_output(device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cuda":
        pytest.skip("the 2:4 kernels need --device cuda")
    model, _ = _two_four_model()
    model = model.to(device=device, dtype=dtype).eval()
    x = torch.randn(8, 4, 4, 4, device=device, dtype=dtype)
    with torch.no_grad():
        dense = model(x)
    report = to_semi_structured(model, require=True)
    assert report.converted == ("2.weight", "4.weight"), report
    assert "0.weight" in report.dense
    with torch.no_grad():
        sparse = model(x)
    tol = 1e-2 if dtype == torch.float16 else 2e-3
    assert torch.allclose(sparse.float(), dense.float(), rtol=tol, atol=tol)


def test_nm_flops_halve_linear_layers_and_keep_convolutions_dense() -> None:
    model = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Flatten(), nn.Linear(16, 4))
    shape = (4, 2, 2)
    conv, linear = 2 * 4 * 4 * (2 * 2), 2 * 16 * 4  # multiply-adds count 2
    assert count_flops(model, shape) == conv + linear
    mask = nm_mask(model)
    assert flops_nm(model, shape, mask) == conv + linear // 2  # the conv's 2:4 mask saves nothing
    one_four = nm_mask(model, 1, 4)
    assert flops_nm(model, shape, one_four, 1, 4) == conv + linear // 4
    assert flops_nm(model, shape, one_four) == conv + linear // 2  # 1:4 is 2:4 too, and runs as 2:4
    dense_linear = Mask({"2.weight": torch.ones(4, 16, dtype=torch.bool)})
    assert flops_nm(model, shape, dense_linear) == conv + linear  # not 2:4: dense
