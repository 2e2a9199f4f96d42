"""An unpickler that admits only the globals a data format needs: data files never run code.

Why: unpickling calls whatever a file names (``os.system``, ``builtins.exec``...), so a tampered
or foreign file in a dataset root would run in every job that reads it. An md5 check is no
defence: it is off for fakes and re-packed copies, and a loader must not depend on it. CIFAR's
python batches hold only dicts, lists, strings and ints (pickle opcodes, no globals) and numpy
arrays, whose reconstruction names exactly the globals of :data:`NUMPY_ARRAY_GLOBALS`; anything
else is refused before it is called.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np

try:  # numpy >= 2 (files written by numpy 1 name numpy.core.multiarray, mapped to the same function)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

# (module, name) as written in the file -> the object it may resolve to; nothing else resolves.
NUMPY_ARRAY_GLOBALS: Mapping[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside the allow-list; nothing it named was called."""

    def __init__(self, path: str, global_name: str) -> None:
        self.path, self.global_name = path, global_name
        super().__init__(f"{path}: refused to unpickle the global {global_name!r} (not a type this data format holds)")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: str, allowed: Mapping[tuple[str, str], Any], encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._path, self._allowed = path, allowed

    def find_class(self, module: str, name: str) -> Any:  # every global (GLOBAL, STACK_GLOBAL, EXT*) comes here
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise ForbiddenGlobalError(self._path, f"{module}.{name}") from None


def load_restricted(
    path: str | os.PathLike, allowed: Mapping[tuple[str, str], Any] = NUMPY_ARRAY_GLOBALS, encoding: str = "latin1"
) -> Any:
    """Unpickle ``path`` admitting only ``allowed`` globals (default: numpy arrays).

    ``encoding="latin1"`` reads Python 2 pickles as torchvision does (keys such as ``"data"``).
    Raises :class:`ForbiddenGlobalError` for any other global, and the usual
    ``pickle.UnpicklingError``/``EOFError``/... for a file that is not a pickle.
    """
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f, os.fspath(path), allowed, encoding).load()
