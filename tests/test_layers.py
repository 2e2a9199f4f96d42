"""The import contracts of lib/sparselab (``[tool.importlinter]`` in pyproject.toml) hold: layers from
``config`` at the bottom to the studies and the CLI at the top, no study importing another, no
import cycles. ``make lint`` runs the same check; this test puts it in every ``make test``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_lint_imports_keeps_every_contract() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    done = subprocess.run([str(lint), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
