"""Per-filter importance measures (sparselab.structured) against independently written references.

The references never call the implementation's helpers: gradients are per-sample gradients from
``torch.func`` (``vmap(grad(...))`` of a ``functional_call``) averaged by hand, the Hessian-gradient
product is a central finite difference of class gradients along ḡ, the class-balanced sample is
re-selected sample by sample, each conv's BatchNorm is named by hand per architecture, and every
score is a Python loop over the elements of each filter. Models are float64 where values are compared.
"""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from sparselab.models import build_model
from sparselab.structured.measures import MEASURES, ImportanceTracker, importance

DATA_FREE = ("mag_based", "l1", "bn")
FIRST_ORDER = ("loss_based", "biased_loss", "tfo", "fisher", "nvidia")
HESSIAN = ("grasp", "grad_preserve")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: many tiny ops are faster without OpenMP barriers on a loaded 2-core VM."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------ models and data
class Tiny(nn.Module):
    """Two convs, BN registered BEFORE the convs (parameter order is not dataflow order), and the
    second conv in VGG's conv -> ReLU -> BN order through a functional ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_b = nn.BatchNorm2d(5)
        self.bn_a = nn.BatchNorm2d(4)
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.conv_b = nn.Conv2d(4, 5, 3, stride=2, padding=1, bias=False)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn_a(self.conv_a(x)))
        x = self.bn_b(F.relu(self.conv_b(x)))
        return self.fc(x.mean((2, 3)))


TINY_BN = {"conv_a": "bn_a", "conv_b": "bn_b"}


def randomize_bn(model: nn.Module, seed: int = 1) -> nn.Module:
    """Non-trivial running statistics and affine parameters (some γ negative), so that eval-mode and
    train-mode BN differ and β gets a gradient."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(c, generator=gen))
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.5)
    return model


def tiny(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(Tiny()).double().eval()


def tiny_data(sizes=(6, 9, 5), seed: int = 0, shape=(3, 6, 6), labels=None, dtype=torch.float64):
    """Minibatches of different sizes; by default 7/7/6 samples of classes 0/1/2 (shuffled)."""
    gen = torch.Generator().manual_seed(seed)
    total = sum(sizes)
    if labels is None:
        labels = torch.tensor([0] * 7 + [1] * 7 + [2] * 6)[torch.randperm(20, generator=gen)]
    assert len(labels) == total
    out, start = [], 0
    for i, n in enumerate(sizes):
        # batches drawn from different distributions, so their mean gradients differ
        x = torch.randn(n, *shape, generator=gen, dtype=dtype) * (1 + i) + i
        out.append((x, labels[start : start + n].clone()))
        start += n
    return out


def resnet(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(build_model("cifar_resnet20", 10, (3, 8, 8), width=2)).to(dtype).eval()


def mobilenet(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(build_model("mobilenet_v1", 10, (3, 8, 8), width=0.0625)).to(dtype).eval()


def vgg(dtype=torch.float64) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("vgg13_bn", 10, (3, 32, 32), width=0.0625, relu_before_bn=True)
    return randomize_bn(model).to(dtype).eval()


def ten_class_data(shape, batches=2, size=20, dtype=torch.float64):
    """``batches`` minibatches of ``size`` samples, labels cycling through the 10 classes."""
    gen = torch.Generator().manual_seed(3)
    return [
        (torch.randn(size, *shape, generator=gen, dtype=dtype), (torch.arange(size) + b) % 10) for b in range(batches)
    ]


def resnet_bn(name: str) -> str:
    """By hand: convN -> bnN, shortcut.0 -> shortcut.1."""
    return name.replace("shortcut.0", "shortcut.1") if "shortcut" in name else name.replace("conv", "bn")


def seq_bn(offset: int):
    """By hand for Sequential models: the BN sits ``offset`` positions after its conv."""

    def bn_of(name: str) -> str:
        head, _, idx = name.rpartition(".")
        return f"{head}.{int(idx) + offset}"

    return bn_of


def conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


# ------------------------------------------------------------------ independent references
def per_sample_grads(model: nn.Module, data, temperature: float) -> list[dict[str, torch.Tensor]]:
    """For every minibatch, {parameter name: [n_b, *shape]} per-sample gradients of CE(logits/T) in eval mode."""
    model = copy.deepcopy(model).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def loss(p, x, y):
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(out / temperature, y.unsqueeze(0))

    return [vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y) for x, y in data]


def mean_grad(per_batch) -> dict[str, torch.Tensor]:
    """Gradient of the mean loss over all samples = mean of all per-sample gradients."""
    n = sum(next(iter(b.values())).shape[0] for b in per_batch)
    return {k: sum(b[k].sum(0) for b in per_batch) / n for k in per_batch[0]}


def mean_squared_batch_grad(per_batch) -> dict[str, torch.Tensor]:
    """Σ_b n_b (minibatch-mean gradient)² / Σ_b n_b."""
    sizes = [next(iter(b.values())).shape[0] for b in per_batch]
    return {k: sum(n * b[k].mean(0) ** 2 for n, b in zip(sizes, per_batch)) / sum(sizes) for k in per_batch[0]}


def balanced_sample(data, num_classes: int, per_class: int | None = None):
    """First ``per_class`` (default total // K) samples of each class, in reading order."""
    if per_class is None:
        per_class = sum(len(y) for _, y in data) // num_classes
    kept = {c: [] for c in range(num_classes)}
    for x, y in data:
        for i in range(len(y)):
            c = int(y[i])
            if len(kept[c]) < per_class:
                kept[c].append(x[i])
    assert all(len(v) == per_class for v in kept.values())
    return {c: torch.stack(v) for c, v in kept.items()}


def hessian_gradient_fd(model: nn.Module, data, num_classes: int, temperature: float, per_class=None):
    """(1/K) Σ_c (∇L_c(θ + εḡ) − ∇L_c(θ − εḡ)) / 2ε over ALL parameters, ḡ = (1/K) Σ_c ∇L_c(θ).

    ‖εḡ‖ = 1e-6: larger steps cross ReLU kinks of the tiny ResNet (float64 keeps rounding ~1e-10)."""
    model = copy.deepcopy(model).eval()
    sample = balanced_sample(data, num_classes, per_class)
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def class_loss(p, c):
        x = sample[c]
        out = functional_call(model, (p, buffers), (x,))
        return F.cross_entropy(out / temperature, torch.full((len(x),), c))

    class_grad = grad(class_loss)
    g_bar = {k: sum(class_grad(params, c)[k] for c in sample) / num_classes for k in params}
    eps = 1e-6 / math.sqrt(sum(float((g**2).sum()) for g in g_bar.values()))
    hg = {k: torch.zeros_like(v) for k, v in params.items()}
    for c in sample:
        plus = class_grad({k: params[k] + eps * g_bar[k] for k in params}, c)
        minus = class_grad({k: params[k] - eps * g_bar[k] for k in params}, c)
        for k in hg:
            hg[k] += (plus[k] - minus[k]) / (2 * eps) / num_classes
    return hg


def rows(t: torch.Tensor) -> list[list[float]]:
    return [r.flatten().tolist() for r in t]


def filter_scores(measure: str, w: torch.Tensor, g: torch.Tensor | None = None, w0=None) -> torch.Tensor:
    """One score per filter, an explicit loop over the filter's elements (notes §2.2)."""
    out = []
    for j, wr in enumerate(rows(w)):
        gr = rows(g)[j] if g is not None else None
        if measure == "mag_based":
            s = math.sqrt(sum(a * a for a in wr))
        elif measure == "l1":
            s = sum(abs(a) for a in wr)
        elif measure == "loss_based":
            s = sum(abs(a * b) for a, b in zip(wr, gr))
        elif measure == "biased_loss" and w0 is None:
            s = sum(a * a * abs(b) for a, b in zip(wr, gr))
        elif measure == "biased_loss":
            s = sum(abs(a - c) * abs(a * b) for a, b, c in zip(wr, gr, rows(w0)[j]))
        elif measure in ("tfo", "grad_preserve"):
            s = abs(sum(a * b for a, b in zip(wr, gr)))
        elif measure == "fisher":
            s = sum(a * a * b for a, b in zip(wr, gr))
        elif measure == "grasp":
            s = sum(a * b for a, b in zip(wr, gr))
        else:
            raise AssertionError(measure)
        out.append(s)
    return torch.tensor(out, dtype=torch.float64)


def reference(model, measure, data, bn_of, temperature=5.0, grasp_temperature=200.0, num_classes=None, w0=None):
    """The notes' per-filter formulas with the references above, {conv name: float64 scores}."""
    params = dict(model.named_parameters())
    convs = conv_names(model)
    if measure in ("mag_based", "l1"):
        return {n: filter_scores(measure, params[f"{n}.weight"].detach()) for n in convs}
    if measure == "bn":
        return {n: torch.tensor([abs(v) for v in params[f"{bn_of(n)}.weight"].tolist()]) for n in convs}
    if measure in HESSIAN:
        t = 1.0 if measure == "grad_preserve" else grasp_temperature
        k = num_classes or model_classes(model)
        hg = hessian_gradient_fd(model, data, k, t)
        return {n: filter_scores(measure, params[f"{n}.weight"].detach(), hg[f"{n}.weight"]) for n in convs}
    per_batch = per_sample_grads(model, data, temperature)
    g = mean_squared_batch_grad(per_batch) if measure in ("fisher", "nvidia") else mean_grad(per_batch)
    if measure == "nvidia":
        out = {}
        for n in convs:
            gamma, beta = params[f"{bn_of(n)}.weight"].tolist(), params[f"{bn_of(n)}.bias"].tolist()
            g2g, g2b = g[f"{bn_of(n)}.weight"].tolist(), g[f"{bn_of(n)}.bias"].tolist()
            out[n] = torch.tensor([a * a * p + b * b * q for a, b, p, q in zip(gamma, beta, g2g, g2b)])
        return out
    init = (lambda n: w0[f"{n}.weight"]) if w0 is not None else (lambda n: None)
    return {n: filter_scores(measure, params[f"{n}.weight"].detach(), g[f"{n}.weight"], init(n)) for n in convs}


def model_classes(model: nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def assert_scores_close(got: dict, want: dict, rtol: float = 2e-5) -> None:
    assert list(got) == list(want)
    for name in want:
        g, w = got[name].double(), want[name].double()
        assert g.shape == w.shape, name
        scale = float(w.abs().max()) or 1.0
        torch.testing.assert_close(g, w, rtol=rtol, atol=rtol * scale, msg=lambda m, name=name: f"{name}: {m}")


# ------------------------------------------------------------------ formulas vs references
@pytest.mark.parametrize("measure", DATA_FREE + FIRST_ORDER + HESSIAN)
def test_tiny_net_matches_reference(measure):
    model, data = tiny(), tiny_data()
    got = importance(model, measure, data)
    assert_scores_close(got, reference(model, measure, data, TINY_BN.get))


@pytest.mark.parametrize("measure", ["loss_based", "fisher", "nvidia", "bn", "grasp", "grad_preserve"])
def test_resnet_with_projection_shortcuts_matches_reference(measure):
    model, data = resnet(), ten_class_data((3, 8, 8))
    got = importance(model, measure, data, temperature=3.0, grasp_temperature=20.0)
    want = reference(model, measure, data, resnet_bn, temperature=3.0, grasp_temperature=20.0)
    assert_scores_close(got, want)
    assert "layer2.0.shortcut.0" in got and "layer3.0.shortcut.0" in got


@pytest.mark.parametrize("measure", ["tfo", "biased_loss", "nvidia"])
def test_mobilenet_depthwise_convs_match_reference(measure):
    model, data = mobilenet(), ten_class_data((3, 8, 8))
    got = importance(model, measure, data)
    assert_scores_close(got, reference(model, measure, data, seq_bn(1)))
    depthwise = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 13 and all(n in got for n in depthwise)


@pytest.mark.parametrize("measure", ["bn", "nvidia", "loss_based"])
def test_vgg_conv_relu_bn_order_pairs_the_bn_after_the_relu(measure):
    model = vgg()
    data = ten_class_data((3, 32, 32), batches=2, size=6)
    got = importance(model, measure, data)
    assert len(got) == 10
    assert_scores_close(got, reference(model, measure, data, seq_bn(2)))


def test_hessian_gradient_matches_finite_differences_at_the_grasp_temperature():
    """Default grasp_T = 200: tiny values, still a match (float64 model, relative tolerance)."""
    model, data = tiny(), tiny_data()
    got = importance(model, "grasp", data)
    want = reference(model, "grasp", data, TINY_BN.get, grasp_temperature=200.0)
    assert_scores_close(got, want)


def test_temperature_divides_the_logits():
    model, data = tiny(), tiny_data()
    t5 = importance(model, "loss_based", data)
    t1 = importance(model, "loss_based", data, temperature=1.0)
    assert_scores_close(t1, reference(model, "loss_based", data, TINY_BN.get, temperature=1.0))
    assert not torch.allclose(t5["conv_a"], t1["conv_a"])


def test_grad_preserve_is_abs_grasp_at_temperature_one():
    model, data = tiny(), tiny_data()
    preserve = importance(model, "grad_preserve", data, grasp_temperature=200.0)
    grasp1 = importance(model, "grasp", data, grasp_temperature=1.0)
    for name in preserve:
        torch.testing.assert_close(preserve[name], grasp1[name].abs())


def test_loss_based_tfo_biased_loss_differ_where_the_notes_say():
    """abs inside the sum vs abs of the sum vs w² weighting: three different numbers."""
    model, data = tiny(), tiny_data()
    loss, tfo, biased = (importance(model, m, data)["conv_b"] for m in ("loss_based", "tfo", "biased_loss"))
    assert (loss >= tfo - 1e-7).all() and not torch.allclose(loss, tfo)
    assert not torch.allclose(loss, biased)


def test_fisher_is_a_mean_of_squared_minibatch_gradients():
    model, data = tiny(), tiny_data()
    got = importance(model, "fisher", data)["conv_a"].double()
    per_batch = per_sample_grads(model, data, 5.0)
    w = model.conv_a.weight.detach()
    of_mean = filter_scores("fisher", w, mean_grad(per_batch)["conv_a.weight"] ** 2)
    n = sum(len(y) for _, y in data)
    per_sample_sq = sum((b["conv_a.weight"] ** 2).sum(0) for b in per_batch) / n
    of_samples = filter_scores("fisher", w, per_sample_sq)
    expected = filter_scores("fisher", w, mean_squared_batch_grad(per_batch)["conv_a.weight"])
    torch.testing.assert_close(got, expected, rtol=2e-5, atol=0)
    assert not torch.allclose(got, of_mean, rtol=1e-2)
    assert not torch.allclose(got, of_samples, rtol=1e-2)
    # one minibatch: the mean of squares is the square of the mean
    one = importance(model, "fisher", data[:1])["conv_a"].double()
    single = filter_scores("fisher", w, mean_grad(per_sample_grads(model, data[:1], 5.0))["conv_a.weight"] ** 2)
    torch.testing.assert_close(one, single, rtol=2e-5, atol=0)


def test_all_of_data_is_used_and_generators_work():
    model = tiny()
    data = tiny_data(sizes=(1,) * 20)  # more minibatches than anything could silently cap at
    from_list = importance(model, "loss_based", data)
    from_gen = importance(model, "loss_based", (b for b in data))
    assert_scores_close(from_gen, from_list, rtol=1e-6)
    assert_scores_close(from_list, reference(model, "loss_based", data, TINY_BN.get))
    assert not torch.allclose(importance(model, "loss_based", data[:19])["conv_a"], from_list["conv_a"])


def test_use_init_and_use_l2():
    model, data = tiny(), tiny_data()
    torch.manual_seed(7)
    init = copy.deepcopy(Tiny()).double()
    w0 = {k: v.detach() for k, v in init.state_dict().items()}
    want = reference(model, "biased_loss", data, TINY_BN.get, w0=w0)
    assert_scores_close(importance(model, "biased_loss", data, use_init=init), want)
    assert_scores_close(importance(model, "biased_loss", data, use_init=w0), want)
    # use_l2: loss_based's |w_i ḡ_i| becomes Σ |w_i|·|w_i ḡ_i| (= biased_loss), or Σ |w_i − w⁰_i|·|w_i ḡ_i|
    assert_scores_close(importance(model, "loss_based", data, use_l2=True), importance(model, "biased_loss", data))
    assert_scores_close(importance(model, "loss_based", data, use_l2=True, use_init=w0), want)
    with pytest.raises(ValueError, match="use_l2"):
        importance(model, "fisher", data, use_l2=True)
    with pytest.raises(ValueError, match="use_init"):
        importance(model, "tfo", data, use_init=w0)
    bad = {**w0, "conv_b.weight": w0["conv_b.weight"][:3]}
    with pytest.raises(ValueError, match="conv_b.weight"):
        importance(model, "biased_loss", data, use_init=bad)


# ------------------------------------------------------------------ conventions
def test_signs_only_grasp_can_be_negative():
    model, data = tiny(), tiny_data()
    for measure in DATA_FREE + FIRST_ORDER + ("grad_preserve",):
        assert all((s >= 0).all() for s in importance(model, measure, data).values()), measure
    grasp = torch.cat(list(importance(model, "grasp", data).values()))
    assert (grasp < 0).any() and (grasp > 0).any()


def test_eval_mode_bn_and_mode_restored():
    model, data = tiny(), tiny_data()
    eval_scores = {m: importance(model, m, data) for m in FIRST_ORDER + HESSIAN}
    model.train()
    model.bn_a.eval()  # a mixed state must come back exactly
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    for measure, want in eval_scores.items():
        assert_scores_close(importance(model, measure, data), want, rtol=1e-6)
        assert model.training and model.bn_b.training and not model.bn_a.training
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k  # running statistics untouched
    # the check can fail: train-mode BN (batch statistics) gives other gradients
    loss = F.cross_entropy(model(data[0][0]) / 5.0, data[0][1])
    train_grad = torch.autograd.grad(loss, model.conv_a.weight)[0]
    eval_grad = per_sample_grads(model, data[:1], 5.0)[0]["conv_a.weight"].mean(0)
    assert not torch.allclose(train_grad, eval_grad, rtol=1e-3)


def test_works_under_no_grad():
    model, data = tiny(), tiny_data()
    want = {m: importance(model, m, data) for m in ("grasp", "fisher")}
    with torch.no_grad():
        for measure, scores in want.items():
            assert_scores_close(importance(model, measure, data), scores, rtol=1e-6)


def test_weights_and_grads_left_as_they_were():
    model, data = tiny(), tiny_data()
    model.conv_a.weight.grad = torch.randn_like(model.conv_a.weight)
    model.bn_b.bias.grad = torch.randn_like(model.bn_b.bias)
    grads = {k: (None if p.grad is None else p.grad.clone()) for k, p in model.named_parameters()}
    state = copy.deepcopy(model.state_dict())
    for measure in MEASURES[:-1]:
        importance(model, measure, data)
        for k, p in model.named_parameters():
            assert (p.grad is None) == (grads[k] is None), (measure, k)
            assert p.grad is None or torch.equal(p.grad, grads[k]), (measure, k)
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), (measure, k)


@pytest.mark.parametrize("build", [resnet, mobilenet], ids=["resnet20", "mobilenet"])
def test_all_eleven_measures_on_real_architectures(build):
    model = build(torch.float32)
    data = ten_class_data((3, 8, 8), dtype=torch.float32)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    tracker = ImportanceTracker(model)
    for measure in MEASURES:
        scores = importance(model, measure, data, tracker=tracker if measure == "biased_loss_tracked" else None)
        assert list(scores) == list(convs), measure  # model order, every conv
        for name, s in scores.items():
            assert s.shape == (convs[name].out_channels,) and s.dtype == torch.float32 and s.device.type == "cpu"
            assert torch.isfinite(s).all() and not s.requires_grad, (measure, name)


def test_keys_in_model_order_and_lengths():
    model = resnet()
    scores = importance(model, "l1", None)
    names = conv_names(model)
    assert list(scores) == names and names[0] == "conv1" and len(names) == 21
    assert names.index("layer2.0.shortcut.0") == names.index("layer2.0.conv2") + 1
    assert [len(scores[n]) for n in names] == [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]


# ------------------------------------------------------------------ class-balanced sample
def test_class_with_too_few_samples_is_a_clear_error():
    labels = torch.tensor([0] * 8 + [1] * 7 + [2] * 5)  # n = 20 // 3 = 6 > 5 samples of class 2
    data = tiny_data(labels=labels)
    with pytest.raises(ValueError, match=r"6 samples of each of the 3 classes.*\{2: 5\}"):
        importance(tiny(), "grasp", data)
    with pytest.raises(ValueError, match="class-balanced"):
        importance(tiny(), "grad_preserve", data)


def test_grasp_samples_reads_only_until_every_class_is_full():
    model = tiny()
    data = tiny_data(sizes=(4,) * 10, labels=torch.arange(40) % 3)
    read = []

    def stream():
        for i, batch in enumerate(data):
            read.append(i)
            yield batch

    got = importance(model, "grasp", stream(), grasp_samples=12, grasp_temperature=5.0)  # 4 per class
    assert read == [0, 1, 2]  # the first 12 samples hold 4 of each class: the rest is never read
    model_copy = copy.deepcopy(model)
    hg = hessian_gradient_fd(model_copy, data, 3, 5.0, per_class=4)
    params = dict(model.named_parameters())
    want = {n: filter_scores("grasp", params[f"{n}.weight"].detach(), hg[f"{n}.weight"]) for n in conv_names(model)}
    assert_scores_close(got, want)


# ------------------------------------------------------------------ errors
def test_unknown_measure_lists_the_eleven():
    with pytest.raises(ValueError) as err:
        importance(tiny(), "snip", tiny_data())
    assert all(m in str(err.value) for m in MEASURES) and len(MEASURES) == 11


@pytest.mark.parametrize("measure", ["bn", "nvidia"])
def test_conv_without_bn_is_named(measure):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2), nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(16, 3)
    )
    with pytest.raises(ValueError, match=re.escape("conv '2'")):
        importance(net, measure, tiny_data(dtype=torch.float32))
    assert importance(net, "loss_based", tiny_data(dtype=torch.float32))["2"].shape == (4,)


def test_measures_that_need_data_or_a_tracker():
    with pytest.raises(ValueError, match="needs data"):
        importance(tiny(), "tfo", None)
    with pytest.raises(ValueError, match="tracker"):
        importance(tiny(), "biased_loss_tracked", tiny_data())
    model = tiny()
    model.conv_b.weight.requires_grad_(False)
    with pytest.raises(ValueError, match="conv_b"):
        importance(model, "loss_based", tiny_data())
    with pytest.raises(ValueError, match="different model"):
        importance(model, "biased_loss_tracked", None, tracker=ImportanceTracker(tiny()))


# ------------------------------------------------------------------ tracker
def two_filter_conv() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))


def set_step(model: nn.Module, w: list[float], g: list[float]) -> None:
    conv = model[0]
    conv.weight.data = torch.tensor(w).reshape(2, 1, 1, 1)
    conv.weight.grad = torch.tensor(g).reshape(2, 1, 1, 1)


def test_tracker_ema_weighs_the_new_value_by_alpha():
    model = two_filter_conv()
    tracker = ImportanceTracker(model, alpha=0.8)
    assert torch.equal(tracker.scores()["0"], torch.zeros(2))
    set_step(model, [2.0, -1.0], [3.0, 0.5])  # w²|g| = [12, 0.5]
    tracker.update()
    torch.testing.assert_close(tracker.scores()["0"], torch.tensor([9.6, 0.4]))  # 0.8 * new + 0.2 * 0
    set_step(model, [1.0, 2.0], [-1.0, 1.0])  # w²|g| = [1, 4]
    tracker.update()
    torch.testing.assert_close(tracker.scores()["0"], torch.tensor([2.72, 3.28]))  # 0.8*[1,4] + 0.2*[9.6,0.4]
    assert torch.equal(importance(model, "biased_loss_tracked", None, tracker=tracker)["0"], tracker.scores()["0"])
    tracker.reset()
    assert torch.equal(tracker.scores()["0"], torch.zeros(2))


def test_tracker_use_init_and_errors():
    model = two_filter_conv()
    tracker = ImportanceTracker(model, alpha=0.5, use_init={"0.weight": torch.ones(2, 1, 1, 1)})
    set_step(model, [2.0, -1.0], [3.0, 0.5])  # |w − 1|·|w g| = [1·6, 2·0.5]
    tracker.update()
    torch.testing.assert_close(tracker.scores()["0"], torch.tensor([3.0, 0.5]))
    model[0].weight.grad = None
    with pytest.raises(ValueError, match="no .grad"):
        tracker.update()
    model[0] = nn.Conv2d(1, 3, 1, bias=False)  # "pruned" to another width without reset()
    model[0].weight.grad = torch.zeros_like(model[0].weight)
    with pytest.raises(ValueError, match="reset"):
        tracker.update()
    with pytest.raises(ValueError, match="alpha"):
        ImportanceTracker(model, alpha=0.0)


def test_tracker_uses_post_step_weights_and_the_step_gradient():
    model, data = tiny(), tiny_data()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    tracker = ImportanceTracker(model)
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    expected = {n: torch.zeros(m.out_channels, dtype=torch.float64) for n, m in convs.items()}
    for x, y in data:
        opt.zero_grad()
        F.cross_entropy(model(x) / 5.0, y).backward()
        opt.step()
        tracker.update()
        for n in expected:
            w = getattr(model, n).weight
            new = filter_scores("biased_loss", w.detach(), w.grad)  # Σ w²|g| with post-step w, step's g
            expected[n] = 0.8 * new + 0.2 * expected[n]
    assert_scores_close(tracker.scores(), expected)
