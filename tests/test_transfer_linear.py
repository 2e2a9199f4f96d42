"""Linear finetuning on cached features (sparselab.transfer.linear)."""

from __future__ import annotations

import torch
from torch import nn

from sparselab.models import build_model
from sparselab.transfer.features import extract_features, load_features, save_features
from sparselab.transfer.linear import logistic_regression, lr_at_epoch, train_linear_head


def separable(n: int = 600, d: int = 16, classes: int = 4, seed: int = 0):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g), y


def test_the_schedule_gives_51_50_49_epochs_at_each_rate() -> None:
    rates = [lr_at_epoch(e) for e in range(150)]
    assert rates.count(0.01) == 51 and rates.count(0.01 * 0.1) == 50 and len([r for r in rates if r < 1e-3 * 0.5]) == 49
    assert rates[50] == 0.01 and abs(rates[51] - 0.001) < 1e-12 and abs(rates[101] - 1e-4) < 1e-12


def test_features_are_the_input_of_the_last_linear_layer_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, (3, 16, 16), width=0.125, small_input=True).train()
    x = torch.randn(6, 3, 16, 16)
    feats, labels = extract_features(model, [(x[:4], torch.arange(4)), (x[4:], torch.arange(2))])
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        expected = torch.flatten(
            model.avgpool(
                model.layer4(
                    model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))
                )
            ),
            1,
        )
    assert torch.allclose(feats, expected, atol=1e-6) and labels.tolist() == [0, 1, 2, 3, 0, 1]


def test_feature_cache_round_trips(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f, y = separable(20)
    save_features(tmp_path / "train.safetensors", f, y, {"upstream": "u", "dataset": "d", "split": "train"})
    f2, y2, meta = load_features(tmp_path / "train.safetensors")
    assert torch.equal(f, f2) and torch.equal(y, y2) and meta["samples"] == 20 and meta["dim"] == 16


def test_sgd_head_and_lbfgs_learn_separable_features() -> None:
    train, test = separable(600, seed=1), separable(200, seed=1)
    test = (test[0][:200], test[1][:200])
    head, history = train_linear_head(train, test, 4, epochs=6, decay_after=(3, 5), seed=0)
    assert isinstance(head, nn.Linear) and history[-1]["test_top1"] > 0.95
    assert [h["lr"] for h in history] == [0.01] * 4 + [0.001] * 2
    _, again = train_linear_head(train, test, 4, epochs=6, decay_after=(3, 5), seed=0)
    assert again == history  # seeded
    _, result = logistic_regression(train, test, 4)
    assert result["test_top1"] > 0.95
