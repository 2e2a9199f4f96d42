"""``python -m sparselab``: single pipeline steps outside Snakemake (debugging, notebooks, tests).

    python -m sparselab train config.yaml --dataset digits --model lenet --recipe mlp_dense --out runs/x
    python -m sparselab prune runs/x/model.safetensors runs/p/pruned.safetensors --sparsity 0.9 --scope global
    python -m sparselab evaluate runs/p/pruned.safetensors config.yaml --dataset digits
    python -m sparselab info runs/x/model.safetensors
    python -m sparselab gpu-hours configs/*.yaml
    python -m sparselab plan configs/*.yaml

``train`` resumes from ``--state-dir`` (default ``<out>/.resume``) when run again after a kill, and
uses the config's ``resources.threads`` CPU threads, as the pipeline's jobs do (``--threads`` overrides).
Commands never write over a file they read, nor into a workflow's ``results/`` (Snakemake's outputs)
unless given ``--force``; checkpoints are verified against their sidecar's size and SHA-256 unless
given ``--no-verify``. Mistakes in the command line or its files print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from .config.code_deps import code_version
from .divergence import DivergenceError, check_finite
from .dryrun import dry_runs, job_stats
from .io.guard import check_outputs
from .io.state_dir import close_state_dir, open_state_dir, state_key
from .jobs import setup_logging
from .report.gpu_hours import table
from .workflow import build_workflow_config, validate_schema

# Above: modules without torch. Each command imports the torch stack it needs itself, so that
# `--help`, `info`, `plan` and `gpu-hours` start in a fraction of a second.

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class UsageError(ValueError):
    """A mistake in the command line or the files it names: one line, exit status 2."""


def _yaml_error(path: str, exc: yaml.MarkedYAMLError) -> str:
    where = f" at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}" if exc.problem_mark else ""
    context = (
        f" ({exc.context} that starts at line {exc.context_mark.line + 1})" if exc.context and exc.context_mark else ""
    )
    return f"{path}: YAML syntax error{where}: {exc.problem or exc.context}{context}; fix the file there"


def _load_config(path: str):
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{path}: no such config file; give the path of a workflow config (e.g. config.yaml)")
    try:
        config = yaml.safe_load(file.read_text())
    except yaml.MarkedYAMLError as exc:
        raise UsageError(_yaml_error(path, exc)) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a YAML file ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict):
        raise UsageError(
            f"{path}: a config is a mapping of sections (datasets:, models:, recipes: ...), "
            f"this file holds {type(config).__name__}"
        )
    if SCHEMA.exists():
        validate_schema(config, SCHEMA, source=path)
    return build_workflow_config(config)


def _pick(defined: dict, name: str, option: str, section: str, config: str):
    if name not in defined:
        raise UsageError(
            f"--{option} {name}: not defined under {section}: in {config} (defined: {', '.join(sorted(defined))})"
        )
    return defined[name]


def _check_input_shape(ckpt, shape: tuple[int, ...], source: str) -> None:  # noqa: ANN001  (a Checkpoint)
    """Refuse an input shape the checkpoint's model cannot take. Another resolution is fine where the
    forward pass gives the usual logits (fully convolutional nets); the channels must be the model's."""
    import torch  # lazy: the CLI starts without torch (see the imports above)

    expected = tuple(ckpt.spec.input_shape)
    if shape == expected:
        return
    why = None
    if shape[0] != expected[0]:
        why = f"the model takes {expected[0]} channel(s)"
    else:
        model, training = ckpt.model, ckpt.model.training
        try:
            with torch.no_grad():
                out = model.eval()(torch.zeros(1, *shape))
            if tuple(out.shape) != (1, ckpt.spec.num_classes):
                why = f"the model's output on it has shape {tuple(out.shape)}, not (1, {ckpt.spec.num_classes})"
        except (RuntimeError, ValueError):
            why = "the model's forward pass fails on it"
        finally:
            model.train(training)
    if why:
        spelled = " ".join(map(str, expected))
        raise UsageError(
            f"--input-shape {' '.join(map(str, shape))}: does not fit {source} (input {spelled}): {why}; "
            f"pass --input-shape {spelled} or leave it out"
        )


def _train(args: argparse.Namespace) -> int:
    # lazy: the torch stack, for this command only (see the imports above)
    import torch

    from .io.checkpoint import sidecar_path
    from .train import run
    from .train.state import RESUME_FILE

    setup_logging(None)
    cfg = _load_config(args.config)
    picked = {
        "data": _pick(cfg.datasets, args.dataset, "dataset", "datasets", args.config),
        "model": _pick(cfg.models, args.model, "model", "models", args.config),
        "recipe": _pick(cfg.recipes, args.recipe, "recipe", "recipes", args.config),
    }
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: a file, not a directory; give the directory the run's files go to")
    files = run.RunFiles.in_directory(args.out)
    if args.state_dir:
        files = dataclasses.replace(files, state_dir=Path(args.state_dir))
    outputs = [files.checkpoint, sidecar_path(files.checkpoint), files.metrics_csv, files.hparams_json]
    check_outputs([*outputs, files.state_dir / RESUME_FILE], [args.config], force=args.force)
    # The pipeline's jobs train with resources.threads (rules/common.smk, sparselab.jobs): the same
    # count here gives the same model bit for bit; another count changes results by rounding.
    torch.set_num_threads(args.threads or int(cfg.resources.get("threads", 1)))
    compute = cfg.compute.replace(progress="bar") if args.progress else cfg.compute
    # Resume state is valid only for this run's config and code, as in the pipeline (sparselab.jobs).
    code = code_version(run.__file__, Path(run.__file__).resolve().parents[2])
    spec = {"command": "train", "seed": args.seed, **{k: v.to_dict() for k, v in picked.items()}}
    open_state_dir(files.state_dir, state_key(spec, code))
    result = run.run_training(files, **picked, seed=args.seed, compute=compute)
    close_state_dir(files.state_dir)
    print(json.dumps({"resumed_from_epoch": result.resumed_from_epoch, **result.final}, indent=2))
    return 0


def _prune(args: argparse.Namespace) -> int:
    # lazy: the torch stack, for this command only (see the imports above)
    from .io.checkpoint import sidecar_path
    from .io.guard import check_outputs
    from .studies.oneshot.prune import prune_checkpoint

    if not args.out.endswith(".safetensors"):
        raise UsageError(f"{args.out}: checkpoint files end in .safetensors")
    check_outputs(
        [args.out, sidecar_path(args.out)], [args.checkpoint, sidecar_path(args.checkpoint)], force=args.force
    )
    meta = prune_checkpoint(
        args.checkpoint, args.out, sparsity=args.sparsity, scope=args.scope, verify=not args.no_verify
    )
    print(json.dumps(meta["sparsity"], indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .metrics.checkpoint_eval import evaluate_checkpoint  # lazy: the torch stack, for this command only

    cfg = _load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        data = _pick(cfg.datasets, args.dataset, "dataset", "datasets", args.config)
        record = evaluate_checkpoint(
            args.checkpoint, data, Path(tmp) / "eval.json", compute=cfg.compute, verify=not args.no_verify
        )
    record.pop("layer_sparsity", None)
    print(json.dumps(record, indent=2))
    return 0


SHORT_HASH = 12  # hex digits of a parent's SHA-256 that `info` prints


def _lineage(meta: dict, checkpoint: str) -> list[dict[str, str]] | str:
    """``info``'s ``parents``: each parent's role, path and short hash, and whether its file (found
    as recorded or under a directory above ``checkpoint``) still has that hash; "unknown" for a
    sidecar written before lineage was recorded."""
    from .io.provenance import check_parent, read_parents

    parents = read_parents(meta)
    if parents is None:
        return "unknown (the sidecar predates lineage records)"
    shown = []
    for parent in parents:
        status, found = check_parent(parent, checkpoint)
        now = {
            "matches": "matches",
            "changed": "changed since (stale lineage: the parent was rewritten after this checkpoint was made)",
            "missing": "missing (not found as recorded, nor under a directory above this checkpoint)",
        }[status]
        entry = {"role": parent.role, "path": parent.path, "sha256": parent.sha256[:SHORT_HASH], "now": now}
        if found is not None and str(found) != parent.path:
            entry["found_at"] = str(found)
        shown.append(entry)
    return shown


def _info(args: argparse.Namespace) -> int:
    from .io.checkpoint import read_meta, verify_tensors  # lazy: safetensors imports torch

    meta = read_meta(args.checkpoint)
    if not args.no_verify:
        verify_tensors(args.checkpoint, meta)
    sparsity = meta.get("sparsity") or {}
    summary = {
        "verified": not args.no_verify,  # size and SHA-256 of the tensors match the sidecar
        "arch": meta["arch"],
        "method": meta.get("method"),
        "params": meta.get("params"),
        "mask_sparsity": sparsity.get("sparsity"),
        "metrics": meta.get("metrics"),
        "parents": _lineage(meta, args.checkpoint),
    }
    print(json.dumps(summary, indent=2))
    return 0


def _pathnorm(args: argparse.Namespace) -> int:
    # lazy: the torch stack, for this command only (see the imports above)
    from .metrics.pathnorm import path_norms
    from .models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint, verify=not args.no_verify)
    check_finite(ckpt.model.state_dict().items(), args.checkpoint, "the path-norm is undefined (the training diverged)")
    shape = tuple(args.input_shape) if args.input_shape else tuple(ckpt.spec.input_shape)
    _check_input_shape(ckpt, shape, args.checkpoint)
    dtype = {"float32": torch_dtype("float32"), "float64": torch_dtype("float64")}[args.dtype]
    print(f"{'q':>6}  {'convention':<10}  {'L_q path-norm':>14}  {'log10':>12}")
    for convention in args.convention:
        for pn in path_norms(ckpt.model, args.q, shape, convention=convention, dtype=dtype):
            print(f"{pn.q:6g}  {convention:<10}  {pn.value:14.6e}  {pn.log10:12.6f}")
    return 0


def _gpu_hours(args: argparse.Namespace) -> int:
    for configfile in args.configs:
        _load_config(configfile)  # a mistake in a config: one line here, not a failed dry run
    print(table(Path(__file__).resolve().parents[2], args.configs))
    return 0


def _plan(args: argparse.Namespace) -> int:
    t0, failed, total = time.perf_counter(), 0, 0
    for plan in dry_runs(args.configs, args.snakemake_args):
        print(f"== {plan.configfile} ({plan.seconds:.1f} s)\n{job_stats(plan.output)}\n")
        failed += not plan.ok
        total += plan.jobs or 0
    print(
        f"{len(args.configs)} configs, {total} jobs planned in {time.perf_counter() - t0:.1f} s"
        + (f"; {failed} failed" if failed else "")
    )
    return 1 if failed else 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def torch_dtype(name: str):  # noqa: ANN201  (torch imported lazily: the CLI starts fast)
    import torch  # lazy: the CLI starts without torch

    return getattr(torch, name)


NO_VERIFY = "skip checking the tensor file's size and SHA-256 against the sidecar (needed if it records none)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sparselab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads (default: the config's resources.threads, as the pipeline's jobs)",
    )
    p.add_argument("--force", action="store_true", help="write even into a workflow's results/ directory")
    p.set_defaults(func=_train)

    p = sub.add_parser("prune", help="one-shot magnitude pruning of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--sparsity", type=float, required=True)
    p.add_argument("--scope", choices=["layerwise", "global"], default="layerwise")
    p.add_argument("--force", action="store_true", help="write even into a workflow's results/ directory")
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY)
    p.set_defaults(func=_prune)

    p = sub.add_parser("evaluate", help="test/val accuracy, sparsity and parameter counts of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("config")
    p.add_argument("--dataset", required=True)
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("pathnorm", help="exact L^q path-norms of a checkpoint (Gonon et al. 2024)")
    p.add_argument("checkpoint")
    p.add_argument("--q", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0, 16.0], help="exponents (0 counts paths)")
    p.add_argument(
        "--convention",
        nargs="+",
        choices=["exact", "gbrg24"],
        default=["exact"],
        help="exact: the definition; gbrg24: the original code's numbers",
    )
    p.add_argument(
        "--input-shape",
        type=_positive_int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="the input (default: the checkpoint's); another H W only where the model takes it",
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY)
    p.set_defaults(func=_pathnorm)

    p = sub.add_parser(
        "info",
        help="verify a checkpoint against its sidecar and print the sidecar's summary and parents "
        "(whether each parent file still has the hash recorded)",
    )
    p.add_argument("checkpoint")
    p.add_argument("--no-verify", action="store_true", help=NO_VERIFY)
    p.set_defaults(func=_info)

    p = sub.add_parser("plan", help="snakemake -n of several configs in one process (the plans together, fast)")
    p.add_argument("configs", nargs="+")
    p.add_argument("--snakemake-args", nargs=argparse.REMAINDER, default=[], help="passed on to every dry run")
    p.set_defaults(func=_plan)

    p = sub.add_parser("gpu-hours", help="GPU-hours the jobs of configs ask of a cluster (a Markdown table)")
    p.add_argument("configs", nargs="+")
    p.set_defaults(func=_gpu_hours)
    return parser


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError's str quotes it
    return " ".join(str(text).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors (bad arguments, files, configs, checkpoints) and a diverged
    training print one line, not a traceback: status 2 for the former, 1 for divergence."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DivergenceError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
