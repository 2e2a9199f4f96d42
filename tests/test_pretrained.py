"""Published torchvision weights from the local hub cache: a fake cached file (a freshly built resnet18's
state dict under the real file name) loads bitwise, misses and misfits fail naming the file, hashes are
checked, TORCH_HOME is honoured, and no downloader is ever reached."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision
import torchvision.models._api
from torch import nn

from sparselab.models import build_model
from sparselab.models.pretrained import (
    PRETRAINED_ARCHS,
    PretrainedError,
    arch_of_weights,
    embedded_hash_prefix,
    inference_transform,
    load_pretrained,
    verify_hash,
    weights_file,
)

R18 = "ResNet18_Weights.IMAGENET1K_V1"
R18_FILE = "resnet18-f37072fd.pth"


pytestmark = pytest.mark.usefixtures("no_downloads")  # conftest: any network access fails


def fake_resnet18(seed: int = 0) -> nn.Module:
    """A resnet18 with random BN statistics too, so that the eval-mode logits depend on every buffer."""
    torch.manual_seed(seed)
    model = build_model("resnet18", 1000, (3, 224, 224))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(7)
    return model.eval()


def cache_file(hub: Path, name: str = R18_FILE) -> Path:
    path = hub / "checkpoints" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_filename_matches_torchvision_url() -> None:
    assert torchvision.models.get_weight(R18).url.endswith("/" + R18_FILE)


def test_load_is_bitwise_and_logits_match(tmp_path: Path) -> None:
    ref = fake_resnet18()
    torch.save(ref.state_dict(), cache_file(tmp_path))
    model, spec = load_pretrained(R18, tmp_path)
    assert (spec.arch, spec.num_classes, spec.input_shape, spec.kwargs) == ("resnet18", 1000, (3, 224, 224), {})
    assert not model.training
    got, want = model.state_dict(), ref.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    assert weights_file(R18, tmp_path) == tmp_path / "checkpoints" / R18_FILE


def test_old_style_file_without_bn_counters_loads(tmp_path: Path) -> None:
    """Old torchvision files lack ``num_batches_tracked`` (and ``_metadata``); strict loading still accepts them."""
    ref = fake_resnet18()
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, cache_file(tmp_path))
    model, _ = load_pretrained(R18, tmp_path)
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_missing_file_names_path_and_fix(tmp_path: Path) -> None:
    expected = tmp_path / "checkpoints" / R18_FILE
    for call in (lambda: weights_file(R18, tmp_path), lambda: load_pretrained(R18, tmp_path)):
        with pytest.raises(PretrainedError) as exc:
            call()
        msg = str(exc.value)
        assert str(expected) in msg and R18 in msg and "get_state_dict" in msg and "TORCH_HOME" in msg


@pytest.mark.parametrize(
    "name",
    ["ResNet18_Weights.NOPE", "Nope_Weights.IMAGENET1K_V1", "resnet18.IMAGENET1K_V1", "IMAGENET1K_V1", "a.b.c", ""],
)
def test_unknown_weights_name(name: str, tmp_path: Path) -> None:
    for fn in (lambda: weights_file(name, tmp_path), lambda: arch_of_weights(name), lambda: inference_transform(name)):
        with pytest.raises(PretrainedError, match="get_model_weights"):
            fn()


def test_arch_of_weights() -> None:
    assert arch_of_weights("ResNet50_Weights.IMAGENET1K_V2") == "resnet50"
    assert arch_of_weights("ResNet152_Weights.DEFAULT") == "resnet152"
    for depth in (18, 34, 50, 101, 152):
        assert PRETRAINED_ARCHS[f"ResNet{depth}_Weights"] == f"resnet{depth}"
    for name in ("VGG16_Weights.IMAGENET1K_V1", "ResNeXt50_32X4D_Weights.IMAGENET1K_V1"):
        with pytest.raises(PretrainedError, match="supported: ResNet18_Weights"):
            arch_of_weights(name)


def test_default_alias_resolves_to_its_file(tmp_path: Path) -> None:
    torch.save(fake_resnet18().state_dict(), cache_file(tmp_path))
    assert weights_file("ResNet18_Weights.DEFAULT", tmp_path).name == R18_FILE


@pytest.mark.parametrize("corruption", ["shape", "missing", "extra"])
def test_misfit_state_dict_names_file(corruption: str, tmp_path: Path) -> None:
    state = fake_resnet18().state_dict()
    if corruption == "shape":
        state["fc.weight"] = torch.zeros(10, 512)
    elif corruption == "missing":
        del state["layer4.1.conv2.weight"]
    else:
        state["layer5.weight"] = torch.zeros(1)
    path = cache_file(tmp_path)
    torch.save(state, path)
    with pytest.raises(PretrainedError, match="resnet18") as exc:
        load_pretrained(R18, tmp_path)
    assert str(path) in str(exc.value)


def test_resnet34_under_resnet18_name_fails(tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    torch.save(build_model("resnet34", 1000, (3, 224, 224), width=1 / 16).state_dict(), path)
    with pytest.raises(PretrainedError, match="does not fit") as exc:
        load_pretrained(R18, tmp_path)
    assert str(path) in str(exc.value)


def test_unreadable_file_names_file(tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedError, match="cannot read") as exc:
        load_pretrained(R18, tmp_path)
    assert str(path) in str(exc.value)


def test_check_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = fake_resnet18()
    path = cache_file(tmp_path)
    torch.save(ref.state_dict(), path)
    load_pretrained(R18, tmp_path)  # no check: the fake loads
    with pytest.raises(PretrainedError, match="does not match") as exc:
        load_pretrained(R18, tmp_path, check_hash=True)
    assert str(path) in str(exc.value)

    # The same bytes under a name whose embedded prefix is their own sha256 pass.
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    good = cache_file(tmp_path, f"resnet18-{digest[:8]}.pth")
    good.write_bytes(path.read_bytes())
    verify_hash(good)
    weights = torchvision.models.get_weight(R18)
    monkeypatch.setattr(weights.value, "url", f"https://example.invalid/models/{good.name}")
    model, _ = load_pretrained(R18, tmp_path, check_hash=True)
    assert torch.equal(model.fc.weight, ref.fc.weight)


def test_embedded_hash_prefix() -> None:
    assert embedded_hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert embedded_hash_prefix("/x/y-z/resnet50-11ad3fa6.pth") == "11ad3fa6"
    assert embedded_hash_prefix("resnet18_fbgemm_16fa66dd.pth") is None  # quantized files use '_'
    assert embedded_hash_prefix("model.pth") is None


def test_verify_hash_without_prefix(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(b"x")
    with pytest.raises(PretrainedError, match="no '-<sha256 prefix>.'"):
        verify_hash(path)


def test_torch_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.hub.get_dir()`` reads $TORCH_HOME at call time unless ``torch.hub.set_dir`` was called."""
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # undo any set_dir from elsewhere in the session
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    hub = tmp_path / "th" / "hub"
    with pytest.raises(PretrainedError, match=re.escape(str(hub / "checkpoints" / R18_FILE))):
        weights_file(R18)
    ref = fake_resnet18()
    torch.save(ref.state_dict(), cache_file(hub))
    assert weights_file(R18) == hub / "checkpoints" / R18_FILE
    model, _ = load_pretrained(R18)
    assert torch.equal(model.conv1.weight, ref.conv1.weight)
    # An explicit hub_dir wins over the environment.
    with pytest.raises(PretrainedError):
        weights_file(R18, tmp_path / "elsewhere")


def test_set_dir_overrides_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    torch.hub.set_dir(str(tmp_path / "set"))  # restored by the _hub_dir monkeypatch
    with pytest.raises(PretrainedError, match=re.escape(str(tmp_path / "set" / "checkpoints" / R18_FILE))):
        weights_file(R18)


def test_inference_transform() -> None:
    t = inference_transform(R18)
    assert list(t.resize_size) == [256] and list(t.crop_size) == [224]
    assert list(t.mean) == [0.485, 0.456, 0.406] and list(t.std) == [0.229, 0.224, 0.225]
    out = t(torch.rand(3, 300, 400))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32


# The original's weights per architecture (pathnorm_toolkit, pathnorm_and_margins_pretrained_resnets.py,
# get_model: V1 for resnet18/34, V2 for resnet50/101/152) and the file torchvision names for each.
ORIGINAL_WEIGHTS = {
    "resnet18": ("ResNet18_Weights.IMAGENET1K_V1", "resnet18-f37072fd.pth"),
    "resnet34": ("ResNet34_Weights.IMAGENET1K_V1", "resnet34-b627a593.pth"),
    "resnet50": ("ResNet50_Weights.IMAGENET1K_V2", "resnet50-11ad3fa6.pth"),
    "resnet101": ("ResNet101_Weights.IMAGENET1K_V2", "resnet101-cd907fc2.pth"),
    "resnet152": ("ResNet152_Weights.IMAGENET1K_V2", "resnet152-f82ba261.pth"),
}


def test_paper_config_uses_the_originals_weights_per_architecture(tmp_path: Path) -> None:
    import yaml
    from conftest import REPO

    from sparselab.workflow import load_workflow_config

    config = yaml.safe_load((REPO / "configs" / "gbrg24.yaml").read_text())
    wf = load_workflow_config(config, REPO / "schemas" / "config.schema.yaml")
    entries = {p.name: p.weights for p in wf.pathnorm.pretrained}
    assert entries == {arch: w for arch, (w, _) in ORIGINAL_WEIGHTS.items()}
    for name, weights in entries.items():
        assert arch_of_weights(weights) == name
        expected = cache_file(tmp_path, ORIGINAL_WEIGHTS[name][1])
        expected.touch()
        assert weights_file(weights, hub_dir=tmp_path) == expected  # the loader finds the original's file
