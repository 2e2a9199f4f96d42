"""Dynamic sparse training from scratch (Mostafa & Wang, ICML 2019): one run of one method.

Methods (:func:`run_sparse_training`): ``dsr``, ``set``, ``deepr``, ``static`` (fixed random
masks), ``tied`` (HashedNet-style shared banks) and ``dense`` (full or thin, by the model's width
knob). Every run writes the engine's checkpoint (masks as explicit tensors; tied layers rebuilt
from the sidecar), metrics and hparams, plus ``summary.json`` (:func:`.common.run_summary`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import torch

from ...config import ComputeHparams, DataHparams, ModelHparams, SeedHparams, TrainHparams
from ...config.hparams import spec_record
from ...data import build_splits
from ...dst.callbacks import DSR, SET, DeepR, StaticSparse, StepSchedule
from ...dst.layers import active_count, initial_masks, layer_sparsities, sparse_tensors
from ...dst.penalties import L1Penalty
from ...dst.tied import tie_weights
from ...io.atomic import atomic_write_json
from ...models import arch_kwargs, build_model
from ...models.spec import ArchSpec
from ...train.callbacks import Callback
from ...train.engine import TrainResult
from ...train.run import RunFiles, build_seeded, train_and_save
from .common import run_summary

__all__ = ["METHODS", "DSTSpec", "run_sparse_training", "run_configured"]

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
            tie_weights(net, modules, spec.sparsity, mask_seed)
        else:
            sparsity = layer_sparsities(net, names, spec.sparsity, spec.sparsity_fc)
            masks = initial_masks(net, names, sparsity, torch.Generator().manual_seed(mask_seed), spec.granularity)
            callbacks = (_callback(spec, masks, mask_seed),)
            if spec.l1 and spec.method != "deepr":
                callbacks += (L1Penalty(names, spec.l1),)
    hparams = {"method": f"dst_{spec.method}", "seed": seed, "seeds": seeds.to_dict(), "data": data.to_dict(),
               "model": model.to_dict(), "train": recipe.to_dict(), "dst": spec_record(spec)}  # fmt: skip
    result = train_and_save(files, net, arch, None, hparams, data=data, splits=splits, recipe=recipe, seeds=seeds,
                            compute=compute, eval_before=False, callbacks=callbacks)  # fmt: skip
    atomic_write_json(summary_json, {"method": spec.method, **run_summary(result, result.model, arch)})
    return result


def _int_keys(d: Mapping[Any, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}


def sparse_learnable(model: ModelHparams, num_classes: int, input_shape: Sequence[int], sparsity: float,
                     sparse_layers: str | Sequence[str] = "paper", sparsity_fc: float | None = None) -> int:  # fmt: skip
    """Learnable parameters of the sparse network at ``sparsity`` (dense tensors in full)."""
    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    names = sparse_tensors(net, model.arch, sparse_layers if isinstance(sparse_layers, str) else list(sparse_layers))
    params = dict(net.named_parameters())
    per = layer_sparsities(net, names, sparsity, sparsity_fc)
    total = sum(p.numel() for p in net.parameters())
    return total - sum(params[n].numel() - active_count(params[n].numel(), per[n]) for n in names)


_WIDTH_KEYS = ("widen_factor", "width", "hidden")


def thin_kwargs(model: ModelHparams, num_classes: int, input_shape: Sequence[int], budget: int,
                key: str = "auto") -> dict[str, Any]:  # fmt: skip
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
    net = build_model(model.arch, num_classes, tuple(input_shape), **model.kwargs)
    layers = options.get("sparse_layers", "paper")
    names = sparse_tensors(net, model.arch, layers if isinstance(layers, str) else list(layers))
    params = dict(net.named_parameters())
    per = layer_sparsities(net, names, sparsity, options.get("sparsity_fc"))
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
