"""Dry runs of several configs in one interpreter: ``python -m sparselab plan configs/*.yaml``.

``snakemake -n --configfile X`` pays the interpreter start and Snakemake's imports for every
config (about a second each); planning all paper configs together in one process pays them once.
Each config goes through Snakemake's own command-line path (``snakemake.cli.parse_args`` and
``args_to_api``), workflow profile included, so the plan is exactly what ``snakemake -n`` prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import time
from collections.abc import Iterator, Sequence


@dataclasses.dataclass(frozen=True)
class Plan:
    configfile: str
    ok: bool
    output: str  # Snakemake's output (job stats, or the error)
    seconds: float

    @property
    def jobs(self) -> int | None:
        """The job-stats total; 0 when there is nothing to do; None when the dry run failed."""
        found = re.search(r"^total\s+(\d+)\s*$", self.output, re.M)
        if found:
            return int(found.group(1))
        return 0 if "Nothing to be done" in self.output else None


def dry_runs(configfiles: Sequence[str], extra_args: Sequence[str] = ()) -> Iterator[Plan]:
    """``snakemake -n --quiet rules --configfile C *extra_args`` for each config, in this process."""
    from snakemake.cli import args_to_api, parse_args  # lazy: snakemake's CLI only when planning

    for configfile in configfiles:
        text = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
            try:
                parser, args = parse_args(["-n", "--quiet", "rules", "--configfile", configfile, *extra_args])
                ok = bool(args_to_api(args, parser))
            except (Exception, SystemExit) as exc:  # a failed plan is reported, the others still run
                print(f"{type(exc).__name__}: {exc}")
                ok = False
        yield Plan(configfile, ok, text.getvalue(), time.perf_counter() - t0)


def job_stats(output: str) -> str:
    """The "Job stats" table of a dry run's output (or its last lines when there is none)."""
    found = re.search(r"^Job stats:\n.*?^total\s+\d+\s*$", output, re.M | re.S)
    if found:
        return found.group(0)
    return "Nothing to be done." if "Nothing to be done" in output else "\n".join(output.strip().splitlines()[-20:])
