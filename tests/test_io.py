"""Checkpoint format (safetensors + sidecar), atomic writes, and pickle-free resume state."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from safetensors.torch import save_file

from sparselab.dst.tied import tie_weights
from sparselab.io.atomic import atomic_path, atomic_write_json
from sparselab.io.checkpoint import CheckpointError, read_meta
from sparselab.models.checkpoint import load_checkpoint, save_checkpoint
from sparselab.models.spec import ArchSpec
from sparselab.sparsity.magnitude import magnitude_mask
from sparselab.sparsity.mask import Mask
from sparselab.train.state import TrainState

SPEC = ArchSpec("cifar_resnet20", 10, (3, 8, 8), {"width": 4})


def trained_like(spec: ArchSpec = SPEC) -> torch.nn.Module:
    torch.manual_seed(0)
    model = spec.build()
    with torch.no_grad():  # non-trivial BN statistics so buffers are checked too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(7)
    return model


def test_round_trip_restores_weights_buffers_mask_and_meta(tmp_path):
    model = trained_like()
    mask = magnitude_mask(model, 0.75, scope="global")
    mask.apply_(model)
    path = tmp_path / "model.safetensors"
    sidecar = save_checkpoint(path, model, SPEC, mask=mask, meta={"method": "test", "metrics": {"test_top1": 0.5}})

    ckpt = load_checkpoint(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), ckpt.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    assert ckpt.mask == mask
    assert ckpt.spec == SPEC
    assert ckpt.meta["method"] == "test" and ckpt.meta["metrics"]["test_top1"] == 0.5
    assert sidecar["sparsity"]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert sidecar["params"]["nonzero"] < sidecar["params"]["total"]
    x = torch.randn(2, 3, 8, 8)
    model.eval(), ckpt.model.eval()
    assert torch.equal(model(x), ckpt.model(x))


# A process that imports the checkpoint loader and nothing else: the model registry must find the
# build hooks (sparselab.models.registry.BUILD_HOOKS) by name, and import them only when a spec asks.
FRESH_LOAD = """
import sys
from safetensors.torch import load_file
from sparselab.models.checkpoint import load_checkpoint
hooks = ("sparselab.dst.tied", "sparselab.structured.removal")
assert not any(h in sys.modules for h in hooks), [h for h in hooks if h in sys.modules]
for path, hook in zip(sys.argv[1:3], hooks):
    model = load_checkpoint(path).model.eval()
    assert hook in sys.modules, hook
    io = load_file(path.replace(".safetensors", ".io"))
    assert (model(io["x"]) == io["y"]).all(), path
print("loaded")
"""


def test_tied_and_narrowed_checkpoints_load_in_a_fresh_process(tmp_path):
    narrowed_spec = SPEC.with_widths({"layer1.0.conv1": 2, "layer2.1.conv1": 3})
    tied_spec = dataclasses.replace(SPEC, tied={"modules": ["layer1.0.conv1", "fc"], "sparsity": 0.5, "seed": 3})
    tied = trained_like()
    tie_weights(tied, tied_spec.tied["modules"], 0.5, 3)
    paths = []
    for name, model, spec in (("tied", tied, tied_spec), ("narrowed", trained_like(narrowed_spec), narrowed_spec)):
        path = tmp_path / f"{name}.safetensors"
        save_checkpoint(path, model, spec)
        x = torch.randn(2, *spec.input_shape)
        with torch.no_grad():
            save_file({"x": x, "y": model.eval()(x)}, str(path.with_suffix(".io")))
        paths.append(str(path))
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    done = subprocess.run([sys.executable, "-c", FRESH_LOAD, *paths], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "loaded" in done.stdout, done.stderr


def test_sidecar_is_json_and_tensors_are_plain_safetensors(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, trained_like(), SPEC, mask=Mask.ones(trained_like()))
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["arch"] == {
        "arch": "cifar_resnet20",
        "num_classes": 10,
        "input_shape": [3, 8, 8],
        "kwargs": {"width": 4},
    }
    # safetensors layout: 8-byte little-endian header size, a JSON header, raw tensor bytes
    data = path.read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    assert header["__metadata__"] == {"format": "sparselab-checkpoint/1"}
    assert header["conv1.weight"]["dtype"] == "F32" and header["mask/conv1.weight"]["dtype"] == "BOOL"


def test_tampered_tensors_are_detected(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, trained_like(), SPEC)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(path)


def test_wrong_architecture_lists_every_offending_key(tmp_path):
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, trained_like(), SPEC)
    meta = read_meta(path)
    meta["arch"]["kwargs"] = {"width": 8}  # claims a wider model than the tensors hold
    (tmp_path / "model.json").write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError, match=r"shape mismatches \(106\): bn1.bias: file \(4,\) vs model \(8,\);.* and 98 more"
    ):
        load_checkpoint(path)


def test_missing_sidecar_and_bad_suffix(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="end in .safetensors"):
        save_checkpoint(tmp_path / "model.pt", trained_like(), SPEC)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}  # old content intact
    assert os.listdir(tmp_path) == ["out.json"]  # no temp file left


def test_train_state_loads_with_weights_only(tmp_path):
    model = trained_like()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5**s)
    state = TrainState(
        fingerprint="abc",
        epoch=3,
        step=30,
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler=sched.state_dict(),
        rng={"torch": torch.get_rng_state()},
        history=[{"epoch": 1, "test_top1": 0.5}],
        mask=Mask.ones(model).to_tensors(),
        callbacks={"cb": {"threshold": 1e-3}},
    )
    state.save(tmp_path / "resume.pt")
    loaded = TrainState.load(tmp_path / "resume.pt")  # torch.load(weights_only=True) inside
    assert loaded.epoch == 3 and loaded.history == state.history and loaded.callbacks == state.callbacks
    buf = next(iter(loaded.optimizer["state"].values()))["momentum_buffer"]
    assert torch.equal(buf, next(iter(opt.state_dict()["state"].values()))["momentum_buffer"])


def test_atomic_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_every_kind_of_output_gets_the_umask_s_mode(tmp_path, umask, mode):
    """Checkpoints (safetensors replaces the file it writes), resume state (torch.save), JSON and
    text: collaborators on a shared file system read what the umask lets them read."""
    from safetensors.torch import save_file

    model = torch.nn.Linear(3, 2)
    old = os.umask(umask)
    try:
        save_checkpoint(tmp_path / "model.safetensors", model, ArchSpec("lenet300_100", 2, (1, 3, 1)))
        with atomic_path(tmp_path / "raw.safetensors") as tmp:
            save_file({"w": torch.zeros(2)}, str(tmp))
        TrainState("f", 1, 1, model.state_dict(), {}, {}, {}, []).save(tmp_path / "resume.pt")
        atomic_write_json(tmp_path / "out.json", {"a": 1})
    finally:
        os.umask(old)
    for name in ("model.safetensors", "model.json", "raw.safetensors", "resume.pt", "out.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
