"""The memoized code-dependency closure (lib/sparselab/config/code_deps.py) gives exactly the answer
of the plain algorithm it replaced (every file re-parsed for every script), with and without its
JSON cache, and still changes when a module gains or loses an import."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest
from conftest import REPO

from sparselab.config import code_deps
from sparselab.config.code_deps import code_dependencies

SCRIPTS = sorted((REPO / "workflow_scripts").glob("*.py"))
LAZY_TARGET = re.compile(r"sparselab(\.\w+)+:\w+")  # "module:attr", as the lazy registries name hooks


# ------------------------------------------------- the uncached algorithm, as it was before the cache
def _reference_imports(tree: ast.AST, current: str, is_pkg: bool) -> tuple[set[str], bool]:
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
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            dynamic = True
    if dynamic:  # a lazy registry also depends on the modules it names as "sparselab.x.y:attr"
        found.update(
            node.value.partition(":")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_TARGET.fullmatch(node.value)
        )
    return found, dynamic


def reference_dependencies(script: Path, lib: Path) -> list[str]:
    lib_path = Path(lib).resolve()
    seen: set[Path] = set()
    todo = [Path(script).resolve()]
    while todo:
        file = todo.pop()
        if file in seen:
            continue
        seen.add(file)
        in_lib = lib_path in file.parents
        current = code_deps._module_name(lib_path, file) if in_lib else ""
        names, dynamic = _reference_imports(ast.parse(file.read_text(), str(file)), current, file.name == "__init__.py")
        if dynamic and in_lib:
            todo.extend(file.parent.rglob("*.py"))
        for name in names:
            if name.split(".")[0] != code_deps.PACKAGE:
                continue
            for mod in code_deps._with_parents(name):
                target = code_deps._module_file(lib_path, mod)
                if target is not None:
                    todo.append(target)
    files = {p for p in seen if lib_path in p.parents}
    return sorted(str(Path(lib) / p.relative_to(lib_path)) for p in files)


def forget_in_memory() -> None:
    """What a new process starts with: only the JSON cache (if any) survives."""
    code_deps._GRAPHS.clear()
    code_deps._STORES.clear()
    code_deps._file_imports.cache_clear()


# ------------------------------------------------- the repository's scripts
@pytest.mark.parametrize("cached", [False, True], ids=["memory", "json-cache"])
def test_every_workflow_script_gets_the_reference_closure(tmp_path, cached):
    lib = REPO / "lib"
    cache = tmp_path / "deps.json" if cached else None
    expected = {s.name: reference_dependencies(s, lib) for s in SCRIPTS}
    forget_in_memory()
    assert {s.name: code_dependencies(s, lib, cache=cache) for s in SCRIPTS} == expected  # cold
    assert {s.name: code_dependencies(s, lib, cache=cache) for s in SCRIPTS} == expected  # memoized
    if cached:
        assert cache.exists()
        forget_in_memory()  # a later process: answers from the JSON file
        assert {s.name: code_dependencies(s, lib, cache=cache) for s in SCRIPTS} == expected
        assert code_deps._file_imports.cache_info().currsize == 0  # nothing was parsed again


def test_statement_walk_finds_the_same_imports_as_the_full_walk():
    lib = (REPO / "lib").resolve()
    checked = 0
    for file in [*lib.rglob("*.py"), *SCRIPTS]:
        text = file.read_text()
        if not text.isascii() or "import_module" in text:
            continue
        tree = ast.parse(text)
        current = code_deps._module_name(lib, file) if lib in file.parents else ""
        is_pkg = file.name == "__init__.py"
        assert code_deps._imports(tree, current, is_pkg, statements_only=True) == _reference_imports(
            tree, current, is_pkg
        ), file
        checked += 1
    assert checked > 50


# ------------------------------------------------- a package that changes under the cache
@pytest.fixture
def toy(tmp_path):
    lib = tmp_path / "lib"
    pkg = lib / "sparselab"
    (pkg / "a").mkdir(parents=True)
    (pkg / "reg").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from .y import f\n")
    (pkg / "a" / "y.py").write_text("def f():\n    return 1\n")
    (pkg / "z.py").write_text("import os\n")
    (pkg / "reg" / "__init__.py").write_text(
        "import importlib\n\ndef get(n):\n    return importlib.import_module(f'.{n}', __name__)\n"
    )
    (pkg / "reg" / "one.py").write_text("")
    script = tmp_path / "s.py"
    script.write_text("from sparselab.a.x import f\n")
    forget_in_memory()
    return tmp_path, lib, pkg, script


def _rel(paths: list[str], root: Path) -> set[str]:
    return {Path(p).relative_to(root / "lib").as_posix() for p in paths}


@pytest.mark.parametrize("cached", [False, True], ids=["memory", "json-cache"])
def test_closure_changes_when_a_module_gains_or_loses_an_import(toy, cached):
    root, lib, pkg, script = toy
    cache = root / ".snakemake" / "deps.json" if cached else None

    def deps(new_process: bool = False) -> set[str]:
        if new_process:
            forget_in_memory()
        found = code_dependencies(script, lib, cache=cache)
        assert found == reference_dependencies(script, lib)
        return _rel(found, root)

    base = {"sparselab/__init__.py", "sparselab/a/__init__.py", "sparselab/a/x.py", "sparselab/a/y.py"}
    assert deps() == base
    assert deps() == base

    (pkg / "a" / "y.py").write_text("def f():\n    from ..z import g\n    return g\n")  # gains an import
    assert deps() == base | {"sparselab/z.py"}
    assert deps(new_process=True) == base | {"sparselab/z.py"}

    (pkg / "a" / "y.py").write_text("from sparselab import reg\n")  # a lazy registry: its whole package
    reg = {"sparselab/reg/__init__.py", "sparselab/reg/one.py"}
    assert deps() == base | reg
    (pkg / "reg" / "two.py").write_text("")  # a new module in it
    assert deps() == base | reg | {"sparselab/reg/two.py"}
    assert deps(new_process=True) == base | reg | {"sparselab/reg/two.py"}

    (pkg / "a" / "y.py").write_text("")  # loses its import
    assert deps() == base
    script.write_text("import sparselab.z\n")  # the script itself changes
    assert deps() == {"sparselab/__init__.py", "sparselab/z.py"}
    assert deps(new_process=True) == {"sparselab/__init__.py", "sparselab/z.py"}


def test_a_lazy_registry_depends_on_the_modules_it_names(toy):
    """A registry that imports ``"sparselab.x.y:attr"`` on demand (the model-building hooks) depends
    on those modules, though no import statement names them; a string that is no such target does not."""
    root, lib, pkg, script = toy
    (pkg / "a" / "y.py").write_text("from sparselab import reg\n")
    (pkg / "reg" / "__init__.py").write_text(
        "import importlib\n\nHOOKS = {'z': 'sparselab.z:g', 'doc': 'sparselab.a is not a target'}\n\n"
        "def get(n):\n    module, _, attr = HOOKS[n].partition(':')\n"
        "    return getattr(importlib.import_module(module), attr)\n"
    )
    found = code_dependencies(script, lib)
    assert found == reference_dependencies(script, lib)
    assert "sparselab/z.py" in _rel(found, root)


def test_same_size_edit_with_a_new_mtime_is_seen(toy):
    root, lib, pkg, script = toy
    y = pkg / "a" / "y.py"
    assert "sparselab/z.py" not in _rel(code_dependencies(script, lib), root)
    before = y.stat()
    y.write_text("import sparselab.z #".ljust(before.st_size - 1, "#") + "\n")  # same size, new import
    os.utime(y, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    assert y.stat().st_size == before.st_size
    assert "sparselab/z.py" in _rel(code_dependencies(script, lib), root)


def test_unreadable_cache_file_is_a_miss(toy):
    root, lib, pkg, script = toy
    cache = root / "deps.json"
    cache.write_text("{not json")
    assert code_dependencies(script, lib, cache=cache) == reference_dependencies(script, lib)
    forget_in_memory()
    assert code_dependencies(script, lib, cache=cache) == reference_dependencies(script, lib)
