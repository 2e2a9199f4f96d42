"""Hyperparameter dataclasses: one typed, defaulted source of truth for every run.

Modelled on open_lth's ``Hparams``: each bundle is a dataclass; :meth:`Hparams.from_dict` fills
defaults, rejects unknown keys and wrong types with the key's dotted path, and
:meth:`Hparams.to_dict` gives the resolved values written to every run's ``hparams.json``.
New fields must default to a no-op so existing results stay valid.

This module imports only the standard library: the Snakefile imports it at parse time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T", bound="Hparams")


class HparamsError(ValueError):
    """A hyperparameter bundle has an unknown key, a wrong type or a bad value."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert containers; raise with ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise HparamsError(f"{path}: {value!r} is not one of {_type_name(tp)}")
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, path)
            except HparamsError:
                continue
        raise HparamsError(f"{path}: {value!r} is not of type {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise HparamsError(f"{path}: expected null, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise HparamsError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise HparamsError(f"{path}: expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and issubclass(tp, Hparams):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise HparamsError(f"{path}: expected a mapping, got {value!r}")
        return tp.from_dict(value, path=path)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HparamsError(f"{path}: {value!r} is not a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HparamsError(f"{path}: {value!r} is not an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise HparamsError(f"{path}: {value!r} is not true/false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise HparamsError(f"{path}: {value!r} is not a string")
        return value
    return value


@dataclasses.dataclass(frozen=True)
class Hparams:
    """Base class: subclasses are frozen dataclasses with defaults and a ``validate`` hook."""

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any] | None, path: str = "") -> T:
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        where = path or cls.__name__
        if unknown:
            raise HparamsError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(fields))}"
            )
        kwargs = {}
        for name, field in fields.items():
            key_path = f"{path}.{name}" if path else name
            if name in data:
                kwargs[name] = _coerce(data[name], hints[name], key_path)
            elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise HparamsError(f"{where}: missing required key {name!r}")
        obj = cls(**kwargs)
        obj.validate(where)
        return obj

    def validate(self, path: str) -> None:
        """Check cross-field constraints; raise :class:`HparamsError` naming ``path``."""

    def to_dict(self) -> dict[str, Any]:
        """All fields, resolved, JSON-compatible (tuples become lists)."""

        def plain(v: Any) -> Any:
            if isinstance(v, Hparams):
                return v.to_dict()
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """Short stable hash of the resolved values (used to detect stale resume state)."""
        return fingerprint_of(self.to_dict())


def fingerprint_of(data: Any) -> str:
    """Short stable hash of any JSON-compatible value (a run's resolved spec)."""
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def derive_seed(seed: int, stream: str) -> int:
    """Independent 63-bit seed for one random stream (init, data order, augmentation...) of a replicate."""
    digest = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def spec_record(spec: Any) -> dict[str, Any]:
    """A method's spec dataclass as its run's ``hparams.json`` records it: one level of fields,
    tuples as lists, the keys of schedules (epoch -> value) as strings."""
    return {
        k: (list(v) if isinstance(v, tuple) else ({str(a): b for a, b in v.items()} if isinstance(v, Mapping) else v))
        for k, v in dataclasses.asdict(spec).items()
    }
