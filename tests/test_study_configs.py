"""Every study's typed options and the JSON schema state the same keys and defaults.

Each study's ``config`` module names the ``Hparams`` classes that hold its options and where their
section sits in ``schemas/config.schema.yaml`` (``SCHEMA_BINDINGS``: class, path of keys below the
study's section, schema keys that are structure rather than options). Defaults are stated once, in
the class; the schema repeats them for users and Snakemake, and this test keeps the two identical.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys

import pytest
import yaml
from conftest import REPO

from sparselab.config.hparams import Hparams
from sparselab.workflow import STUDIES

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())


def _bindings():
    for study in STUDIES:
        module = importlib.import_module(f"sparselab.studies.{study}.config")
        for cls, pointer, structural in getattr(module, "SCHEMA_BINDINGS", ()):
            yield pytest.param(study, cls, pointer, frozenset(structural), id=f"{study}:{cls.__name__}")


def _node(study: str, pointer: tuple[str, ...]) -> dict:
    node = SCHEMA["properties"][study]
    for key in pointer:
        node = node[key]
    while "$ref" in node:  # "#/$defs/name"
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.mark.parametrize(("study", "cls", "pointer", "structural"), list(_bindings()))
def test_schema_and_typed_options_have_the_same_keys_and_defaults(study, cls, pointer, structural):
    props = {k: v for k, v in _node(study, pointer)["properties"].items() if k not in structural}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(props) == set(fields), (
        f"{study} {cls.__name__}: schema {sorted(set(props) - set(fields))}, class {sorted(set(fields) - set(props))}"
    )
    for name, prop in props.items():
        field = fields[name]
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        if "default" in prop:
            assert has_default, f"{study} {cls.__name__}.{name}: the schema has a default, the class none"
            value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
            value = list(value) if isinstance(value, tuple) else value
            if isinstance(value, Hparams):  # a nested block: the schema's default ({}) filled by the class
                assert type(value).from_dict(prop["default"]) == value, f"{study} {cls.__name__}.{name}"
                continue
            assert prop["default"] == value, (
                f"{study} {cls.__name__}.{name}: schema {prop['default']!r}, class {value!r}"
            )


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_types_its_options_and_plans_without_snakemake(study):
    """Each study states its options in typed classes bound to the schema, and its plan is plain
    Python that parses without torch or pandas (the Snakefile imports it at parse time)."""
    module = importlib.import_module(f"sparselab.studies.{study}.config")
    assert getattr(module, "SCHEMA_BINDINGS", ()), f"{study}: no SCHEMA_BINDINGS in its config module"
    code = f"import sys, sparselab.studies.{study}.plan; assert not {{'torch', 'pandas'}} & set(sys.modules), sys.modules.keys()"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "lib")}
    )
