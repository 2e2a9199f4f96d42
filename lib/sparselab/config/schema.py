"""Validation of a config against the JSON schema, as Snakemake's ``validate`` does it (defaults
filled in), with one error line naming the key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .common import ConfigError

__all__ = ["validate_schema"]


def _dotted(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _schema_validator(path: Path):
    """What ``snakemake.utils.validate(config, path)`` builds for a local schema file: a Draft
    2020-12 validator that also fills in the ``default`` of each property, with ``$ref``s resolved
    against the file. The schema is read with libyaml's loader where present (Snakemake's
    pure-Python YAML reading of our schema cost ~0.2 s of every workflow parse); ``None`` for a
    schema of another draft (Snakemake then warns), which is left to Snakemake."""
    import yaml
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource

    with open(path, encoding="utf-8") as f:
        schema = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(schema, dict) or schema.get("$schema") != Draft202012Validator.META_SCHEMA["$schema"]:
        return None
    schema["$id"] = path.as_uri()

    def retrieve(uri: str):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        with open(url2pathname(urlparse(uri).path), encoding="utf-8") as f:
            return Resource.from_contents(yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))

    registry = Registry(retrieve=retrieve).with_resource(  # type: ignore[call-arg]  # attrs field the stubs omit
        uri=str(path), resource=Resource.from_contents(schema)
    )
    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, subschema):
        # a section typed [object, "null"] may be null (transfer's full: null): nothing to fill
        for name, sub in props.items() if isinstance(instance, dict) else ():
            if "default" in sub:
                instance.setdefault(name, sub["default"])
        yield from properties(validator, props, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema, registry=registry)


def validate_schema(config: dict, schema: str | Path, source: str = "config") -> None:
    """Snakemake's JSON-schema validation (fills defaults), with a one-line error naming the key."""
    import jsonschema

    path = Path(schema).resolve()
    validator = _schema_validator(path)
    try:
        if validator is not None:
            validator.validate(config)
            return
        from snakemake.exceptions import WorkflowError
        from snakemake.utils import validate

        try:
            validate(config, str(path))
        except WorkflowError as exc:
            # Snakemake formats the jsonschema error into its message; the error itself is the context.
            if isinstance(exc.__context__, jsonschema.ValidationError):
                raise exc.__context__ from None
            raise
    except jsonschema.ValidationError as err:
        raise ConfigError(f"{source}: {_dotted(err.absolute_path)}: {err.message} (schema: {schema})") from None
