"""Dry-run scale (issue 7, point 6): how long Snakemake takes to plan each paper config.

1. Separate processes, as users run it: ``snakemake -n --quiet rules --configfile configs/X.yaml``
   for every ``configs/*.yaml`` (the paper configs), in the repository (a dry run writes no
   results), with the default workflow profile that users get. Per config: the job count (the
   "Job stats" total) and the wall time of the whole command, with the CPU time of the process
   beside it (the wall time of a shared machine drifts more). Goal: the sum over the configs
   <= 10 s.
2. One process, as ``python -m sparselab plan configs/*.yaml`` runs them: the same command lines in one fresh interpreter, through Snakemake's own
   translation of a command line into API calls (``snakemake.cli.parse_args`` + ``args_to_api``,
   which drives ``snakemake.api.SnakemakeApi`` in dry-run mode, workflow profile included), so
   the interpreter start and Snakemake's imports are paid once: the wall time of the whole
   process, its import part, and each config's share. Same goal.

Baseline measured in the same run: ``snakemake --version`` (interpreter start + Snakemake's CLI
import), the floor under every separate process. Snakemake imports every installed executor
plugin at start: the SLURM plugin imports pandas and runs ``scontrol show config``, which waits
up to 10 s where ``scontrol`` exists but no controller answers; a floor of seconds is that, not
the workflow.

One untimed dry run first (file-system cache, and the per-file import cache that
rules/common.smk keeps in .snakemake/); then medians over ``--repeat`` rounds, each round timing
every config in turn and then the single process.

    python bench/dag.py [--repeat 3] [--configs configs/a.yaml configs/b.yaml]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
GOAL_S = 10.0


def dry_run_args(config: str) -> list[str]:
    return ["-n", "--quiet", "rules", "--configfile", config]


def job_count(text: str) -> int:
    """The "total" row of Snakemake's job stats; 0 for "Nothing to be done"."""
    found = re.search(r"^total\s+(\d+)\s*$", text, re.M)
    if found:
        return int(found.group(1))
    if "Nothing to be done" in text:
        return 0
    raise SystemExit(f"no job count in Snakemake's output:\n{text[-3000:]}")


def run_timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall and CPU (user + system) seconds of a child process, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout + proc.stderr


def in_process(configs: list[str]) -> None:
    """Worker of part 2 (a fresh interpreter): plans every config with ``sparselab.dryrun`` (what
    ``python -m sparselab plan`` runs), prints timings as JSON."""
    out = sys.stdout
    t0 = time.perf_counter()
    sys.path.insert(0, str(REPO / "lib"))
    import snakemake.cli  # noqa: F401  (timed as the imports)

    from sparselab.dryrun import dry_runs

    result = {"import_s": time.perf_counter() - t0, "configs": []}
    c = time.process_time()
    for plan in dry_runs(configs):
        cpu, c = time.process_time() - c, time.process_time()
        if not plan.ok:
            raise SystemExit(f"dry run of {plan.configfile} failed:\n{plan.output[-3000:]}")
        result["configs"].append(
            {"config": plan.configfile, "jobs": job_count(plan.output), "wall_s": plan.seconds, "cpu_s": cpu}
        )
    print(json.dumps(result), file=out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--configs", nargs="+", default=sorted(str(p.relative_to(REPO)) for p in (REPO / "configs").glob("*.yaml"))
    )
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # part 2's worker
    args = parser.parse_args()
    if args.in_process:
        in_process(args.configs)
        return

    run_timed([str(SNAKEMAKE), *dry_run_args(args.configs[0])])  # warm-up, not timed
    floor: list[float] = []
    cli: dict[str, list[tuple[float, float, int]]] = {c: [] for c in args.configs}
    single: list[dict] = []
    for _ in range(args.repeat):
        floor.append(run_timed([str(SNAKEMAKE), "--version"])[0])
        for config in args.configs:
            wall, cpu, text = run_timed([str(SNAKEMAKE), *dry_run_args(config)])
            cli[config].append((wall, cpu, job_count(text)))
        wall, cpu, text = run_timed(
            [sys.executable, str(Path(__file__).resolve()), "--in-process", "--configs", *args.configs]
        )
        single.append({**json.loads(text.strip().splitlines()[-1]), "wall_s": wall, "cpu_s": cpu})

    def med(values) -> float:  # type: ignore[no-untyped-def]
        return statistics.median(values)

    width = max(len(c) for c in args.configs)
    print(
        f"1. snakemake -n --quiet rules --configfile X, one process per config (median of {args.repeat}; "
        f"floor: `snakemake --version` {med(floor):.2f} s per process)"
    )
    total_wall = total_cpu = 0.0
    total_jobs = 0
    for config, runs in cli.items():
        wall, cpu, jobs = med(r[0] for r in runs), med(r[1] for r in runs), runs[0][2]
        total_wall, total_cpu, total_jobs = total_wall + wall, total_cpu + cpu, total_jobs + jobs
        print(f"   {config:<{width}}  {jobs:5d} jobs  {wall:6.2f} s  (cpu {cpu:5.2f} s)")
    print(
        f"   {'total':<{width}}  {total_jobs:5d} jobs  {total_wall:6.2f} s  (cpu {total_cpu:5.2f} s); "
        f"goal <= {GOAL_S:g} s: {'PASS' if total_wall <= GOAL_S else 'FAIL'}"
    )

    print(
        f"2. all configs together in one interpreter, as `python -m sparselab plan configs/*.yaml` (snakemake.cli.args_to_api, "
        f"dry run; median of {args.repeat})"
    )
    print(f"   {'imports':<{width}}             {med(s['import_s'] for s in single):6.2f} s")
    for i, config in enumerate(args.configs):
        jobs = single[0]["configs"][i]["jobs"]
        same = "" if jobs == cli[config][0][2] else f"  MISMATCH: {cli[config][0][2]} jobs in part 1"
        wall = med(s["configs"][i]["wall_s"] for s in single)
        cpu = med(s["configs"][i]["cpu_s"] for s in single)
        print(f"   {config:<{width}}  {jobs:5d} jobs  {wall:6.2f} s  (cpu {cpu:5.2f} s){same}")
    wall, cpu = med(s["wall_s"] for s in single), med(s["cpu_s"] for s in single)
    print(
        f"   {'total (process)':<{width}}  {total_jobs:5d} jobs  {wall:6.2f} s  (cpu {cpu:5.2f} s); "
        f"goal <= {GOAL_S:g} s: {'PASS' if wall <= GOAL_S else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
