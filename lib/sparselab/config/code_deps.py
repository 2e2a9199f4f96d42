"""Which ``lib/sparselab`` files a workflow script depends on, from its imports.

Snakemake tracks a rule's script but not the modules the script imports, so rules declare the
files this returns as inputs: editing one module reruns exactly the jobs whose scripts reach it.

The closure is static (``ast``) and conservative: every ``import`` anywhere in a file counts,
including imports inside functions; importing ``a.b.c`` also counts ``a/__init__.py`` and
``a/b/__init__.py`` (Python runs them); and a module that calls ``importlib.import_module``
(the lazy model and dataset registries) depends on every module of its package. Standard
library only: this runs when Snakemake parses the workflow.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "sparselab"


def _module_file(lib: Path, module: str) -> Path | None:
    parts = module.split(".")
    as_pkg = lib.joinpath(*parts, "__init__.py")
    as_mod = lib.joinpath(*parts[:-1], parts[-1] + ".py")
    return as_pkg if as_pkg.exists() else as_mod if as_mod.exists() else None


def _module_name(lib: Path, path: Path) -> str:
    rel = path.relative_to(lib).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(tree: ast.AST, current: str, is_pkg: bool) -> tuple[set[str], bool]:
    """Absolute names of modules imported by a file, and whether it imports dynamically."""
    found: set[str] = set()
    dynamic = False
    package = current if is_pkg else current.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)  # may be submodules
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            dynamic = True
    return found, dynamic


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@functools.lru_cache(maxsize=None)
def _closure_of_file(lib: Path, path: Path) -> frozenset[Path]:
    seen: set[Path] = set()
    todo = [path]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        in_lib = lib in file.parents
        current = _module_name(lib, file) if in_lib else ""
        names, dynamic = _imports(ast.parse(file.read_text(), str(file)), current, file.name == "__init__.py")
        if dynamic and in_lib:
            todo.extend(file.parent.rglob("*.py"))
        for name in names:
            if name.split(".")[0] != PACKAGE:
                continue
            for mod in _with_parents(name):
                target = _module_file(lib, mod)
                if target is not None:
                    todo.append(target)
    return frozenset(p for p in seen if lib in p.parents)


def code_dependencies(script: str | Path, lib: str | Path = "lib") -> list[str]:
    """Sorted paths (as given relative to ``lib``'s parent) of the package files ``script`` reaches."""
    lib_path = Path(lib).resolve()
    files = _closure_of_file(lib_path, Path(script).resolve())
    base = Path(lib)
    return sorted(str(base / p.relative_to(lib_path)) for p in files)
