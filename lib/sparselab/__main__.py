"""``python -m sparselab``: single pipeline steps outside Snakemake (debugging, notebooks, tests).

    python -m sparselab train config.yaml --dataset digits --model lenet --recipe mlp_dense --out runs/x
    python -m sparselab prune runs/x/model.safetensors runs/p/pruned.safetensors --sparsity 0.9 --scope global
    python -m sparselab evaluate runs/p/pruned.safetensors config.yaml --dataset digits
    python -m sparselab info runs/x/model.safetensors
    python -m sparselab gpu-hours configs/*.yaml
    python -m sparselab plan configs/*.yaml

``train`` resumes from ``--state-dir`` (default ``<out>/.resume``) when run again after a kill.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def _load_config(path: str):
    import yaml

    from .config.workflow import build_workflow_config, validate_schema

    config = yaml.safe_load(Path(path).read_text())
    if SCHEMA.exists():
        validate_schema(config, SCHEMA, source=path)
    return build_workflow_config(config)


def _pick(defined: dict, name: str, section: str):
    if name not in defined:
        raise KeyError(f"{name!r} is not defined under {section}: (defined: {', '.join(sorted(defined))})")
    return defined[name]


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from .jobs import setup_logging
    from .train.run import RunFiles, run_training

    setup_logging(None)
    cfg = _load_config(args.config)
    files = RunFiles.in_directory(args.out)
    if args.state_dir:
        files = dataclasses.replace(files, state_dir=Path(args.state_dir))
    compute = cfg.compute.replace(progress="bar") if args.progress else cfg.compute
    result = run_training(
        files,
        data=_pick(cfg.datasets, args.dataset, "datasets"),
        model=_pick(cfg.models, args.model, "models"),
        recipe=_pick(cfg.recipes, args.recipe, "recipes"),
        seed=args.seed,
        compute=compute,
    )
    print(json.dumps({"resumed_from_epoch": result.resumed_from_epoch, **result.final}, indent=2))
    return 0


def _prune(args: argparse.Namespace) -> int:
    from .studies.oneshot import prune_checkpoint

    meta = prune_checkpoint(args.checkpoint, args.out, sparsity=args.sparsity, scope=args.scope)
    print(json.dumps(meta["sparsity"], indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import tempfile

    from .metrics.checkpoint_eval import evaluate_checkpoint

    cfg = _load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        data = _pick(cfg.datasets, args.dataset, "datasets")
        record = evaluate_checkpoint(args.checkpoint, data, Path(tmp) / "eval.json", compute=cfg.compute)
    record.pop("layer_sparsity", None)
    print(json.dumps(record, indent=2))
    return 0


def _info(args: argparse.Namespace) -> int:
    from .io.checkpoint import read_meta

    meta = read_meta(args.checkpoint)
    sparsity = meta.get("sparsity") or {}
    summary = {
        "arch": meta["arch"],
        "method": meta.get("method"),
        "params": meta.get("params"),
        "mask_sparsity": sparsity.get("sparsity"),
        "metrics": meta.get("metrics"),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _pathnorm(args: argparse.Namespace) -> int:
    from .divergence import check_finite
    from .io.checkpoint import load_checkpoint
    from .metrics.pathnorm import path_norms

    ckpt = load_checkpoint(args.checkpoint)
    check_finite(ckpt.model.state_dict().items(), args.checkpoint, "the path-norm is undefined (the training diverged)")
    shape = tuple(args.input_shape) if args.input_shape else tuple(ckpt.spec.input_shape)
    dtype = {"float32": torch_dtype("float32"), "float64": torch_dtype("float64")}[args.dtype]
    print(f"{'q':>6}  {'convention':<10}  {'L_q path-norm':>14}  {'log10':>12}")
    for convention in args.convention:
        for pn in path_norms(ckpt.model, args.q, shape, convention=convention, dtype=dtype):
            print(f"{pn.q:6g}  {convention:<10}  {pn.value:14.6e}  {pn.log10:12.6f}")
    return 0


def _gpu_hours(args: argparse.Namespace) -> int:
    from .report.gpu_hours import table

    print(table(Path(__file__).resolve().parents[2], args.configs))
    return 0


def _plan(args: argparse.Namespace) -> int:
    import time

    from .plan import dry_runs, job_stats

    t0, failed, total = time.perf_counter(), 0, 0
    for plan in dry_runs(args.configs, args.snakemake_args):
        print(f"== {plan.configfile} ({plan.seconds:.1f} s)\n{job_stats(plan.output)}\n")
        failed += not plan.ok
        total += plan.jobs or 0
    print(f"{len(args.configs)} configs, {total} jobs planned in {time.perf_counter() - t0:.1f} s"
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def torch_dtype(name: str):  # noqa: ANN201  (torch imported lazily: the CLI starts fast)
    import torch

    return getattr(torch, name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparselab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model from scratch, resumable")
    p.add_argument("config", help="a workflow config (YAML) that defines the names below")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--recipe", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for model.safetensors, metrics.csv, hparams.json")
    p.add_argument("--state-dir", help="resume state directory (default: <out>/.resume)")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("prune", help="one-shot magnitude pruning of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--sparsity", type=float, required=True)
    p.add_argument("--scope", choices=["layerwise", "global"], default="layerwise")
    p.set_defaults(func=_prune)

    p = sub.add_parser("evaluate", help="test/val accuracy, sparsity and parameter counts of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("config")
    p.add_argument("--dataset", required=True)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("pathnorm", help="exact L^q path-norms of a checkpoint (Gonon et al. 2024)")
    p.add_argument("checkpoint")
    p.add_argument("--q", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0, 16.0], help="exponents (0 counts paths)")
    p.add_argument("--convention", nargs="+", choices=["exact", "gbrg24"], default=["exact"],
                   help="exact: the definition; gbrg24: the original code's numbers")  # fmt: skip
    p.add_argument("--input-shape", type=int, nargs="+", help="C H W (default: the checkpoint's input shape)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.set_defaults(func=_pathnorm)

    p = sub.add_parser("info", help="print a checkpoint's sidecar summary")
    p.add_argument("checkpoint")
    p.set_defaults(func=_info)

    p = sub.add_parser("plan", help="snakemake -n of several configs in one process (the plans together, fast)")
    p.add_argument("configs", nargs="+")
    p.add_argument("--snakemake-args", nargs=argparse.REMAINDER, default=[], help="passed on to every dry run")
    p.set_defaults(func=_plan)

    p = sub.add_parser("gpu-hours", help="GPU-hours the jobs of configs ask of a cluster (a Markdown table)")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=_gpu_hours)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .divergence import DivergenceError  # stdlib only: the CLI still starts fast

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (KeyError, ValueError, DivergenceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
