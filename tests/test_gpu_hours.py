"""GPU-hours of a config: the dry run's resources, summed; the margin taken off the time limits."""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO, tiny_config, write_config

from sparselab.report.gpu_hours import costs, dry_run, parse_plan

PLAN = """
rule train_dense:
    input: a
    resources: tmpdir=/tmp, runtime=95, gpu=2, cpus_per_task=2, mem_mb=8000
rule train_dense:
    resources: tmpdir=/tmp, runtime=95, gpu=2, cpus_per_task=2, mem_mb=8000
localrule oneshot_figure:
    resources: tmpdir=/tmp
rule transfer_linear:
    resources: tmpdir=/tmp, runtime=10, mem_mb=100
"""


def test_costs_take_the_margin_off_the_time_limits():
    plan = parse_plan(PLAN)
    assert [r for r, _ in plan] == ["train_dense", "train_dense", "oneshot_figure", "transfer_linear"]
    c = costs(plan, base_minutes=5)
    assert c["train_dense"].jobs == 2 and c["train_dense"].gpu_jobs == 2
    assert c["train_dense"].limit_gpu_hours == pytest.approx(2 * 2 * 95 / 60)
    assert c["train_dense"].expected_gpu_hours == pytest.approx(2 * 2 * 60 / 60)  # (95 - 5) / 1.5 = 60 min
    assert c["transfer_linear"].gpu_jobs == 0 and c["oneshot_figure"].limit_gpu_hours == 0


@pytest.mark.workflow
def test_the_tiny_config_costs_what_its_epochs_say(tmp_path):
    """2 dense runs of 12 epochs and 8 finetunings of 3 epochs at 0.5 min an epoch on 2 GPUs, and
    10 evaluations (one GPU, one epoch's worth): expected = sum of epochs x minutes x GPUs."""
    config = tiny_config()
    config["resources"] = {"gpus": 2, "epoch_minutes": {"digits": 0.5}}
    cf = write_config(tmp_path / "config.yaml", config)
    c = costs(parse_plan(dry_run(REPO, cf)), base_minutes=5)
    assert c["train_dense"].jobs == 2 and c["prune_finetune_oneshot"].jobs == 8
    # runtime = ceil(5 + 1.5 x epochs x 0.5): 14 min for 12 epochs, 8 (ceil 7.25) for 3
    assert c["train_dense"].expected_gpu_hours == pytest.approx(2 * 2 * 12 * 0.5 / 60)
    assert c["prune_finetune_oneshot"].limit_gpu_hours == pytest.approx(8 * 2 * 8 / 60)
    assert c["evaluate_oneshot"].gpu_jobs == 10
    assert c["evaluate_oneshot"].limit_gpu_hours == pytest.approx(10 * 1 * 6 / 60)  # ceil(5 + 0.75)


@pytest.mark.workflow
@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason='compares with the SLURM executor: pip install -e ".[cluster]"',
)
def test_the_local_dry_run_asks_what_the_slurm_one_asks(tmp_path):
    """gpu-hours plans with the local executor (no plugin needed); SLURM jobs get the same resources."""
    config = tiny_config()
    config["resources"] = {"gpus": 2, "epoch_minutes": {"digits": 0.5}}
    cf = write_config(tmp_path / "config.yaml", config)

    def asks(executor: str | None) -> list[tuple[str, str | None, str | None]]:
        return sorted(
            (rule, res.get("gpu"), res.get("runtime")) for rule, res in parse_plan(dry_run(REPO, cf, executor))
        )

    local = asks(None)
    assert len(local) == 25 and local == asks("slurm")  # the reproduction table included
