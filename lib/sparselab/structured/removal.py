"""Physical filter removal: a narrower network that computes exactly what the masked one does.

Given the filters to keep in each channel group (:mod:`.dependency`), every module touched by a
removable group is rebuilt smaller once (its output and input slices composed), so the result is
an ordinary ``nn.Module`` with fewer parameters and FLOPs. Groups that can only be masked (their
channels join a residual sum) keep their width: their dropped filters get zero conv rows and zero
BatchNorm scale and shift, and the returned :class:`~sparselab.sparsity.Mask` keeps them at zero
during training; the channel then adds exactly 0 to the residual stream, as Lubana & Dick's
``MapLayer`` does.

:func:`widths` / :func:`narrow` are the shape spec of a pruned model: a checkpoint stores the kept
width of every removable group, and loading rebuilds the dense architecture, narrows it to those
widths, then loads the weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..sparsity.mask import Mask
from .dependency import ChannelGroup, channel_groups

__all__ = ["narrow", "narrow_to_widths", "prune_filters", "slice_like_parameters", "widths"]


def _indices(keep: torch.Tensor, width: int, producer: str) -> torch.Tensor:
    """Sorted kept indices from a boolean vector or an index list (survivors keep their order)."""
    keep = torch.as_tensor(keep)
    if keep.dtype == torch.bool:
        if keep.numel() != width:
            raise ValueError(f"{producer}: keep mask has {keep.numel()} entries for {width} filters")
        idx = torch.nonzero(keep).flatten()
    else:
        idx = torch.unique(keep.long())  # sorted
        if idx.numel() and (idx[0] < 0 or idx[-1] >= width):
            raise ValueError(f"{producer}: kept filter indices must lie in [0, {width}), got {keep.tolist()}")
    if idx.numel() == 0:
        raise ValueError(f"{producer}: at least one filter must be kept (a layer of width 0 cuts the network)")
    return idx


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _linear_columns(idx: torch.Tensor, per_channel: int) -> torch.Tensor:
    if per_channel == 1:
        return idx
    return (idx.view(-1, 1) * per_channel + torch.arange(per_channel).view(1, -1)).flatten()


def _narrow_conv(m: nn.Conv2d, out_idx: torch.Tensor | None, in_idx: torch.Tensor | None) -> nn.Conv2d:
    w = m.weight.detach()
    if out_idx is not None:
        w = w[out_idx]
    depthwise = m.groups > 1
    if in_idx is not None and not depthwise:
        w = w[:, in_idx]
    out_ch = w.shape[0]
    in_ch = out_ch if depthwise else w.shape[1] * m.groups
    # Conv2d's own attributes are typed tuple[int, ...]; its constructor wants the 2-tuples they are.
    new = nn.Conv2d(
        in_ch,
        out_ch,
        m.kernel_size,  # type: ignore[arg-type]
        m.stride,  # type: ignore[arg-type]
        m.padding,  # type: ignore[arg-type]
        m.dilation,  # type: ignore[arg-type]
        groups=out_ch if depthwise else m.groups,
        bias=m.bias is not None,
        padding_mode=m.padding_mode,
        device=w.device,
        dtype=w.dtype,
    )
    with torch.no_grad():
        new.weight.copy_(w)
        if m.bias is not None:
            new.bias.copy_(m.bias.detach()[out_idx] if out_idx is not None else m.bias.detach())  # type: ignore[union-attr]
    new.train(m.training)
    return new


def _narrow_linear(m: nn.Linear, in_cols: torch.Tensor) -> nn.Linear:
    w = m.weight.detach()[:, in_cols]
    new = nn.Linear(w.shape[1], m.out_features, bias=m.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if m.bias is not None:
            new.bias.copy_(m.bias.detach())
    new.train(m.training)
    return new


def _narrow_bn(m: _BatchNorm, idx: torch.Tensor) -> _BatchNorm:
    new = copy.deepcopy(m)
    new.num_features = idx.numel()
    with torch.no_grad():
        for name in ("weight", "bias"):
            p = getattr(m, name)
            if p is not None:
                setattr(new, name, nn.Parameter(p.detach()[idx].clone(), requires_grad=p.requires_grad))
        for name in ("running_mean", "running_var"):
            b = getattr(m, name)
            if b is not None:
                setattr(new, name, b[idx].clone())
    return new


class _Plan:
    """Which slices of which modules a keep-set removes."""

    def __init__(self, model: nn.Module, groups: Sequence[ChannelGroup], keep: Mapping[str, torch.Tensor]) -> None:
        by_producer = {g.producer: g for g in groups}
        unknown = sorted(set(keep) - set(by_producer))
        if unknown:
            raise KeyError(f"no channel group is produced by {unknown}; groups: {sorted(by_producer)}")
        self.out_idx: dict[str, torch.Tensor] = {}  # module -> kept output channels
        self.in_idx: dict[str, torch.Tensor] = {}  # conv -> kept input channels
        self.linear_cols: dict[str, torch.Tensor] = {}
        self.masked: dict[str, torch.Tensor] = {}  # maskable group -> alive filters
        self._collect(model, by_producer, keep)
        self.masked_groups = [by_producer[p] for p in self.masked]

    def _collect(
        self, model: nn.Module, by_producer: Mapping[str, ChannelGroup], keep: Mapping[str, torch.Tensor]
    ) -> None:
        out_idx, in_idx, linear_cols, masked = self.out_idx, self.in_idx, self.linear_cols, self.masked
        for producer, k in keep.items():
            g = by_producer[producer]
            idx = _indices(k, g.width, producer)
            if idx.numel() == g.width:
                continue
            if not g.removable:
                masked[producer] = torch.zeros(g.width, dtype=torch.bool).index_fill_(0, idx, True)
                continue
            for name in (g.producer, *g.depthwise, *g.batch_norms):
                out_idx[name] = idx
            for name, per_channel in g.consumers:
                if isinstance(model.get_submodule(name), nn.Linear):
                    linear_cols[name] = _linear_columns(idx, per_channel)
                else:
                    in_idx[name] = idx

    def modules(self) -> list[str]:
        return sorted(set(self.out_idx) | set(self.in_idx) | set(self.linear_cols))

    def slice(self, module: nn.Module, name: str, param: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` (a parameter of ``module`` or a tensor shaped like it) cut like the parameter."""
        if isinstance(module, nn.Linear):
            return t[:, self.linear_cols[name]] if param == "weight" else t
        out, inp = self.out_idx.get(name), self.in_idx.get(name)
        if out is not None:
            t = t[out]
        if inp is not None and isinstance(module, nn.Conv2d) and module.groups == 1 and param == "weight":
            t = t[:, inp]
        return t


def prune_filters(
    model: nn.Module, groups: Sequence[ChannelGroup], keep: Mapping[str, torch.Tensor]
) -> tuple[nn.Module, Mask]:
    """A copy of ``model`` keeping, for each group named in ``keep`` (by producer), the given
    filters (boolean vector over the current width, or indices); the model is not modified.

    Returns the new model and the :class:`Mask` of the filters that could only be zeroed (conv
    rows, depthwise rows and BatchNorm scale/shift of maskable groups; empty if none).
    """
    plan = _Plan(model, groups, keep)
    new = copy.deepcopy(model)
    for name in plan.modules():
        m = new.get_submodule(name)
        if isinstance(m, nn.Conv2d):
            _set_module(new, name, _narrow_conv(m, plan.out_idx.get(name), plan.in_idx.get(name)))
        elif isinstance(m, _BatchNorm):
            _set_module(new, name, _narrow_bn(m, plan.out_idx[name]))
        elif isinstance(m, nn.Linear):
            _set_module(new, name, _narrow_linear(m, plan.linear_cols[name]))
    mask = _channel_mask(new, plan.masked_groups, list(plan.masked.values()))
    if len(mask):
        mask.apply_(new)
    return new, mask


def slice_like_parameters(
    model: nn.Module,
    groups: Sequence[ChannelGroup],
    keep: Mapping[str, torch.Tensor],
    tensors: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Per-parameter tensors of ``model`` (optimizer momentum, say), keyed by parameter name, cut
    exactly as :func:`prune_filters` cuts the parameters for the same ``keep``. Tensors of masked
    filters keep their shape; their rows are zeroed, as the filters' weights are."""
    plan = _Plan(model, groups, keep)
    touched = set(plan.modules())
    out = {}
    for key, t in tensors.items():
        name, _, param = key.rpartition(".")
        out[key] = plan.slice(model.get_submodule(name), name, param, t) if name in touched else t
    for g in plan.masked_groups:  # dead filters: zero rows (output channel = first dimension)
        alive = plan.masked[g.producer]
        keys = [f"{conv}.weight" for conv in (g.producer, *g.depthwise)]
        keys += [f"{bn}.{p}" for bn in g.batch_norms for p in ("weight", "bias")]
        for key in keys:
            if key in out:
                factor = alive.to(out[key].device, out[key].dtype).view(-1, *[1] * (out[key].dim() - 1))
                out[key] = out[key] * factor
    return out


def _channel_mask(model: nn.Module, groups: Sequence[ChannelGroup], alive: Sequence[torch.Tensor]) -> Mask:
    """Zero conv rows (producer and depthwise) and BatchNorm scale/shift of the dead filters,
    shaped after ``model``'s current parameters (their inputs may have been narrowed)."""
    params = dict(model.named_parameters())
    masks: dict[str, torch.Tensor] = {}
    for g, keep in zip(groups, alive):
        for conv in (g.producer, *g.depthwise):
            w = params[f"{conv}.weight"]
            masks[f"{conv}.weight"] = keep.view(-1, *[1] * (w.dim() - 1)).expand_as(w).clone()
        for bn in g.batch_norms:
            for p in ("weight", "bias"):
                if f"{bn}.{p}" in params:
                    masks[f"{bn}.{p}"] = keep.clone()
    return Mask(masks)


def widths(model: nn.Module, groups: Sequence[ChannelGroup]) -> dict[str, int]:
    """The shape spec of a (possibly pruned) model: the current width of every producer conv."""
    return {g.producer: _producer(model, g.producer).out_channels for g in groups}


def _producer(model: nn.Module, name: str) -> nn.Conv2d:
    m = model.get_submodule(name)
    if not isinstance(m, nn.Conv2d):
        raise TypeError(f"{name}: a channel group's producer must be a Conv2d, got {type(m).__name__}")
    return m


def narrow(model: nn.Module, groups: Sequence[ChannelGroup], spec: Mapping[str, int]) -> nn.Module:
    """The dense ``model`` narrowed to the widths of ``spec`` (its values are arbitrary: load a
    state dict next). Groups of ``model`` must be the dense architecture's."""
    by_producer = {g.producer: g for g in groups}
    keep = {}
    for producer, width in spec.items():
        g = by_producer.get(producer)
        if g is None:
            raise KeyError(f"shape spec names {producer!r}, which produces no channel group of this model")
        if not 1 <= int(width) <= g.width:
            raise ValueError(f"shape spec: {producer} width {width} outside [1, {g.width}]")
        if int(width) < g.width and not g.removable:
            raise ValueError(f"shape spec: {producer} cannot be narrowed ({g.reason}); it is masked instead")
        keep[producer] = torch.arange(int(width))
    return prune_filters(model, groups, keep)[0]


def narrow_to_widths(model: nn.Module, widths: Mapping[str, int], input_shape: tuple[int, int, int]) -> nn.Module:
    """The model registry's build hook for a spec's ``widths`` (:data:`sparselab.models.registry.BUILD_HOOKS`):
    the freshly built dense ``model`` narrowed to them."""
    return narrow(model, channel_groups(model, input_shape), widths)
