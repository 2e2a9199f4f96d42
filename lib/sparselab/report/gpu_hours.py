"""GPU-hours a config asks of a cluster, read from the jobs Snakemake would submit.

Every job's ``runtime`` (the SLURM time limit, first attempt) is ``base + 1.5 x expected``,
where ``expected = epochs x resources.epoch_minutes[source]`` (``rules/common.smk``), so the
expected minutes are recovered from the limits. The plan comes from ``snakemake -n`` (a dry run
prints every job's resolved resources), so the numbers are those of exactly the jobs a run would
start. The dry run uses the local executor: the rules' resources are the same for every executor
(a test compares them with the SLURM executor's where its plugin is installed), and a machine
without the cluster extra, e.g. after ``make run``, can compute the table too.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

MARGIN = 1.5  # rules/common.smk: runtime = base + MARGIN x expected minutes


@dataclasses.dataclass
class RuleCost:
    jobs: int = 0
    gpu_jobs: int = 0
    limit_gpu_hours: float = 0.0  # sum of gpu x time limit
    expected_gpu_hours: float = 0.0  # the same without the safety margin


def parse_plan(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's output."""
    jobs: list[tuple[str, dict[str, str]]] = []
    rule = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            rule = m.group(1)
            jobs.append((rule, {}))
            continue
        m = re.match(r"^\s+resources: (.*)$", line)
        if m and jobs:
            for kv in m.group(1).split(", "):
                if "=" in kv:
                    key, _, value = kv.partition("=")
                    jobs[-1][1][key] = value
    return jobs


def costs(plan: Iterable[tuple[str, dict[str, str]]], base_minutes: float) -> dict[str, RuleCost]:
    out: dict[str, RuleCost] = defaultdict(RuleCost)
    for rule, res in plan:
        c = out[rule]
        c.jobs += 1
        gpus = int(res.get("gpu", 0) or 0)
        if gpus < 1 or "runtime" not in res:
            continue
        limit = float(res["runtime"])
        c.gpu_jobs += 1
        c.limit_gpu_hours += gpus * limit / 60
        c.expected_gpu_hours += gpus * max(0.0, limit - base_minutes) / MARGIN / 60
    return dict(out)


def dry_run(repo: Path, configfile: str | Path, executor: str | None = None) -> str:
    """``snakemake -n`` of ``configfile`` in ``repo`` (its output: every job with its resources)."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "--jobs",
        "1",
        "--workflow-profile",
        "none",
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(repo),
        "--configfile",
        str(configfile),
    ]
    if executor:
        cmd += ["--executor", executor]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        raise RuntimeError(f"dry run of {configfile} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def base_minutes(configfile: str | Path) -> float:
    import yaml

    config = yaml.safe_load(Path(configfile).read_text()) or {}
    return float((config.get("resources") or {}).get("runtime_base_minutes", 5))


def table(repo: Path, configfiles: Sequence[str | Path]) -> str:
    """A Markdown table: per config, its jobs, GPU jobs, expected GPU-hours and GPU-hours of time limits."""
    rows = ["| config | jobs | GPU jobs | expected GPU-hours | GPU-hours of time limits |", "|---|---:|---:|---:|---:|"]
    for cf in configfiles:
        per_rule = costs(parse_plan(dry_run(repo, cf)), base_minutes(cf))
        total = RuleCost()
        for c in per_rule.values():
            total.jobs += c.jobs
            total.gpu_jobs += c.gpu_jobs
            total.limit_gpu_hours += c.limit_gpu_hours
            total.expected_gpu_hours += c.expected_gpu_hours
        jobs = total.jobs - per_rule.get("all", RuleCost()).jobs
        rows.append(
            f"| `{cf}` | {jobs} | {total.gpu_jobs} | {total.expected_gpu_hours:,.0f} | {total.limit_gpu_hours:,.0f} |"
        )
    return "\n".join(rows)
