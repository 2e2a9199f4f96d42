"""The complexity ledger's cost per checkpoint on the default run (goal: all of them in under 60 s
on 2 cores), measured by the ledger's own code (``sparselab.studies.ledger.measure``).

Every row the default config's ledger plan lists is measured, from the real checkpoint when the
workflow has made it (run from the workflow root) and otherwise (or with ``--synthetic``) from a
synthetic one: the row's model (arch and kwargs of ``models:``, classes and input shape of its dataset),
seeded weights magnitude-pruned to the row's nominal sparsity. Synthetic models are full width and
untied (gradient-flow finals are narrower in the real run), and random pruned weights are no trained model: a pruned random ResNet-20's
activations shrink layer by layer and its passes ran several times slower than the trained ones here,
so the real checkpoints are the measurement that counts. Prints the time per study and model (mean per checkpoint) and the total,
job start-up (imports, data) excluded and printed apart.

    PYTHONPATH=lib python bench/ledger.py [--threads 2] [--synthetic]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

t_start = time.perf_counter()

import torch  # noqa: E402
import yaml  # noqa: E402

from sparselab.compute import place  # noqa: E402
from sparselab.config import ComputeHparams, DataHparams  # noqa: E402
from sparselab.data import build_splits  # noqa: E402
from sparselab.models.checkpoint import save_checkpoint  # noqa: E402
from sparselab.models.spec import ArchSpec  # noqa: E402
from sparselab.sparsity.magnitude import magnitude_mask  # noqa: E402
from sparselab.studies.ledger.measure import measure_checkpoint  # noqa: E402
from sparselab.studies.ledger.options import MeasureSpec  # noqa: E402
from sparselab.workflow import load_workflow_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synthetic", action="store_true", help="synthetic checkpoints even where real ones exist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    wf = load_workflow_config(config, REPO / "schemas" / "config.schema.yaml")
    ledger = wf.plans()["ledger"]
    spec = MeasureSpec.from_dict(ledger.measure_options(), path="ledger")
    placement = place(ComputeHparams(device="cpu"))
    rows = ledger.rows()
    splits: dict[DataHparams, object] = {}
    t_setup = time.perf_counter()
    for row in rows:
        data = DataHparams.from_dict({**wf.shared.datasets[row["dataset"]].to_dict(), **row["data"]})
        if data not in splits:
            splits[data] = build_splits(data)
        row["_data"] = data
    setup_s = time.perf_counter() - t_setup
    times: dict[tuple[str, str, str], list[float]] = collections.defaultdict(list)
    real = 0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for i, row in enumerate(rows):
            s = splits[row["_data"]]
            path = Path(row["path"])
            if args.synthetic or not path.is_file():
                model_hp = wf.shared.models[row["model"]]
                arch = ArchSpec(model_hp.arch, s.info.num_classes, s.info.input_shape, dict(model_hp.kwargs))  # type: ignore[attr-defined]
                torch.manual_seed(i)
                model = arch.build()
                mask = magnitude_mask(model, row["sparsity"]) if row["sparsity"] > 0 else None
                if mask is not None:
                    mask.apply_(model)
                path = Path(tmp) / f"{i}.safetensors"
                save_checkpoint(path, model, arch, mask=mask)
            else:
                real += 1
            t = time.perf_counter()
            measure_checkpoint({**row, "path": str(path)}, s, spec, placement)  # type: ignore[arg-type]
            times[(row["study"], row["model"], row["method"])].append(time.perf_counter() - t)
        total = time.perf_counter() - t0
    measured = sum(sum(v) for v in times.values())
    by_model: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    for (study, model, _), v in times.items():
        by_model[(study, model)] += v
    print(f"{len(rows)} checkpoints ({real} real, {len(rows) - real} synthetic), {args.threads} threads")
    print(f"{'study':<10} {'model':<10} {'n':>4} {'s/ckpt':>8} {'total s':>8}")
    for (study, model), v in by_model.items():
        print(f"{study:<10} {model:<10} {len(v):>4} {sum(v) / len(v):>8.3f} {sum(v):>8.2f}")
    print(f"measurement: {measured:.1f} s (loop incl. synthetic checkpoint writing: {total:.1f} s); goal < 60 s")
    print(f"start-up: imports {t_setup - t_start:.1f} s, data splits {setup_s:.1f} s ({len(splits)} settings)")


if __name__ == "__main__":
    main()
