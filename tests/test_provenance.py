"""Checkpoint lineage: the sidecar's ``parents`` round trip, unknown vs root, the CLI's ``info`` with
parents that match, changed (a stale lineage) or went missing, and the CLI's own jobs' parents."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from conftest import expected_parents, sidecar_parents

from sparselab.__main__ import main as cli
from sparselab.io.checkpoint import read_meta, sidecar_path
from sparselab.io.provenance import Parent, check_parent, locate_parent, parent_of_file, read_parents
from sparselab.models.checkpoint import load_checkpoint, save_checkpoint
from sparselab.models.spec import ArchSpec

SPEC = ArchSpec("lenet300_100", 10, (1, 8, 8), {"hidden": [8]})


def checkpoint(path: Path, seed: int = 0, parents: tuple[Parent, ...] | None = ()) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, SPEC.build(), SPEC, meta={"method": "test"}, parents=parents)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_parents_round_trip_through_the_sidecar_and_the_loaded_checkpoint(tmp_path: Path) -> None:
    dense = checkpoint(tmp_path / "dense.safetensors")
    rewind = tmp_path / "rewind.pt"
    rewind.write_bytes(b"a training state")
    parents = (parent_of_file("dense", dense), parent_of_file("rewind", rewind))
    child = checkpoint(tmp_path / "child.safetensors", seed=1, parents=parents)
    assert sidecar_parents(child) == expected_parents(("dense", dense), ("rewind", rewind))
    loaded = load_checkpoint(child)
    assert loaded.parents == parents
    assert read_parents(read_meta(child)) == parents


def test_a_root_has_no_parents_and_an_old_sidecar_unknown_ones(tmp_path: Path) -> None:
    root = checkpoint(tmp_path / "root.safetensors")
    assert sidecar_parents(root) == [] and load_checkpoint(root).parents == ()
    old = checkpoint(tmp_path / "old.safetensors", parents=None)
    assert "parents" not in read_meta(old) and load_checkpoint(old).parents is None


def test_a_verified_load_lends_its_hash_and_an_unverified_one_hashes_the_file(tmp_path: Path) -> None:
    dense = checkpoint(tmp_path / "dense.safetensors")
    verified = load_checkpoint(dense)
    assert verified.sha256 == sha(dense)
    assert verified.as_parent("dense", "results/x.safetensors") == Parent("dense", "results/x.safetensors", sha(dense))
    meta = read_meta(dense)
    meta["tensors_sha256"] = "0" * 64  # a sidecar that lies: an unverified load must not trust it
    sidecar_path(dense).write_text(json.dumps(meta))
    unverified = load_checkpoint(dense, verify=False)
    assert unverified.sha256 is None and unverified.as_parent("dense", dense).sha256 == sha(dense)


def test_bad_parents_are_refused_with_the_key(tmp_path: Path) -> None:
    dense = checkpoint(tmp_path / "dense.safetensors")
    with pytest.raises(ValueError, match="role 'teacher'"):
        parent_of_file("teacher", dense)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a hex SHA-256"):
        parent_of_file("dense", dense, "abc")
    with pytest.raises(ValueError, match="sidecar key 'parents'"):
        read_parents({"parents": [{"role": "dense", "path": "x"}]})
    with pytest.raises(ValueError, match="sidecar key 'parents'"):
        read_parents({"parents": "dense.safetensors"})


def test_a_parent_is_found_as_recorded_or_under_the_workflow_root(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "wf"
    dense = checkpoint(root / "results/train/dense.safetensors")
    child = checkpoint(root / "results/oneshot/model.safetensors", seed=1)
    relative = Parent("dense", "results/train/dense.safetensors", sha(dense))
    monkeypatch.chdir(tmp_path)  # not the root the path is relative to
    assert locate_parent(relative, child) == root / "results/train/dense.safetensors"
    assert check_parent(relative, child)[0] == "matches"
    checkpoint(dense, seed=2)  # the parent was retrained after the child was made from it
    assert check_parent(relative, child)[0] == "changed"
    dense.unlink()
    assert check_parent(relative, child) == ("missing", None)
    assert check_parent(Parent("dense", str(tmp_path / "nope.safetensors"), "0" * 64), child) == ("missing", None)


def info(capsys: pytest.CaptureFixture, ckpt: Path) -> dict:
    assert cli(["info", str(ckpt)]) == 0
    return json.loads(capsys.readouterr().out)


def test_info_prints_the_parents_and_whether_they_still_match(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    dense = checkpoint(Path("dense.safetensors"))
    pruned = Path("pruned.safetensors")
    assert cli(["prune", str(dense), str(pruned), "--sparsity", "0.5"]) == 0  # the CLI's prune records it
    capsys.readouterr()
    assert sidecar_parents(pruned) == expected_parents(("dense", dense))
    shown = info(capsys, pruned)["parents"]
    assert shown == [{"role": "dense", "path": "dense.safetensors", "sha256": sha(dense)[:12], "now": "matches"}]

    checkpoint(dense, seed=3)  # retrained: the pruned model no longer descends from the file there
    assert info(capsys, pruned)["parents"][0]["now"].startswith("changed since (stale lineage")
    os.remove(dense)
    assert info(capsys, pruned)["parents"][0]["now"].startswith("missing")

    assert info(capsys, checkpoint(Path("root.safetensors")))["parents"] == []
    assert info(capsys, checkpoint(Path("old.safetensors"), parents=None))["parents"].startswith("unknown")


def test_pruning_a_pruned_checkpoint_names_it_pruned(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    dense = checkpoint(tmp_path / "dense.safetensors")
    half, more = tmp_path / "half.safetensors", tmp_path / "more.safetensors"
    assert cli(["prune", str(dense), str(half), "--sparsity", "0.5"]) == 0
    assert cli(["prune", str(half), str(more), "--sparsity", "0.8"]) == 0
    assert sidecar_parents(more) == expected_parents(("pruned", half))


def test_a_malformed_parents_key_is_one_line_from_info(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ckpt = checkpoint(tmp_path / "m.safetensors")
    meta = read_meta(ckpt)
    meta["parents"] = {"dense": "x"}
    sidecar_path(ckpt).write_text(json.dumps(meta))
    assert cli(["info", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sidecar key 'parents'" in err[0]
