"""Importing upstream sparse-transfer checkpoints (transfer.md §6): fake files in each foreign layout,
built from our own resnet50 (width 0.125) renamed by hand, import back bitwise, with every tensor loaded
(RigL's stem included), masks rebuilt from zeros, one error for every misfit, and no arbitrary unpickling."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision
import torchvision.models._api
from torch import nn

from sparselab.io.checkpoint import sidecar_path
from sparselab.models import build_model
from sparselab.models.checkpoint import load_checkpoint
from sparselab.transfer.imports import ImportResult, TransferImportError, import_checkpoint, rigl_to_ours

ARCH, CLASSES, KW = "resnet50", 10, {"width": 0.125}
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


pytestmark = pytest.mark.usefixtures("no_downloads")  # conftest: any network access fails


def sparse_source(seed: int = 0) -> tuple[nn.Module, dict[str, float]]:
    """Our model with random BN statistics and a different exact fraction of zeros in every conv/linear weight."""
    torch.manual_seed(seed)
    model = build_model(ARCH, CLASSES, (3, 224, 224), **KW)
    expected: dict[str, float] = {}
    with torch.no_grad():
        for i, (name, m) in enumerate(
            (n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))
        ):
            w = m.weight
            k = int(w.numel() * (0.3 + 0.6 * (i % 7) / 6))  # 30% .. 90%
            idx = torch.randperm(w.numel())[:k]
            w.view(-1)[idx] = 0
            expected[f"{name}.weight"] = k / w.numel()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.bias.normal_()
    return model.eval(), expected


def to_rigl(key: str) -> str:
    """Our names -> the TF layout of §6.2 (written independently of the importer)."""
    key = re.sub(r"^conv1\.", "initial_conv.conv.", key)
    key = re.sub(r"^bn1\.", "initial_conv.bn.", key)
    key = re.sub(r"^(layer\d)\.(\d+)\.downsample\.0\.", r"\1.block.\2.shortcut.conv.", key)
    key = re.sub(r"^(layer\d)\.(\d+)\.downsample\.1\.", r"\1.block.\2.shortcut.bn.", key)
    key = re.sub(r"^(layer\d)\.(\d+)\.conv(\d)\.", r"\1.block.\2.conv\3.conv.", key)
    key = re.sub(r"^(layer\d)\.(\d+)\.bn(\d)\.", r"\1.block.\2.conv\3.bn.", key)
    return key


def to_str(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v[:, :, None, None] if k == "fc.weight" else v) for k, v in state.items()}


def wrapped(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """The wrapped form of §6.2: ``<layer>._layer.weight|bias`` plus ``_weight_mask``/``_bias_mask`` buffers."""
    layers = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        layer, _, param = k.rpartition(".")
        if layer in layers:
            out[f"{layer}._layer.{param}"] = v
            out[f"{layer}._{param}_mask"] = (v != 0).float()
        else:
            out[k] = v
    return out


def write_file(tmp_path: Path, kind: str, model: nn.Module, variant: str = "plain") -> Path:
    state = model.state_dict()
    if kind == "torchvision":
        obj = state
    elif kind == "rigl":
        obj = {
            "model_config": {"arch": "resnet50_rigl", "dataset": "imagenet"},
            "model_state_dict": {to_rigl(k): v for k, v in state.items()},
        }
    elif kind == "str":
        obj = {"state_dict": {f"module.{k}": v for k, v in to_str(state).items()}}
    else:  # common
        sd = wrapped(state, model) if variant == "wrapped" else state
        obj = {
            "model_config": {"arch": "resnet50", "dataset": "imagenet"},
            "epoch": 99,
            "model_state_dict": {f"module.{k}": v for k, v in sd.items()},
        }
    path = tmp_path / f"{kind}-{variant}.pth"
    torch.save(obj, path)
    return path


def run(path: Path, kind: str, **kw: object) -> ImportResult:
    return import_checkpoint(path, kind, ARCH, CLASSES, arch_kwargs=KW, **kw)  # type: ignore[arg-type]


def assert_same(result: ImportResult, ref: nn.Module, expected: dict[str, float]) -> None:
    got, want = result.model.state_dict(), ref.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    with torch.no_grad():
        assert torch.equal(result.model(X), ref(X))
    assert result.per_layer == pytest.approx(expected, abs=1e-12)
    total = sum(p.numel() for n, p in ref.named_parameters() if n in expected)
    zeros = sum(int((p == 0).sum()) for n, p in ref.named_parameters() if n in expected)
    assert result.sparsity == pytest.approx(zeros / total)
    for name in expected:
        assert torch.equal(result.mask[name], dict(ref.named_parameters())[name] != 0)


@pytest.mark.parametrize(
    ("kind", "variant"),
    [("torchvision", "plain"), ("common", "plain"), ("common", "wrapped"), ("rigl", "plain"), ("str", "plain")],
)
def test_round_trip(kind: str, variant: str, tmp_path: Path) -> None:
    ref, expected = sparse_source()
    result = run(write_file(tmp_path, kind, ref, variant), kind)
    assert_same(result, ref, expected)
    assert not result.model.training
    if kind == "rigl":
        assert any("bicubic" in n for n in result.notes)
    if kind == "str":
        assert any("1x1-conv head" in n for n in result.notes)


def test_common_arch_string_selects_layout(tmp_path: Path) -> None:
    ref, expected = sparse_source(1)
    path = tmp_path / "rigl_as_common.pth"
    torch.save(
        {
            "model_config": {"arch": "resnet50_rigl", "dataset": "imagenet"},
            "model_state_dict": {to_rigl(k): v for k, v in ref.state_dict().items()},
        },
        path,
    )
    assert_same(run(path, "common"), ref, expected)
    with pytest.raises(TransferImportError, match="kind='str'"):
        run(path, "str")


def test_torchvision_weights_name_from_hub_cache(tmp_path: Path) -> None:
    ref, expected = sparse_source(2)
    name = "ResNet50_Weights.IMAGENET1K_V2"
    file = tmp_path / "checkpoints" / Path(torchvision.models.get_weight(name).url).name
    file.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), file)
    result = import_checkpoint(name, "torchvision", ARCH, CLASSES, arch_kwargs=KW, hub_dir=tmp_path)
    assert_same(result, ref, expected)
    with pytest.raises(TransferImportError, match="sha256"):
        import_checkpoint(file, "torchvision", ARCH, CLASSES, arch_kwargs=KW, check_hash=True)
    with pytest.raises(TransferImportError, match="not in the local torch hub cache"):
        import_checkpoint(
            "ResNet50_Weights.IMAGENET1K_V1", "torchvision", ARCH, CLASSES, arch_kwargs=KW, hub_dir=tmp_path
        )


def test_old_torchvision_file_without_bn_counters(tmp_path: Path) -> None:
    ref, expected = sparse_source()
    state = {k: v for k, v in ref.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "old.pth")
    result = run(tmp_path / "old.pth", "torchvision")
    with torch.no_grad():
        assert torch.equal(result.model(X), ref(X))
    assert any("num_batches_tracked" in n for n in result.notes)


def test_rigl_loads_every_tensor_including_the_stem(tmp_path: Path) -> None:
    """§11.4: distinct constants in every file tensor; no tensor of our model may keep its random init."""
    torch.manual_seed(0)
    template = build_model(ARCH, CLASSES, (3, 224, 224), **KW).state_dict()
    consts = {k: torch.full_like(v, i + 1) for i, (k, v) in enumerate(template.items())}
    path = tmp_path / "rigl.pth"
    torch.save({to_rigl(k): v for k, v in consts.items()}, path)
    assert (
        to_rigl("conv1.weight") == "initial_conv.conv.weight"
        and rigl_to_ours("initial_conv.conv.weight") == "conv1.weight"
    )
    torch.manual_seed(0)  # the importer would draw exactly this init for a tensor it forgot
    result = run(path, "rigl")
    got = result.model.state_dict()
    assert set(got) == set(consts)
    for k, v in consts.items():
        assert torch.equal(got[k], v), k
        if template[k].numel() > 1 and template[k].dtype.is_floating_point:
            assert not torch.equal(got[k], template[k]), k
    assert torch.equal(got["conv1.weight"], consts["conv1.weight"])

    # A file without the stem (what prefix-filtered loading would silently accept) fails, naming it.
    stemless = {to_rigl(k): v for k, v in consts.items() if not k.startswith(("conv1.", "bn1."))}
    torch.save(stemless, path)
    with pytest.raises(TransferImportError) as exc:
        run(path, "rigl")
    assert {"conv1.weight", "bn1.weight", "bn1.running_var"} <= set(exc.value.missing)
    # The same file read as torchvision layout fails with a hint towards kind='rigl'.
    torch.save({to_rigl(k): v for k, v in consts.items()}, path)
    with pytest.raises(TransferImportError, match="kind='rigl'"):
        run(path, "torchvision")


def test_one_error_lists_every_problem(tmp_path: Path) -> None:
    ref, _ = sparse_source()
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    del state["module.layer4.0.conv2.weight"], state["module.bn1.running_mean"]
    state["module.layer5.0.conv1.weight"] = torch.zeros(1)
    state["module.head.weight"] = torch.zeros(1)
    state["module.fc.weight"] = torch.zeros(3, 4)
    state["module.layer1.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    state["model.conv1.weight"] = ref.conv1.weight  # -> conv1.weight a second time
    torch.save({"state_dict": state}, tmp_path / "bad.pth")
    with pytest.raises(TransferImportError) as exc:
        run(tmp_path / "bad.pth", "torchvision")
    e, msg = exc.value, str(exc.value)
    assert e.missing == ["bn1.running_mean", "layer4.0.conv2.weight"]
    assert len(e.unexpected) == 2 and len(e.misshapen) == 2 and len(e.duplicated) == 1
    for s in (
        "bn1.running_mean",
        "layer4.0.conv2.weight",
        "module.layer5.0.conv1.weight (-> layer5.0.conv1.weight)",
        "module.head.weight",
        "fc.weight",
        "layer1.0.conv1.weight",
        "(3, 4)",
        "(1, 1, 1, 1)",
        "conv1.weight <- module.conv1.weight, model.conv1.weight",
    ):
        assert s in msg, s


def test_str_threshold_parameters_are_refused_with_reason(tmp_path: Path) -> None:
    ref, _ = sparse_source()
    state = to_str(ref.state_dict())
    state["conv1.sparseThreshold"] = torch.tensor([-3.0])
    torch.save(state, tmp_path / "str.pth")
    with pytest.raises(TransferImportError, match="threshold parameters.*not implemented") as exc:
        run(tmp_path / "str.pth", "str")
    assert exc.value.unexpected == ["conv1.sparseThreshold"]


class Payload:
    ran = False

    def __setstate__(self, state: object) -> None:
        Payload.ran = True


def test_refuses_to_unpickle_custom_objects(tmp_path: Path) -> None:
    ref, _ = sparse_source()
    path = tmp_path / "pickled.pth"
    torch.save(
        {
            "model_config": {"arch": "resnet50", "dataset": "imagenet"},
            "args": Payload(),
            "model_state_dict": ref.state_dict(),
        },
        path,
    )
    with pytest.raises(TransferImportError, match="refusing to unpickle") as exc:
        run(path, "common")
    assert "weights_only" in str(exc.value) and not Payload.ran


def test_wrapped_mask_is_applied_and_noted(tmp_path: Path) -> None:
    ref, _ = sparse_source()
    state = wrapped(ref.state_dict(), ref)
    state["layer1.0.conv1._weight_mask"] = torch.zeros_like(state["layer1.0.conv1._weight_mask"])
    torch.save(
        {"model_config": {"arch": "resnet50", "dataset": "imagenet"}, "model_state_dict": state}, tmp_path / "w.pth"
    )
    result = run(tmp_path / "w.pth", "common")
    assert result.per_layer["layer1.0.conv1.weight"] == 1.0
    assert not result.mask["layer1.0.conv1.weight"].any()
    assert any("layer1.0.conv1.weight" in n and "zeroed" in n for n in result.notes)


def test_kind_and_arch_checks(tmp_path: Path) -> None:
    ref, _ = sparse_source()
    torch.save(ref.state_dict(), tmp_path / "plain.pth")
    with pytest.raises(TransferImportError, match="not a common-format checkpoint"):
        run(tmp_path / "plain.pth", "common")
    with pytest.raises(TransferImportError, match="not supported"):
        import_checkpoint(tmp_path / "plain.pth", "torchvision", "mobilenet_v1")
    with pytest.raises(TransferImportError, match="no such checkpoint"):
        run(tmp_path / "nope.pth", "torchvision")


def test_saved_checkpoint_reloads_with_mask(tmp_path: Path) -> None:
    ref, expected = sparse_source(3)
    src = write_file(tmp_path, "rigl", ref)
    out = tmp_path / "imported.safetensors"
    result = run(src, "rigl", out=out)
    ck = load_checkpoint(out)
    assert ck.mask == result.mask
    assert {n: float(1 - ck.mask[n].float().mean()) for n in ck.mask.names()} == pytest.approx(expected)
    with torch.no_grad():
        assert torch.equal(ck.model.eval()(X), ref(X))
    meta = json.loads(sidecar_path(out).read_text())
    imp = meta["imported_from"]
    assert imp["kind"] == "rigl" and imp["layout"] == "rigl" and imp["source"] == str(src.resolve())
    assert imp["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    # lineage: the external file, by the path the import read it from
    assert meta["parents"] == [{"role": "imported", "path": str(src), "sha256": imp["source_sha256"]}]
    assert imp["sparsity"] == pytest.approx(result.sparsity) and imp["per_layer"] == pytest.approx(expected)
    assert meta["sparsity"]["sparsity"] == pytest.approx(result.sparsity)
    assert ck.spec.kwargs == KW and ck.spec.num_classes == CLASSES
