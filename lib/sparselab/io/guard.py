"""Refuse writes that would destroy what a command reads, or what a workflow owns.

Single steps run by hand (``python -m sparselab prune a b``) must never overwrite their own input,
whatever the spelling (``..``, a symlinked directory, a hard link), and must not write into a
Snakemake workflow's ``results/``: Snakemake would take the new file for its own output (newer
than its inputs, so nothing upstream reruns) and rebuild everything downstream on top of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# What marks a directory as a workflow's working directory: a checkout holds the Snakefile, and
# every directory Snakemake ran in (``--directory``) holds its .snakemake/ state.
WORKFLOW_MARKERS = ("Snakefile", ".snakemake")


class OutputError(ValueError):
    """An output path would overwrite an input or a workflow's results."""


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or (both existing) one inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def workflow_results_dir(path: str | Path) -> Path | None:
    """The ``results/`` directory of a workflow that ``path`` lies in (after resolving links), or None.

    A ``results/`` directory is a workflow's when the directory holding it is a workflow directory
    (:data:`WORKFLOW_MARKERS`); any other ``results/`` is an ordinary folder.
    """
    for parent in Path(path).resolve().parents:
        if parent.name == "results" and any((parent.parent / m).exists() for m in WORKFLOW_MARKERS):
            return parent
    return None


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path], *, force: bool = False) -> None:
    """Raise :class:`OutputError` if an output is an input, or (unless ``force``) in a workflow's results/."""
    inputs = [Path(p) for p in inputs]
    for out in map(Path, outputs):
        for source in inputs:
            if same_file(out, source):
                raise OutputError(
                    f"{out}: this output is the input {source}; write to another path "
                    "(a command never overwrites what it reads)"
                )
        results = workflow_results_dir(out)
        if results is not None and not force:
            raise OutputError(
                f"{out}: inside the workflow's {results} (Snakemake's outputs, which it would "
                "build on without noticing); write elsewhere, or pass --force"
            )
