"""Every file the path-norm study's table and figure rules write is published atomically, with the
mode the umask gives a new file (issue 17): a job killed or failing mid-write leaves either the
complete file or none, never a half-written CSV that Snakemake or a reader would take as done.

The disk is simulated: the n-th write of a writer lands half its bytes at the path it was given
and then fails (for every n), as a full disk or a kill would.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_report_pathnorm import SUMMARIES, metrics_rows  # noqa: E402

from sparselab.studies.pathnorm import artefacts, bound  # noqa: E402

BOUND = [
    {
        "name": "digits",
        "mean": [0.3052603],
        "std": [0.3760492],
        "K": 1,
        "P": 0,
        "d_in": 64,
        "d_out": 10,
        "n": 1212,
        "archs": {"lenet": 3, "resnet20": 20},
        "B": None,
        "float32": True,
    }
]
_TMP = re.compile(r"^\.(?P<name>.+)\.\d+\.[0-9a-f]{8}\.tmp$")


class FailingDisk:
    """Counts writes; the ``fail_at``-th one (from 0) writes half its bytes and raises."""

    def __init__(self, fail_at: int = -1) -> None:
        self.fail_at, self.calls, self.failed = fail_at, 0, None

    def write(self, target, data: bytes, finish) -> None:
        index, self.calls = self.calls, self.calls + 1
        if index != self.fail_at:
            finish()
            return
        Path(target).write_bytes(data[: len(data) // 2])
        self.failed = Path(target)
        raise OSError("injected: disk full halfway through the write")


@pytest.fixture()
def disk(monkeypatch):
    """Route every file write of the writers (pandas CSVs, text, matplotlib) through a FailingDisk."""
    state = FailingDisk()
    to_csv, write_text, savefig = pd.DataFrame.to_csv, Path.write_text, matplotlib.figure.Figure.savefig

    def fake_to_csv(self, path_or_buf=None, *args, **kwargs):
        if path_or_buf is None:
            return to_csv(self, None, *args, **kwargs)
        data = to_csv(self, None, *args, **kwargs).encode()
        state.write(path_or_buf, data, lambda: to_csv(self, path_or_buf, *args, **kwargs))

    def fake_write_text(self, data, *args, **kwargs):
        state.write(self, data.encode(), lambda: write_text(self, data, *args, **kwargs))

    def fake_savefig(self, fname, *args, **kwargs):
        buf = io.BytesIO()
        savefig(self, buf, *args, **kwargs)
        state.write(fname, buf.getvalue(), lambda: Path(fname).write_bytes(buf.getvalue()))

    monkeypatch.setattr(pd.DataFrame, "to_csv", fake_to_csv)
    monkeypatch.setattr(Path, "write_text", fake_write_text)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", fake_savefig)
    return state


@pytest.fixture()
def inputs(tmp_path):
    """Metrics CSVs of 2 IMP rounds and 2 subset fractions, 2 pretrained summaries with margins."""
    from safetensors.numpy import save_file

    src = tmp_path / "in"
    src.mkdir()
    imp, subsets, summaries, margins = [], [], [], []
    for r in range(2):
        metrics_rows(range(1, 3), base=0.1 * r).to_csv(src / f"r{r}.csv", index=False)
        imp.append([r, 0, str(src / f"r{r}.csv")])
    for f in (0.25, 0.5):
        metrics_rows(range(1, 3), base=f).to_csv(src / f"f{f}.csv", index=False)
        subsets.append([f, 0, str(src / f"f{f}.csv")])
    for i, record in enumerate(SUMMARIES):
        (src / f"s{i}.json").write_text(json.dumps(record))
        save_file({"margins": np.linspace(-1, 3, 50, dtype=np.float32)}, str(src / f"m{i}.safetensors"))
        summaries.append(src / f"s{i}.json")
        margins.append(src / f"m{i}.safetensors")
    return {"imp": imp, "subsets": subsets, "summaries": summaries, "margins": margins}


def _writers(inputs):
    """Each table/figure rule's writer, as a function of its output directory."""
    return {
        "bound": lambda out: bound.write_bound_table(BOUND, out / "t2.csv", out / "t2.md"),
        "pretrained": lambda out: artefacts.write_pretrained_report(
            inputs["summaries"],
            inputs["margins"],
            table3=(out / "t3.csv", out / "t3.md"),
            table5=(out / "t5.csv", out / "t5.md"),
            figure=(out / "f3.pdf", out / "f3.png"),
            title="t",
        ),
        "imp": lambda out: artefacts.write_imp_figure(
            inputs["imp"], {0: 0.0, 1: 0.2}, out / "f4.csv", out / "f4.pdf", out / "f4.png"
        ),
        "subsets": lambda out: artefacts.write_subsets_figure(
            inputs["subsets"], out / "f5.csv", out / "f5.pdf", out / "f5.png"
        ),
    }


@pytest.mark.parametrize("rule", ["bound", "pretrained", "imp", "subsets"])
def test_a_write_failing_midway_leaves_no_partial_file(rule, inputs, disk, tmp_path):
    write = _writers(inputs)[rule]
    clean = tmp_path / "clean"
    clean.mkdir()
    write(clean)
    writes = disk.calls
    assert writes >= 2, "the writer's files go through the simulated disk"
    for fail_at in range(writes):
        disk.fail_at, disk.calls, disk.failed = fail_at, 0, None
        out = tmp_path / f"fail{fail_at}"
        out.mkdir()
        with pytest.raises(OSError, match="injected"):
            write(out)
        match = _TMP.match(disk.failed.name)
        target = out / (match["name"] if match else disk.failed.name)
        assert not target.exists(), f"{rule}: write {fail_at} left a partial {target.name}"
        left = sorted(p.name for p in out.iterdir())
        assert not [n for n in left if n.endswith(".tmp")], f"{rule}: temporary files left behind: {left}"
        for name in left:  # whatever was published is complete
            if name.endswith((".csv", ".md")):
                assert (out / name).read_bytes() == (clean / name).read_bytes(), name


@pytest.mark.parametrize("rule", ["bound", "pretrained", "imp", "subsets"])
def test_files_get_the_mode_the_umask_gives(rule, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    previous = os.umask(0o027)
    try:
        _writers(inputs)[rule](out)
    finally:
        os.umask(previous)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in out.iterdir()}
    assert modes and set(modes.values()) == {oct(0o640)}, modes
