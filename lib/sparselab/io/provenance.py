"""Checkpoint lineage: the ``parents`` a sidecar names, so a ledger draws it without guessing from paths.

A sidecar's ``parents`` is a list of ``{"role", "path", "sha256"}``: the files the checkpoint was
made from, each by the path the job was given (relative to the workflow root when the rule gave it
so) and the SHA-256 of that file when the job read it. An empty list is a root (trained from
scratch); a sidecar without the key was written before lineage was recorded, so its parents are
unknown (:func:`read_parents` returns None), which is not the same as having none.

Standard library only: the CLI's ``info`` and ledgers read lineage without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from .hashing import file_sha256

__all__ = [
    "KEY",
    "ROLES",
    "Parent",
    "ParentStatus",
    "Role",
    "check_parent",
    "locate_parent",
    "parent_of_file",
    "parents_record",
    "read_parents",
]

KEY = "parents"

Role = Literal["dense", "pruned", "previous_round", "rewind", "upstream", "imported"]
# dense: the dense model a pruning or finetuning started from; pruned: the pruned checkpoint a
# finetuning started from; previous_round: IMP round k-1; rewind: IMP's rewind point (a training
# state file, not a checkpoint); upstream: the upstream a transfer finetuning started from;
# imported: the external file an import converted (not a sparselab checkpoint).
ROLES: tuple[str, ...] = get_args(Role)

ParentStatus = Literal["matches", "changed", "missing"]


@dataclasses.dataclass(frozen=True)
class Parent:
    """One file a checkpoint was made from: its role, its path as the job saw it, its SHA-256 then."""

    role: str  # one of ROLES when written here; a reader keeps a role it does not know
    path: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Parent:
        return cls(role=str(d["role"]), path=str(d["path"]), sha256=str(d["sha256"]))


def parent_of_file(role: Role, path: str | Path, sha256: str | None = None) -> Parent:
    """The parent ``path`` in ``role``; ``sha256`` when the job already hashed (verified) the file,
    else it is hashed here (once: callers pass a hash they have)."""
    if role not in ROLES:
        raise ValueError(f"parent role {role!r}: expected one of {', '.join(ROLES)}")
    digest = sha256 if sha256 is not None else file_sha256(path)
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"parent {path}: {digest!r} is not a hex SHA-256")
    return Parent(role, str(path), digest)


def parents_record(parents: Sequence[Parent]) -> list[dict[str, str]]:
    """The sidecar's ``parents`` value."""
    return [p.to_dict() for p in parents]


def read_parents(meta: Mapping[str, Any]) -> tuple[Parent, ...] | None:
    """The parents a sidecar names; None when it names none (written before lineage: unknown)."""
    raw = meta.get(KEY)
    if raw is None:
        return None
    shape = "a list of {role, path, sha256}"
    if not isinstance(raw, list) or not all(
        isinstance(p, Mapping) and {"role", "path", "sha256"} <= set(p) for p in raw
    ):
        raise ValueError(f"sidecar key {KEY!r}: expected {shape}, got {raw!r}")
    return tuple(Parent.from_dict(p) for p in raw)


def locate_parent(parent: Parent, child: str | Path) -> Path | None:
    """Where ``parent``'s file is now: its path as recorded (absolute, or relative to the current
    directory), else, for a relative path, under a directory above the checkpoint ``child`` (the
    workflow root it was relative to); None if it is nowhere."""
    recorded = Path(parent.path)
    if recorded.is_file():
        return recorded
    if recorded.is_absolute():
        return None
    for root in Path(child).resolve().parents:
        if (root / recorded).is_file():
            return root / recorded
    return None


def check_parent(parent: Parent, child: str | Path) -> tuple[ParentStatus, Path | None]:
    """Whether ``parent``'s file (:func:`locate_parent`) still has the recorded hash: ``changed``
    is a stale lineage (the parent was rewritten after the child was made from it)."""
    found = locate_parent(parent, child)
    if found is None:
        return "missing", None
    return ("matches" if file_sha256(found) == parent.sha256 else "changed"), found
