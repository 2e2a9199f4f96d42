"""Flush subnormal floats to zero on the CPU for a while, in every compute thread, then restore.

Arithmetic on subnormal floats (below about 1.2e-38 in float32) takes a slow path on x86 CPUs:
a convolution whose operands are 1% subnormal runs up to 25 times slower. The path-norm walk
meets such values on purpose: powers like ``|w|^16`` of small weights span hundreds of orders
of magnitude. ``torch.set_flush_denormal`` turns on the flush-to-zero and denormals-are-zero
modes, but only in the calling thread and with no getter, while PyTorch's kernels run on an
OpenMP thread team. So the calling thread's floating-point environment is saved with the C
library's ``fegetenv``, the flushing environment is copied into every thread of the team (an
OpenMP parallel region whose body is ``fesetenv``), and the saved one is put back the same way.
Where the C library or the OpenMP runtime cannot be found, less (or nothing) is changed, and
:func:`flush_denormals` says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
from collections.abc import Iterator

import torch

__all__ = ["flush_denormals"]

_FENV_BYTES = 64  # sizeof(fenv_t): 32 on x86-64 glibc, 8 on aarch64; room to spare


def _libm() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("m")
    try:
        lib = ctypes.CDLL(name)
        lib.fegetenv.argtypes = lib.fesetenv.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError, TypeError):
        return None
    return lib


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime PyTorch loaded (libgomp, or LLVM/Intel runtimes with their GOMP entry
    points), found among the process's mapped libraries; Linux only."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if line.rstrip().endswith((".so", ".so.1", ".so.5"))}
    except OSError:
        return None
    for path in sorted(paths):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(("libgomp", "libomp", "libiomp5")):
            try:
                lib = ctypes.CDLL(path)
                lib.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                return lib
            except (OSError, AttributeError):
                continue
    return None


_LIBM = _libm()
_OPENMP: ctypes.CDLL | None = None
_OPENMP_LOOKED = False


def _team_fesetenv(env: ctypes.Array) -> bool:
    """Run ``fesetenv(env)`` in every thread of the calling thread's OpenMP team."""
    global _OPENMP, _OPENMP_LOOKED
    if not _OPENMP_LOOKED:
        torch.zeros(1).add_(1)  # make sure the runtime is loaded before looking for it
        _OPENMP, _OPENMP_LOOKED = _openmp_runtime(), True
    if _OPENMP is None or _LIBM is None:
        return False
    body = ctypes.cast(_LIBM.fesetenv, ctypes.c_void_p)
    _OPENMP.GOMP_parallel(body, ctypes.addressof(env), torch.get_num_threads(), 0)
    return True


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Inside the block, subnormal inputs and results count as zero in the calling thread and in
    PyTorch's CPU compute threads; yields whether that holds for all of them. Afterwards every
    one of those threads gets the calling thread's previous environment back."""
    saved = ctypes.create_string_buffer(_FENV_BYTES)
    if _LIBM is None or _LIBM.fegetenv(saved) != 0:
        yield False
        return
    if not torch.set_flush_denormal(True):
        yield False
        return
    flushing = ctypes.create_string_buffer(_FENV_BYTES)
    team = _LIBM.fegetenv(flushing) == 0 and _team_fesetenv(flushing)
    try:
        yield team
    finally:
        if team:
            _team_fesetenv(saved)
        _LIBM.fesetenv(saved)
