"""Data-parallel training: N gloo processes on CPU end where one process ends, masks and pruning included."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from conftest import REPO, run_snakemake, tiny_config, write_config
from safetensors.torch import load_file
from torch import nn

from sparselab.launch import torchrun_command
from sparselab.train.distributed import GlobalBatchNorm, global_batchnorm

WORKER = REPO / "tests" / "ddp_worker.py"


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(REPO / "lib")}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.workflow
@pytest.mark.parametrize("kind", ["acdc", "dsr"])
def test_two_gloo_processes_end_with_the_weights_and_masks_of_one(tmp_path, kind):
    """Same global batch (51, so the slices are 26 + 25, and a short last batch; evaluation batches
    of 97 split 49 + 48, so the uneven gather is exercised), BatchNorm over
    the global batch, AC/DC's prune/regrow phases or DSR's rewiring: same weights, same masks."""
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, str(WORKER), str(one), kind])
    _run(torchrun_command(2, str(WORKER), [str(two), kind]))

    a, b = load_file(str(one / "weights.safetensors")), load_file(str(two / "weights.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("mask/") for k in a)
    for key in a:
        if key.startswith("mask/") or not a[key].is_floating_point():
            assert torch.equal(a[key], b[key]), f"{key} differs"  # masks, num_batches_tracked
        else:
            assert torch.allclose(a[key], b[key], rtol=0, atol=1e-10), f"{key}: {(a[key] - b[key]).abs().max()}"
    rank1 = load_file(str(two / "rank1.safetensors"))
    assert all(torch.equal(b[k], rank1[k]) for k in b), "the two processes disagree"

    h1, h2 = json.loads((one / "history.json").read_text()), json.loads((two / "history.json").read_text())
    assert len(h1) == len(h2) == 10
    for r1, r2 in zip(h1, h2):
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "test_top1", "test_mean_per_class"):
            assert r1[key] == pytest.approx(r2[key], abs=1e-9), (r1["epoch"], key)
    # the BatchNorm stand-ins were swapped back after training
    assert "BatchNorm2d" in json.loads((two / "modules.json").read_text())
    assert "GlobalBatchNorm" not in json.loads((two / "modules.json").read_text())


@pytest.fixture()
def single_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("momentum", [0.1, None])
def test_global_batchnorm_is_batchnorm_in_one_process(single_process_group, momentum):
    """Outputs, input and parameter gradients, running statistics (unbiased variance, cumulative
    average when momentum is None) and eval mode all match torch's BatchNorm2d."""
    torch.manual_seed(0)
    ref = nn.BatchNorm2d(5, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    ours = nn.BatchNorm2d(5, momentum=momentum).double()
    ours.load_state_dict(ref.state_dict())
    stand_in = GlobalBatchNorm(ours)
    for step in range(3):
        x = (torch.randn(6, 5, 4, 3, dtype=torch.float64) * 3 + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        w = torch.randn(6, 5, 4, 3, dtype=torch.float64)
        (ref(x) * w).sum().backward()
        (stand_in(x2) * w).sum().backward()
        assert torch.allclose(ref(x.detach()), stand_in(x2.detach()), atol=1e-12)
        assert torch.allclose(x.grad, x2.grad, atol=1e-12)
    assert torch.allclose(ref.weight.grad, ours.weight.grad, atol=1e-10)
    assert torch.allclose(ref.bias.grad, ours.bias.grad, atol=1e-10)
    for name in ("running_mean", "running_var"):
        assert torch.allclose(getattr(ref, name), getattr(ours, name), atol=1e-12), name  # shared buffers
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 6
    ref.eval(), stand_in.eval()
    x = torch.randn(4, 5, 2, 2, dtype=torch.float64)
    assert torch.allclose(ref(x), stand_in(x), atol=1e-12)


def test_global_batchnorm_swaps_in_and_back(single_process_group):
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Sequential(nn.BatchNorm1d(4)))
    originals = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with global_batchnorm(model, torch.device("cpu")):
        inside = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert all(isinstance(m, GlobalBatchNorm) for m in inside) and len(inside) == 2
        assert inside[0].weight is originals[0].weight and inside[0].running_var is originals[0].running_var
        model.eval()
    after = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert after == originals and not after[0].training  # the mode set inside carries over


@pytest.mark.workflow
def test_a_training_rule_with_two_gpus_runs_two_processes_under_torchrun(tmp_path):
    """resources.gpus: 2 on a CPU machine: the train_dense job relaunches itself under torchrun
    (2 gloo processes) and ends close to the single-process job (float32 sums in another order)."""
    results = {}
    for gpus in (1, 2):
        wf = tmp_path / f"gpus{gpus}"
        wf.mkdir()
        config = tiny_config()
        config["compute"] = {"device": "cpu", "deterministic": True}
        config["resources"] = {"gpus": gpus, "threads": 2}
        config["recipes"]["dense"]["epochs"] = 3
        write_config(wf / "config.yaml", config)
        target = "results/train/digits/lenet/dense/seed0/model.safetensors"
        run_snakemake(wf, "--cores", "2", target, timeout=600)
        results[gpus] = load_file(str(wf / target))
        log = (wf / "logs/train/digits/lenet/dense/seed0.log").read_text()
        assert ("launching 2 training processes" in log) == (gpus == 2), log
        if gpus == 2:
            assert "process 0 of 2 joined the gloo process group" in log
            assert "epoch 3/3" in log
    for key, value in results[1].items():
        assert torch.allclose(value, results[2][key], rtol=0, atol=1e-4), key
