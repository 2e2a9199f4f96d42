"""Dynamic sparse training from scratch (Mostafa & Wang, ICML 2019): one run of one method.

Methods (:func:`run_sparse_training`): ``dsr``, ``set``, ``deepr``, ``rigl``, ``snfs``, ``static``
(fixed random masks), ``tied`` (HashedNet-style shared banks) and ``dense`` (full or thin, by the
model's width knob). Every run writes the engine's checkpoint (masks as explicit tensors; tied
layers rebuilt from the sidecar), metrics and hparams, plus ``summary.json``
(:func:`.common.run_summary`: accuracy, parameters, FLOPs and theoretical speed-up, layer densities).

RigL and SNFS (:func:`sparselab.dst.rigl.growth_sparsity`) take their initial masks from their
block's layer densities (ERK or uniform at the run's sparsity over the sparse tensors; tensors ERK
makes dense get no mask) rather than from ``sparsity_fc``, and their clock from ``delta_t`` and
``stop`` rather than ``period`` and ``stop_epoch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from ...config import ComputeHparams, DataHparams, ModelHparams, TrainHparams
from ...config.bundles import GrowthHparams
from ...config.hparams import spec_record
from ...data import build_splits
from ...dst.callbacks import DSR, SET, DeepR, StaticSparse, StepSchedule
from ...dst.layers import active_count, initial_masks, layer_sparsities, sparse_tensors
from ...dst.penalties import L1Penalty
from ...dst.rewiring import Regrowth
from ...dst.rigl import growth_sparsity
from ...dst.tied import tie_weights
from ...models import arch_kwargs, build_model
from ...models.spec import ArchSpec
from ...train.callbacks import Callback
from ...train.engine import TrainResult
from ...train.run import RunFiles, train_and_save
from ..base.setup import RunSetup
from ..base.summary import write_summary
from .common import run_summary
from .options import GROWTH_METHODS, DstOptions

__all__ = ["METHODS", "DSTSpec", "dense_spec", "spec_from_options", "run_sparse_training", "run_configured"]

METHODS = ("dsr", "set", "deepr", "rigl", "snfs", "static", "tied", "dense")


@dataclasses.dataclass(frozen=True)
class DSTSpec:
    """How the sparse tensors of one run are chosen and rewired: built from an experiment's
    :class:`.options.DstOptions` (:func:`spec_from_options`), which state the defaults."""

    method: Literal["dsr", "set", "deepr", "rigl", "snfs", "static", "tied", "dense"]
    sparsity: float  # of the sparse conv tensors (and of Linear ones unless sparsity_fc is set)
    sparsity_fc: float | None
    sparse_layers: str | tuple[str, ...]
    granularity: Literal["element", "row", "kernel"]
    period: Mapping[int, int]
    stop_epoch: int | None
    np_target: int  # DSR: entries pruned per reallocation (Np)
    threshold: float  # DSR: initial H
    big_new_weights: bool  # DSR: regrown weights drawn from N(0, He fan-out / 1/sqrt(fan_in)) instead of 0
    dsr_regrowth: Regrowth  # DSR: proportional to survivors (the paper) or per layer (what each lost)
    set_fraction: float  # SET: fraction rewired per tensor and event
    deepr_eta: float
    deepr_l1: float
    deepr_temperature: Mapping[int, float]
    l1: float  # an L1 term c * sum|w| over the sparse tensors (DeepR has its own: deepr_l1)
    growth: GrowthHparams | None = None  # RigL / SNFS: schedule and layer densities (their block)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown dynamic sparse method {self.method!r}; choose one of {', '.join(METHODS)}")
        for name, s in (("sparsity", self.sparsity), ("sparsity_fc", self.sparsity_fc)):
            if s is not None and not 0.0 <= s < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {s}")
        if self.method == "deepr" and self.granularity != "element":
            raise ValueError("DeepR rewires single connections: granularity must be 'element'")
        if (self.method in GROWTH_METHODS) != (self.growth is not None):
            raise ValueError(f"{self.method}: the growth block is for rigl and snfs, and they need it")
        if self.method in GROWTH_METHODS and self.sparsity_fc is not None:
            raise ValueError(f"{self.method} spreads the density by its densities key: sparsity_fc must be None")

    def record(self) -> dict[str, Any]:
        """What ``hparams.json`` records: every field, the growth block only for RigL and SNFS (the
        other methods' records stay as they were before it existed)."""
        out = spec_record(self)
        if self.growth is None:
            del out["growth"]
        return out


def _callback(spec: DSTSpec, masks: dict[str, torch.Tensor], seed: int) -> Callback:
    period = StepSchedule(spec.period)
    if spec.method == "dsr":
        return DSR(
            masks,
            period,
            spec.stop_epoch,
            seed,
            spec.np_target,
            spec.threshold,
            granularity=spec.granularity,
            big_new_weights=spec.big_new_weights,
            regrowth=spec.dsr_regrowth,
        )
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
    reference_model: ModelHparams | None = None,
) -> TrainResult:
    """Train one method from scratch (see the module docstring) and write its summary, whose speed-up
    is over the dense FLOPs of ``reference_model`` (default ``model``; thin dense: the full width)."""
    spec.validate()
    run = RunSetup.fresh(data, model, seed)
    seeds, arch = run.seeds, run.spec
    net = run.build()
    callbacks: tuple[Callback, ...] = ()
    names: list[str] | None = None
    initial: dict[str, float] = {}
    if spec.method != "dense":
        names = sparse_tensors(
            net, model.arch, spec.sparse_layers if isinstance(spec.sparse_layers, str) else list(spec.sparse_layers)
        )
        mask_seed = seeds.init ^ 0x6D61736B  # masks and tying: their own stream of the replicate
        if spec.method == "tied":
            modules = [n.rsplit(".", 1)[0] for n in names]
            arch = dataclasses.replace(arch, tied={"modules": modules, "sparsity": spec.sparsity, "seed": mask_seed})
            tie_weights(net, modules, spec.sparsity, mask_seed)
        else:
            generator = torch.Generator().manual_seed(mask_seed)
            if spec.growth is not None:  # RigL / SNFS: masks at their layer densities
                growth = growth_sparsity(
                    spec.method,  # type: ignore[arg-type]  # validate(): rigl or snfs
                    net,
                    names,
                    spec.sparsity,
                    spec.growth,
                    generator,
                    spec.granularity,
                )
                initial = {n: float(growth.masks[n].float().mean()) if n in growth.masks else 1.0 for n in names}
                callbacks = (growth,)
            else:
                sparsity = layer_sparsities(net, names, spec.sparsity, spec.sparsity_fc)
                masks = initial_masks(net, names, sparsity, generator, spec.granularity)
                callbacks = (_callback(spec, masks, mask_seed),)
            if spec.l1 and spec.method != "deepr":
                callbacks += (L1Penalty(names, spec.l1),)
    hparams = run.hparams(f"dst_{spec.method}", recipe, dst=spec.record())
    result = train_and_save(
        files,
        run.with_spec(arch),
        net,
        None,
        hparams,
        recipe=recipe,
        compute=compute,
        eval_before=False,
        callbacks=callbacks,
        parents=(),
    )
    reference = ArchSpec(arch.arch, arch.num_classes, arch.input_shape, dict((reference_model or model).kwargs))
    summary = run_summary(result, result.model, arch, reference, sparse_names=names if initial else None)
    extra = {"initial_layer_density": initial} if initial else {}
    write_summary(summary_json, {"method": spec.method}, summary, extra)
    return result


def _int_keys(d: Mapping[Any, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}


def sparse_learnable(
    model: ModelHparams,
    num_classes: int,
    input_shape: Sequence[int],
    sparsity: float,
    sparse_layers: str | Sequence[str] = "paper",
    sparsity_fc: float | None = None,
) -> int:
    """Learnable parameters of the sparse network at ``sparsity`` (dense tensors in full)."""
    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    names = sparse_tensors(net, model.arch, sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers))
    params = dict(net.named_parameters())
    per = layer_sparsities(net, names, sparsity, sparsity_fc)
    total = sum(p.numel() for p in net.parameters())
    return total - sum(params[n].numel() - active_count(params[n].numel(), per[n]) for n in names)


_WIDTH_KEYS = ("widen_factor", "width", "hidden")


def thin_kwargs(
    model: ModelHparams, num_classes: int, input_shape: Sequence[int], budget: int, key: str = "auto"
) -> dict[str, Any]:
    """The model's kwargs with its width knob scaled so that the dense network has about ``budget``
    parameters (bisection on the scale; ``hidden`` lists are scaled element-wise)."""
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
        return sum(
            p.numel() for p in build_model(model.arch, num_classes, tuple(input_shape), **scaled(f)).parameters()
        )

    lo, hi = 1e-3, 1.0
    while count(hi) < budget:
        hi *= 2
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if count(mid) < budget else (lo, mid)
    best = min((lo, hi), key=lambda f: abs(count(f) - budget))
    return scaled(best)


def spec_from_options(method: str, sparsity: float, options: DstOptions, active_entries: int | None = None) -> DSTSpec:
    """The :class:`DSTSpec` of one run from a ``dst`` experiment's options."""
    if options.set_fraction == "auto":
        fraction = min(0.5, options.np_target / active_entries) if active_entries else 0.1
    else:
        fraction = float({float(k): v for k, v in options.set_fraction.items()}[float(sparsity)])
    return DSTSpec(
        method=method if method != "thin_dense" else "dense",  # type: ignore[arg-type]
        sparsity=float(sparsity),
        sparsity_fc=options.sparsity_fc,
        sparse_layers=options.layers,
        granularity=options.granularity,
        period=_int_keys(options.period),
        stop_epoch=options.stop_epoch,
        np_target=options.np_target,
        threshold=options.threshold,
        big_new_weights=options.big_new_weights,
        dsr_regrowth=options.dsr_regrowth,
        set_fraction=fraction,
        deepr_eta=options.deepr.eta,
        deepr_l1=options.deepr.l1,
        l1=float(options.l1.get(method, 0.0)),
        deepr_temperature=_int_keys(options.deepr.temperature),
        growth=options.rigl if method == "rigl" else options.snfs if method == "snfs" else None,
    )


def dense_spec() -> DSTSpec:
    """The spec a dense run (full or thin) records. Dense runs read no option; their ``hparams.json``
    has always held the options' defaults but for the paper's CIFAR sparsity (0.9), stop epoch (190)
    and SET fraction (0.138), kept so that the records of existing runs stay identical."""
    return spec_from_options("dense", 0.9, DstOptions(stop_epoch=190, set_fraction={0.9: 0.138}))


def _active_entries(
    model: ModelHparams, num_classes: int, input_shape: Sequence[int], sparsity: float, options: DstOptions
) -> int:
    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    layers = options.layers
    names = sparse_tensors(net, model.arch, layers if isinstance(layers, str) else list(layers))
    params = dict(net.named_parameters())
    per = layer_sparsities(net, names, sparsity, options.sparsity_fc)
    return sum(active_count(params[n].numel(), per[n]) for n in names)


def run_configured(
    files: RunFiles,
    summary_json: str | Path,
    *,
    method: str,
    sparsity: float,
    options: DstOptions,
    data: DataHparams,
    model: ModelHparams,
    recipe: TrainHparams,
    seed: int,
    compute: ComputeHparams,
) -> TrainResult:
    """One run of a ``dst`` experiment: the method's spec (and, for thin dense, the width matched
    to the sparse network's learnable parameters at ``sparsity``) from the experiment's options."""
    reference = model
    if method == "thin_dense":
        info = build_splits(data).info
        thin = options.thin
        if thin.widths == "auto":
            budget = sparse_learnable(
                model, info.num_classes, info.input_shape, sparsity, options.layers, options.sparsity_fc
            )
            kwargs = thin_kwargs(model, info.num_classes, info.input_shape, budget, thin.key)
        else:  # the key is named (ThinHparams.validate)
            kwargs = {**model.kwargs, thin.key: {float(k): v for k, v in thin.widths.items()}[float(sparsity)]}
        model = ModelHparams(model.arch, kwargs)
        spec = dense_spec()
    elif method == "dense":
        spec = dense_spec()
    else:
        active = None
        if method == "set" and options.set_fraction == "auto":
            info = build_splits(data).info
            active = _active_entries(model, info.num_classes, info.input_shape, sparsity, options)
        spec = spec_from_options(method, sparsity, options, active)
    return run_sparse_training(
        files,
        summary_json,
        data=data,
        model=model,
        recipe=recipe,
        spec=spec,
        seed=seed,
        compute=compute,
        reference_model=reference,
    )
