"""Linear finetuning: a head per seed on the cached features (SGD with the paper's protocol, or L-BFGS)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

from ...io.atomic import atomic_path
from ...transfer.features import load_features
from ...transfer.linear import logistic_regression, train_linear_head
from ..base.summary import write_summary
from .options import LinearProtocol


def run_linear(
    train_features: str | Path,
    test_features: str | Path,
    summary_json: str | Path,
    history_csv: str | Path,
    *,
    options: LinearProtocol,
) -> dict[str, Any]:
    """A linear head per seed on the cached features (SGD: the paper's protocol; or L-BFGS logistic
    regression); the last epoch's test top-1 and mean per-class accuracy of every seed."""
    xtr, ytr, meta = load_features(train_features)
    xte, yte, _ = load_features(test_features)
    classes = int(meta["num_classes"])
    run = Path(summary_json).parent
    per_seed: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    for seed in options.seeds:
        if options.solver == "lbfgs":
            torch.manual_seed(seed)
            _, final = logistic_regression(
                (xtr, ytr),
                (xte, yte),
                classes,
                l2=options.l2,
                max_iter=options.max_iter,
                run_name=f"{run}, seed {seed}",
            )
            rows = [{"epoch": 1, **final}]
        else:
            _, rows = train_linear_head(
                (xtr, ytr),
                (xte, yte),
                classes,
                epochs=options.epochs,
                lr=options.lr,
                momentum=options.momentum,
                weight_decay=options.weight_decay,
                batch_size=options.batch_size,
                decay_after=tuple(options.decay_after),
                seed=int(seed),
                run_name=f"{run}, seed {seed}",
            )
            final = rows[-1]
        history += [{"seed": seed, **r} for r in rows]
        per_seed[str(seed)] = {"top1": final["test_top1"], "mean_per_class": final["test_mean_per_class"]}
    summary = {
        "solver": options.solver,
        "dim": int(xtr.shape[1]),
        "train_samples": int(ytr.numel()),
        "test_samples": int(yte.numel()),
        "backbone_sparsity": meta.get("backbone_sparsity"),
        "upstream": meta.get("upstream"),
        "seeds": per_seed,
    }
    columns = list(dict.fromkeys(k for r in history for k in r))
    with atomic_path(history_csv) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    return write_summary(summary_json, summary)
