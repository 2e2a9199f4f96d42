"""Which ``lib/sparselab`` files a workflow script depends on, from its imports.

Snakemake tracks a rule's script but not the modules the script imports, so rules declare the
files this returns as inputs: editing one module reruns exactly the jobs whose scripts reach it.

The closure is static (``ast``) and conservative: every ``import`` anywhere in a file counts,
including imports inside functions; importing ``a.b.c`` also counts ``a/__init__.py`` and
``a/b/__init__.py`` (Python runs them); and a module that calls ``importlib.import_module``
(the lazy model and dataset registries) depends on every module of its package and on every
module it names in a string ``"sparselab.x.y:attr"`` (the model-building hooks of
:mod:`sparselab.models.registry`, which live above the models). Standard library only: this runs
when Snakemake parses the workflow.

Speed (a workflow parse asks for ~30 scripts, and every Snakemake process parses the workflow):
each file is parsed once per version of it (its inode, mtime and size) and the import graph of
``lib`` is kept while no ``.py`` file under it changes; with ``cache=`` the per-file imports also
persist in a JSON file, so the next process parses only what changed.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

PACKAGE = "sparselab"
# How a lazy registry names what it imports on demand: "sparselab.x.y:attr".
LAZY_TARGET = re.compile(rf"{PACKAGE}(\.\w+)+:\w+")


def _module_file(lib: Path, module: str) -> Path | None:
    parts = module.split(".")
    as_pkg = lib.joinpath(*parts, "__init__.py")
    as_mod = lib.joinpath(*parts[:-1], parts[-1] + ".py")
    return as_pkg if as_pkg.exists() else as_mod if as_mod.exists() else None


def _module_name(lib: Path, path: Path) -> str:
    rel = path.relative_to(lib).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _statements(tree: ast.AST):
    """Every statement node of ``tree`` (imports are statements), skipping expressions: a much
    shorter walk than ``ast.walk``, for files that cannot contain ``import_module``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                todo.extend(v for v in value if isinstance(v, (ast.stmt, ast.excepthandler, ast.match_case)))


def _imports(tree: ast.AST, current: str, is_pkg: bool, statements_only: bool = False) -> tuple[set[str], bool]:
    """Absolute names of modules imported by a file, and whether it imports dynamically.

    ``statements_only`` (for sources without the word ``import_module``) gives the same answer
    faster: it cannot see an ``import_module`` attribute, and every import is a statement."""
    found: set[str] = set()
    dynamic = False
    package = current if is_pkg else current.rpartition(".")[0]
    for node in _statements(tree) if statements_only else ast.walk(tree):
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
    if dynamic:  # only a file that imports dynamically can act on a "module:attr" string
        found.update(
            node.value.partition(":")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and LAZY_TARGET.fullmatch(node.value)
        )
    return found, dynamic


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _fingerprint(lib: Path) -> tuple:
    """What the import graph of ``lib`` depends on: every ``.py`` path under it (existence decides
    which module names resolve and what a lazy registry's package holds), each with its inode,
    modification time and size."""
    entries = []
    for root, dirs, files in os.walk(lib):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(root, name))
                entries.append((root, name, st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(entries)


@functools.cache
def _file_imports(
    path: Path, current: str, is_pkg: bool, ino: int, mtime_ns: int, size: int
) -> tuple[frozenset[str], bool]:
    """``_imports`` of one file (package names only), parsed once per version of it (its stat
    fields are part of the key)."""
    text = path.read_text()
    # an identifier spelling import_module must contain that text (ASCII: no NFKC normalisation)
    statements_only = text.isascii() and "import_module" not in text
    names, dynamic = _imports(ast.parse(text, str(path)), current, is_pkg, statements_only)
    return frozenset(n for n in names if n.split(".")[0] == PACKAGE), dynamic


class _Store:
    """Per-file imports kept in a JSON file between processes: path -> [key, names, dynamic],
    where key is the file's inode, mtime and size and its module name; entries of another
    version of this module are ignored. Best effort: an unreadable or unwritable file is a miss."""

    VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dirty = False
        try:
            data = json.loads(path.read_text())
            self.entries = data["files"] if data.get("version") == self.VERSION else {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            self.entries = {}

    def imports(self, path: Path, current: str, is_pkg: bool, st: os.stat_result) -> tuple[frozenset[str], bool]:
        key = [st.st_ino, st.st_mtime_ns, st.st_size, current, is_pkg]
        entry = self.entries.get(str(path))
        if isinstance(entry, list) and len(entry) == 3 and entry[0] == key:
            return frozenset(entry[1]), bool(entry[2])
        names, dynamic = _file_imports(path, current, is_pkg, st.st_ino, st.st_mtime_ns, st.st_size)
        self.entries[str(path)] = [key, sorted(names), dynamic]
        self.dirty = True
        return names, dynamic

    def save(self) -> None:
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    json.dump({"version": self.VERSION, "files": self.entries}, f)
                os.replace(tmp, self.path)  # atomic: parallel workflow parses may share the file
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError:
            return
        self.dirty = False


_STORES: dict[Path, _Store] = {}


class _ImportGraph:
    """Import edges between the files of one version (fingerprint) of ``lib``, found on demand:
    each file is parsed, and each module name and lazy package resolved, once per version
    rather than once per script (a workflow parse asks for ~30 scripts)."""

    def __init__(self, lib: Path) -> None:
        self.lib = lib
        self._edges: dict[Path, tuple[Path, ...]] = {}
        self._modules: dict[str, Path | None] = {}
        self._packages: dict[Path, tuple[Path, ...]] = {}
        self._in_lib: dict[Path, bool] = {}

    def in_lib(self, file: Path) -> bool:
        hit = self._in_lib.get(file)
        if hit is None:
            hit = self._in_lib[file] = self.lib in file.parents
        return hit

    def _successors(self, file: Path, store: _Store | None) -> tuple[Path, ...]:
        hit = self._edges.get(file)
        if hit is not None:
            return hit
        lib = self.lib
        in_lib = self.in_lib(file)
        current = _module_name(lib, file) if in_lib else ""
        st = file.stat()
        is_pkg = file.name == "__init__.py"
        if store is not None:
            names, dynamic = store.imports(file, current, is_pkg, st)
        else:
            names, dynamic = _file_imports(file, current, is_pkg, st.st_ino, st.st_mtime_ns, st.st_size)
        out: list[Path] = []
        if dynamic and in_lib:
            if file.parent not in self._packages:
                self._packages[file.parent] = tuple(file.parent.rglob("*.py"))
            out.extend(self._packages[file.parent])
        for name in names:
            for mod in _with_parents(name):
                if mod not in self._modules:
                    self._modules[mod] = _module_file(lib, mod)
                target = self._modules[mod]
                if target is not None:
                    out.append(target)
        edges = tuple(out)
        if in_lib:  # a file outside lib (the script) is not covered by the fingerprint
            self._edges[file] = edges
        return edges

    def closure(self, path: Path, store: _Store | None = None) -> frozenset[Path]:
        seen: set[Path] = set()
        todo = [path]
        while todo:
            file = todo.pop()
            if file in seen:
                continue
            seen.add(file)
            todo.extend(self._successors(file, store))
        return frozenset(p for p in seen if self.in_lib(p))


# lib -> (fingerprint, graph): a new graph whenever a .py file under lib is added, removed or modified.
_GRAPHS: dict[Path, tuple[tuple, _ImportGraph]] = {}


def _closure_of_file(lib: Path, path: Path, store: _Store | None = None) -> frozenset[Path]:
    fingerprint = _fingerprint(lib)
    hit = _GRAPHS.get(lib)
    if hit is None or hit[0] != fingerprint:
        hit = _GRAPHS[lib] = (fingerprint, _ImportGraph(lib))
    return hit[1].closure(path, store)


def code_dependencies(script: str | Path, lib: str | Path = "lib", cache: str | Path | None = None) -> list[str]:
    """Sorted paths (as given relative to ``lib``'s parent) of the package files ``script`` reaches.

    ``cache``: a JSON file (created if missing) that keeps each file's imports for later calls
    in other processes; the answer is the same with or without it."""
    lib_path = Path(lib).resolve()
    store = None
    if cache is not None:
        cache_path = Path(cache).resolve()
        store = _STORES.get(cache_path) or _STORES.setdefault(cache_path, _Store(cache_path))
    files = _closure_of_file(lib_path, Path(script).resolve(), store)
    if store is not None:
        store.save()
    base = Path(lib)
    return sorted(str(base / p.relative_to(lib_path)) for p in files)


def _file_sha256(path: Path, stat_key: tuple[int, int, int]) -> str:
    return _hash_cache.get((str(path), stat_key)) or _hash_cache.setdefault(
        (str(path), stat_key), hashlib.sha256(path.read_bytes()).hexdigest()
    )


_hash_cache: dict[tuple[str, tuple[int, int, int]], str] = {}


def code_version(script: str | Path, lib: str | Path = "lib", cache: str | Path | None = None) -> str:
    """One digest of the contents of every package file ``script`` reaches (see
    :func:`code_dependencies`), for a rule's ``params``: editing any of them changes it, so
    Snakemake reruns the rule's jobs ("params changed"), while a touch without an edit does not.
    Cheaper than listing the files as inputs, which Snakemake checks job by job."""
    files = code_dependencies(script, lib, cache)
    lib_path = Path(lib).resolve()
    digest = hashlib.sha256()
    for name in files:
        path = Path(name).resolve()
        st = path.stat()
        # names relative to lib/: the same code in another checkout has the same version
        digest.update(
            f"{path.relative_to(lib_path).as_posix()}\0{_file_sha256(path, (st.st_ino, st.st_mtime_ns, st.st_size))}\0".encode()
        )
    return f"{len(files)} files, sha256 {digest.hexdigest()[:16]}"
