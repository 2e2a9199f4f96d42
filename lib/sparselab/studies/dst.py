"""Dynamic sparse training study (Mostafa & Wang, ICML 2019): one run of one method from scratch, or
gradual pruning of a dense checkpoint.

Methods trained from scratch (:func:`run_sparse_training`): ``dsr``, ``set``, ``deepr``, ``static``
(fixed random masks), ``tied`` (HashedNet-style shared banks) and ``dense`` (full or thin, by the
model's width knob). ``gradual`` (:func:`run_gradual_pruning`, Zhu & Gupta) prunes a dense checkpoint
per layer at prune events after epochs. Every run writes the engine's checkpoint (masks as explicit
tensors; tied layers rebuilt from the sidecar), metrics and hparams, plus ``summary.json`` with the
learnable parameter count (the paper's x-axis: active sparse entries times their slice size, plus
every dense tensor), the final accuracy and the per-layer density each method ends with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch
from torch import nn

from ..config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from ..data import build_splits
from ..dst import gradual
from ..dst.callbacks import DSR, SET, DeepR, StaticSparse, StepSchedule
from ..dst.layers import initial_masks, sparse_tensors
from ..io.atomic import atomic_write_json
from ..io.checkpoint import ArchSpec, load_checkpoint
from ..sparsity.magnitude import magnitude_mask
from ..sparsity.mask import Mask
from ..train.callbacks import Callback, TrainContext
from ..train.engine import TrainResult
from ..train.run import RunFiles, build_seeded, check_fits, train_and_save

__all__ = ["METHODS", "DSTSpec", "GradualSpec", "run_sparse_training", "run_gradual_pruning", "learnable_parameters"]

METHODS = ("dsr", "set", "deepr", "static", "tied", "dense")


@dataclasses.dataclass(frozen=True)
class DSTSpec:
    """How the sparse tensors of one run are chosen and rewired (defaults: the paper's CIFAR runs)."""

    method: Literal["dsr", "set", "deepr", "static", "tied", "dense"]
    sparsity: float = 0.9  # of the sparse conv tensors (and of Linear ones unless sparsity_fc is set)
    sparsity_fc: float | None = None
    sparse_layers: str | tuple[str, ...] = "paper"
    granularity: Literal["element", "row", "kernel"] = "element"
    period: Mapping[int, int] = dataclasses.field(default_factory=lambda: {0: 100, 25: 200, 80: 400, 140: 800})
    stop_epoch: int | None = 190
    np_target: int = 20_000  # DSR: entries pruned per reallocation (Np)
    threshold: float = 1e-3  # DSR: initial H
    big_new_weights: bool = False  # DSR: regrown weights drawn from N(0, He fan-out / 1/sqrt(fan_in)) instead of 0
    set_fraction: float = 0.138  # SET: fraction rewired per tensor and event
    deepr_eta: float = 0.01
    deepr_l1: float = 1e-5
    deepr_temperature: Mapping[int, float] = dataclasses.field(
        default_factory=lambda: {0: 1e-5, 25: 1e-8, 80: 1e-12, 140: 1e-15}
    )
    l1: float = 0.0  # an L1 term c * sum|w| over the sparse tensors (DeepR has its own: deepr_l1)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown dynamic sparse method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name, s in (("sparsity", self.sparsity), ("sparsity_fc", self.sparsity_fc)):
            if s is not None and not 0.0 <= s < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {s}")
        if self.method == "deepr" and self.granularity != "element":
            raise ValueError("DeepR rewires single connections: granularity must be 'element'")


@dataclasses.dataclass(frozen=True)
class GradualSpec:
    """Gradual magnitude pruning (Zhu & Gupta) of a dense checkpoint, per layer."""

    target: float = 0.9  # final sparsity of the conv tensors (and Linear unless target_fc)
    target_fc: float | None = None
    sparse_layers: str | tuple[str, ...] = "paper"
    start: int = 0  # first prune event after this epoch (0-based)
    freq: int = 2
    iterations: int = 20
    schedule: Literal["cubic", "exponential"] = "cubic"
    # fraction: each layer loses its scheduled fraction (the paper); threshold: one magnitude
    # threshold for all sparse tensors, set so that their total reaches the scheduled sparsity
    by: Literal["fraction", "threshold"] = "fraction"
    output_layer: str | None = None  # MNIST rule: capped at 0.9 when the target is above
    output_cap: float = 0.9


def _sparsities(model: nn.Module, names: Sequence[str], conv: float, fc: float | None) -> dict[str, float]:
    params = dict(model.named_parameters())
    return {n: (fc if fc is not None and params[n].dim() == 2 else conv) for n in names}


def learnable_parameters(model: nn.Module, mask: Mask | None) -> int:
    """The paper's "# parameters": every parameter minus the entries a mask holds inactive (tied
    layers count their bank only, since the bank is the parameter)."""
    total = sum(p.numel() for p in model.parameters())
    return total - (sum(int((~mask[n]).sum()) for n in mask) if mask is not None else 0)


def _summary(result: TrainResult, model: nn.Module, spec: ArchSpec) -> dict[str, Any]:
    mask = result.mask
    final = result.final
    dense = ArchSpec(spec.arch, spec.num_classes, spec.input_shape, dict(spec.kwargs)).build()
    densities = {n: float(mask[n].float().mean()) for n in mask} if mask is not None else {}
    return {
        **{k: final.get(k) for k in ("epoch", "test_top1", "test_loss", "val_top1") if final.get(k) is not None},
        "learnable_parameters": learnable_parameters(model, mask),
        "dense_parameters": sum(p.numel() for p in dense.parameters()),
        "sparse_tensor_density": (sum(int(mask[n].sum()) for n in mask) / sum(mask[n].numel() for n in mask)) if mask else 1.0,
        "layer_density": densities,
    }  # fmt: skip


class L1Penalty(Callback):
    """Adds ``c * sign(w)`` to the gradients of the sparse tensors: the gradient of an L1 term
    ``c * sum|w|`` (the DSR runs on MNIST use it instead of weight decay)."""

    def __init__(self, names: Sequence[str], coefficient: float) -> None:
        self.names, self.coefficient = list(names), float(coefficient)

    def on_before_step(self, ctx: TrainContext) -> None:
        params = dict(ctx.model.named_parameters())
        with torch.no_grad():
            for n in self.names:
                p = params[n]
                if p.grad is not None:
                    p.grad.add_(torch.sign(p.detach()), alpha=self.coefficient)


def _callback(spec: DSTSpec, masks: dict[str, torch.Tensor], seed: int) -> Callback:
    period = StepSchedule(spec.period)
    if spec.method == "dsr":
        return DSR(masks, period, spec.stop_epoch, seed, spec.np_target, spec.threshold, granularity=spec.granularity,
                   big_new_weights=spec.big_new_weights)  # fmt: skip
    if spec.method == "set":
        return SET(masks, period, spec.stop_epoch, seed, spec.set_fraction, spec.granularity)
    if spec.method == "deepr":
        return DeepR(masks, StepSchedule(spec.deepr_temperature), spec.stop_epoch, seed, spec.deepr_eta, spec.deepr_l1)
    return StaticSparse(masks, seed, spec.granularity)


def run_sparse_training(
    files: RunFiles,
    summary_json: str | Path,
    *,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    spec: DSTSpec,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Train one method from scratch (see the module docstring) and write its summary."""
    spec.validate()
    seeds = SeedHparams.for_replicate(seed)
    splits = build_splits(data)
    arch = ArchSpec(model.arch, splits.info.num_classes, splits.info.input_shape, dict(model.kwargs))
    net = build_seeded(arch, seeds.init)
    callbacks: tuple[Callback, ...] = ()
    if spec.method != "dense":
        names = sparse_tensors(net, model.arch, spec.sparse_layers if isinstance(spec.sparse_layers, str)
                               else list(spec.sparse_layers))  # fmt: skip
        mask_seed = seeds.init ^ 0x6D61736B  # masks and tying: their own stream of the replicate
        if spec.method == "tied":
            modules = [n.rsplit(".", 1)[0] for n in names]
            arch = dataclasses.replace(arch, tied={"modules": modules, "sparsity": spec.sparsity, "seed": mask_seed})
            from ..dst.tied import tie_weights

            tie_weights(net, modules, spec.sparsity, mask_seed)
        else:
            sparsity = _sparsities(net, names, spec.sparsity, spec.sparsity_fc)
            masks = initial_masks(net, names, sparsity, torch.Generator().manual_seed(mask_seed), spec.granularity)
            callbacks = (_callback(spec, masks, mask_seed),)
            if spec.l1 and spec.method != "deepr":
                callbacks += (L1Penalty(names, spec.l1),)
    hparams = {"method": f"dst_{spec.method}", "seed": seed, "seeds": seeds.to_dict(), "data": data.to_dict(),
               "model": model.to_dict(), "train": recipe.to_dict(), "dst": _plain(dataclasses.asdict(spec))}  # fmt: skip
    result = train_and_save(files, net, arch, None, hparams, data=data, splits=splits, recipe=recipe, seeds=seeds,
                            compute=compute, eval_before=False, callbacks=callbacks)  # fmt: skip
    atomic_write_json(summary_json, {"method": spec.method, **_summary(result, result.model, arch)})
    return result


class _GradualPruning(Callback):
    """Prune events after the scheduled epochs: per layer, the smallest active entries."""

    def __init__(self, spec: GradualSpec, targets: Mapping[str, float]) -> None:
        self.spec, self.targets, self.events = spec, dict(targets), 0

    def on_epoch_end(self, ctx: TrainContext, row: dict[str, Any]) -> None:
        s = self.spec
        epoch = ctx.epoch - 1  # 0-based, as the original's clock
        if ctx.mask is not None and gradual.is_event_epoch(epoch, s.start, s.freq, s.iterations):
            self.events += 1
            if s.by == "threshold":
                total = sum(ctx.mask[n].numel() for n in self.targets)
                target = sum(self.targets[n] * ctx.mask[n].numel() for n in self.targets) / total
                after = gradual.sparsity_after(self.events, s.iterations, target, s.schedule)
                new = magnitude_mask(ctx.model, after, "global", list(self.targets), current=ctx.mask)
            else:
                fractions = gradual.event_fractions(self.events, s.iterations, self.targets, s.schedule)
                params = dict(ctx.model.named_parameters())
                weights = {n: params[n].detach() for n in self.targets}
                new = gradual.prune_event(weights, ctx.mask, fractions)
            ctx.set_mask(new.to_device(ctx.device))
        if ctx.mask is not None:
            row["sparsity"] = ctx.mask.sparsity

    def state_dict(self) -> dict[str, Any]:
        return {"events": self.events}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.events = int(state["events"])


def run_gradual_pruning(
    files: RunFiles,
    summary_json: str | Path | None,
    *,
    dense: str | Path,
    data: DataHparams,
    recipe: TrainHparams,
    spec: GradualSpec,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """Gradual pruning of a dense checkpoint (``recipe.epochs`` should be
    :func:`sparselab.dst.gradual.total_epochs` of the schedule)."""
    ckpt = load_checkpoint(dense)
    splits = build_splits(data)
    check_fits(ckpt.spec, splits.info, str(dense))
    net = ckpt.model
    names = sparse_tensors(net, ckpt.spec.arch, spec.sparse_layers if isinstance(spec.sparse_layers, str)
                           else list(spec.sparse_layers))  # fmt: skip
    sizes = {n: dict(net.named_parameters())[n].numel() for n in names}
    targets = _sparsities(net, names, spec.target, spec.target_fc)
    if spec.output_layer is not None:
        fc_names = [n for n in names if dict(net.named_parameters())[n].dim() == 2]
        targets.update(gradual.per_layer_targets({n: sizes[n] for n in fc_names}, spec.target_fc or spec.target,
                                                 spec.output_layer, spec.output_cap))  # fmt: skip
    mask = Mask.ones(net, names)
    seeds = SeedHparams.for_replicate(seed)
    hparams = {"method": "dst_gradual", "seed": seed, "seeds": seeds.to_dict(), "data": data.to_dict(),
               "model": {"arch": ckpt.spec.arch, "kwargs": ckpt.spec.kwargs}, "train": recipe.to_dict(),
               "gradual": _plain(dataclasses.asdict(spec)), "parent": {"path": str(dense)}}  # fmt: skip
    result = train_and_save(files, net, ckpt.spec, mask, hparams, data=data, splits=splits, recipe=recipe, seeds=seeds,
                            compute=compute, eval_before=True, callbacks=(_GradualPruning(spec, targets),))  # fmt: skip
    if summary_json is not None:  # None: the caller writes its own summary
        atomic_write_json(summary_json, {"method": "gradual", **_summary(result, result.model, ckpt.spec)})
    return result


def _plain(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly: int keys of schedules as strings are fine, tuples as lists."""
    return {k: (list(v) if isinstance(v, tuple) else ({str(a): b for a, b in v.items()} if isinstance(v, Mapping) else v))
            for k, v in d.items()}  # fmt: skip


# ------------------------------------------------------------------------------------ from the config
def _int_keys(d: Mapping[Any, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}


def sparse_learnable(model: ModelHparams, num_classes: int, input_shape: Sequence[int], sparsity: float,
                     sparse_layers: str | Sequence[str] = "paper", sparsity_fc: float | None = None) -> int:  # fmt: skip
    """Learnable parameters of the sparse network at ``sparsity`` (dense tensors in full)."""
    from ..dst.layers import active_count
    from ..models import build_model

    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    names = sparse_tensors(net, model.arch, sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers))
    params = dict(net.named_parameters())
    per = _sparsities(net, names, sparsity, sparsity_fc)
    total = sum(p.numel() for p in net.parameters())
    return total - sum(params[n].numel() - active_count(params[n].numel(), per[n]) for n in names)


_WIDTH_KEYS = ("widen_factor", "width", "hidden")


def thin_kwargs(model: ModelHparams, num_classes: int, input_shape: Sequence[int], budget: int,
                key: str = "auto") -> dict[str, Any]:  # fmt: skip
    """The model's kwargs with its width knob scaled so that the dense network has about ``budget``
    parameters (bisection on the scale; ``hidden`` lists are scaled element-wise)."""
    from ..models import arch_kwargs, build_model

    defaults = arch_kwargs(model.arch)
    if key == "auto":
        key = next((k for k in _WIDTH_KEYS if k in defaults), "")
        if not key:
            raise ValueError(f"{model.arch} has no width knob ({', '.join(_WIDTH_KEYS)}); give dst thin.key")
    base = model.kwargs.get(key, defaults[key])

    def scaled(f: float) -> dict[str, Any]:
        if isinstance(base, (list, tuple)):
            value: Any = [max(1, round(h * f)) for h in base]
        elif isinstance(base, int) and not isinstance(base, bool):
            value = max(1, round(base * f))
        else:
            value = round(float(base) * f, 4)
        return {**model.kwargs, key: value}

    def count(f: float) -> int:
        return sum(p.numel() for p in build_model(model.arch, num_classes, tuple(input_shape), **scaled(f)).parameters())

    lo, hi = 1e-3, 1.0
    while count(hi) < budget:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) < budget else (lo, mid)
    best = min((lo, hi), key=lambda f: abs(count(f) - budget))
    return scaled(best)


def spec_from_options(method: str, sparsity: float, options: Mapping[str, Any], active_entries: int | None = None) -> DSTSpec:
    """The :class:`DSTSpec` of one run from a ``dst`` experiment's options (see the schema)."""
    deepr = options.get("deepr", {})
    set_fraction = options.get("set_fraction", "auto")
    np_target = int(options.get("np_target", 20_000))
    if set_fraction == "auto":
        fraction = min(0.5, np_target / active_entries) if active_entries else 0.1
    else:
        fraction = float({float(k): v for k, v in set_fraction.items()}[float(sparsity)])
    layers = options.get("sparse_layers", "paper")
    return DSTSpec(
        method=method if method != "thin_dense" else "dense",  # type: ignore[arg-type]
        sparsity=float(sparsity), sparsity_fc=options.get("sparsity_fc"),
        sparse_layers=layers if isinstance(layers, str) else tuple(layers),
        granularity=options.get("granularity", "element"),
        period=_int_keys(options.get("period", {0: 100, 25: 200, 80: 400, 140: 800})),
        stop_epoch=options.get("stop_epoch"), np_target=np_target, threshold=float(options.get("threshold", 1e-3)),
        big_new_weights=bool(options.get("big_new_weights", False)),
        set_fraction=fraction, deepr_eta=float(deepr.get("eta", 0.01)), deepr_l1=float(deepr.get("l1", 1e-5)),
        l1=float(options.get("l1", {}).get(method, 0.0)),
        deepr_temperature=_int_keys(deepr.get("temperature", {0: 1e-5, 25: 1e-8, 80: 1e-12, 140: 1e-15})),
    )  # fmt: skip


def _active_entries(model: ModelHparams, num_classes: int, input_shape: Sequence[int], sparsity: float,
                    options: Mapping[str, Any]) -> int:  # fmt: skip
    from ..dst.layers import active_count
    from ..models import build_model

    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    layers = options.get("sparse_layers", "paper")
    names = sparse_tensors(net, model.arch, layers if isinstance(layers, str) else list(layers))
    params = dict(net.named_parameters())
    per = _sparsities(net, names, sparsity, options.get("sparsity_fc"))
    return sum(active_count(params[n].numel(), per[n]) for n in names)


def run_configured(
    files: RunFiles,
    summary_json: str | Path,
    *,
    method: str,
    sparsity: float,
    options: Mapping[str, Any],
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """One run of a ``dst`` experiment: the method's spec (and, for thin dense, the width matched
    to the sparse network's learnable parameters at ``sparsity``) from the experiment's options."""
    if method == "thin_dense":
        info = build_splits(data).info
        thin = options.get("thin", {})
        widths = thin.get("widths", "auto")
        if widths == "auto":
            budget = sparse_learnable(model, info.num_classes, info.input_shape, sparsity,
                                      options.get("sparse_layers", "paper"), options.get("sparsity_fc"))  # fmt: skip
            kwargs = thin_kwargs(model, info.num_classes, info.input_shape, budget, thin.get("key", "auto"))
        else:
            key = thin.get("key", "auto")
            if key == "auto":
                raise ValueError("dst thin.widths given per sparsity: also name the model kwarg they set (thin.key)")
            kwargs = {**model.kwargs, key: {float(k): v for k, v in widths.items()}[float(sparsity)]}
        model = ModelHparams(model.arch, kwargs)
        spec = DSTSpec("dense")
    elif method == "dense":
        spec = DSTSpec("dense")
    else:
        active = None
        if method == "set" and options.get("set_fraction", "auto") == "auto":
            info = build_splits(data).info
            active = _active_entries(model, info.num_classes, info.input_shape, sparsity, options)
        spec = spec_from_options(method, sparsity, options, active)
    result = run_sparse_training(files, summary_json, data=data, model=model, recipe=recipe, spec=spec, seed=seed,
                                 compute=compute)  # fmt: skip
    return result


def gradual_spec(sparsity: float, options: Mapping[str, Any]) -> GradualSpec:
    g = options["gradual"]
    layers = options.get("sparse_layers", "paper")
    return GradualSpec(
        target=float(sparsity), target_fc=options.get("sparsity_fc"),
        sparse_layers=layers if isinstance(layers, str) else tuple(layers),
        start=int(g.get("start", 0)), freq=int(g.get("freq", 2)), iterations=int(g.get("iterations", 20)),
        schedule=g.get("schedule", "cubic"), by=g.get("by", "fraction"), output_layer=g.get("output_layer"),
        output_cap=float(g.get("output_cap", 0.9)),
    )  # fmt: skip
