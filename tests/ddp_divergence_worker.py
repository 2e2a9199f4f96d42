"""One epoch of LeNet on digits under torchrun, where only rank 1's weights turn NaN after step 3
(tests/test_divergence.py): every process must stop with the same DivergenceError.

Usage: ``torchrun --nproc-per-node 2 ddp_divergence_worker.py OUT``; each process writes
``OUT/rank{r}.txt``: its error message, or ``no error``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from sparselab.config import ComputeHparams, DataHparams, SeedHparams, TrainHparams  # noqa: E402
from sparselab.data import build_splits  # noqa: E402
from sparselab.models.spec import ArchSpec  # noqa: E402
from sparselab.train import distributed  # noqa: E402
from sparselab.train.callbacks import Callback  # noqa: E402
from sparselab.train.divergence import DivergenceError  # noqa: E402
from sparselab.train.engine import train  # noqa: E402
from sparselab.train.run import build_seeded  # noqa: E402


class PoisonOneRank(Callback):
    """NaN in rank 1's first weight after step 3: rank 1's loss of step 4 is NaN, rank 0's is not
    (its weights turn NaN only through step 4's averaged gradients, so its first NaN loss is step 5)."""

    def on_step_end(self, ctx) -> None:
        if ctx.step == 3 and distributed.current_world().rank == 1:
            with torch.no_grad():
                next(ctx.model.parameters())[0, 0] = math.nan


def main(out: Path) -> None:
    torch.set_num_threads(1)
    splits = build_splits(DataHparams(source="digits", val_fraction=0.1, subset_fraction=0.4))
    model = build_seeded(ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [16]}), 0)
    recipe = TrainHparams.from_dict(
        {"epochs": 2, "batch_size": 32, "optimizer": {"lr": 0.05}, "schedule": {"kind": "constant"}}
    )
    out.mkdir(parents=True, exist_ok=True)
    try:
        train(
            model,
            splits,
            recipe,
            seeds=SeedHparams.for_replicate(0),
            callbacks=[PoisonOneRank()],
            run_name="ddp",
            compute=ComputeHparams(device="cpu", progress="lines"),
            metrics_csv=out / "metrics.csv",
        )
        message = "no error"
    except DivergenceError as exc:
        message = str(exc)
    (out / f"rank{distributed.current_world().rank}.txt").write_text(message)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
