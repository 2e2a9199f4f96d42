"""Procedurally generated image tasks with real structure, for offline transfer experiments.

``shapes``: eight geometric shapes (disc, ring, square, frame, triangle, cross, horizontal bar,
vertical bar) at random positions, sizes and intensities, drawn at 4x resolution and averaged down
(anti-aliased), with Gaussian noise. ``gratings``: sinusoidal gratings at six orientations with
random frequency and phase, under a soft random spot and noise. Both are grey images like
scikit-learn's digits (the default upstream data), so a digits network transfers to them, and both
are small: 20 training images per class by default, which is where a pretrained backbone pays off.

Everything is drawn from one generator seeded by the dataset's ``split_seed``: the same images on
every run. Train and test are drawn independently (``test_per_class`` images per class).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from ...config import DataHparams
from ..registry import DatasetInfo, SourceSplits, register_source

__all__ = ["SHAPES", "render_shapes", "render_gratings"]

SHAPES = ("disc", "ring", "square", "frame", "triangle", "cross", "hbar", "vbar")
_ORIENTATIONS = 6
_OVERSAMPLE = 4
TRAIN_PER_CLASS = 20
TEST_PER_CLASS = 60


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = size * _OVERSAMPLE
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1  # [-1, 1]
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    return x, y


def _shape(kind: str, x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, r: float) -> torch.Tensor:
    dx, dy = x - cx, y - cy
    d = torch.sqrt(dx**2 + dy**2)
    box = torch.maximum(dx.abs(), dy.abs())
    if kind == "disc":
        m = d <= r
    elif kind == "ring":
        m = (d <= r) & (d >= 0.55 * r)
    elif kind == "square":
        m = box <= 0.8 * r
    elif kind == "frame":
        m = (box <= 0.8 * r) & (box >= 0.45 * r)
    elif kind == "triangle":
        m = (dy <= 0.7 * r) & (2 * dx.abs() <= 0.8 * r - dy)  # apex up, base at dy = 0.7 r
    elif kind == "cross":
        m = ((dx.abs() <= 0.25 * r) & (dy.abs() <= r)) | ((dy.abs() <= 0.25 * r) & (dx.abs() <= r))
    elif kind == "hbar":
        m = (dy.abs() <= 0.25 * r) & (dx.abs() <= r)
    elif kind == "vbar":
        m = (dx.abs() <= 0.25 * r) & (dy.abs() <= r)
    else:
        raise ValueError(f"unknown shape {kind!r}")
    return m.float()


def _finish(hi: torch.Tensor, size: int, noise: float, g: torch.Generator) -> torch.Tensor:
    img = F.avg_pool2d(hi[None, None], _OVERSAMPLE)[0]  # anti-aliased down to size x size
    return (img + noise * torch.randn(img.shape, generator=g)).clamp(0.0, 1.0)


def render_shapes(
    per_class: int, size: int, generator: torch.Generator, noise: float = 0.08
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` images of every shape, (N, 1, size, size) in [0, 1], and their labels."""
    x, y = _grid(size)
    images, labels = [], []
    for label, kind in enumerate(SHAPES):
        for _ in range(per_class):
            r = 0.45 + 0.35 * float(torch.rand((), generator=generator))
            cx, cy = ((torch.rand(2, generator=generator) * 2 - 1) * (0.95 - r)).tolist()
            level = 0.6 + 0.4 * float(torch.rand((), generator=generator))
            images.append(_finish(level * _shape(kind, x, y, cx, cy, r), size, noise, generator))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def render_gratings(
    per_class: int, size: int, generator: torch.Generator, noise: float = 0.08
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gratings at ``_ORIENTATIONS`` orientations (the label), random frequency and phase."""
    x, y = _grid(size)
    images, labels = [], []
    for label in range(_ORIENTATIONS):
        theta = math.pi * label / _ORIENTATIONS
        for _ in range(per_class):
            freq = 1.5 + 1.5 * float(torch.rand((), generator=generator))
            phase = 2 * math.pi * float(torch.rand((), generator=generator))
            u = x * math.cos(theta) + y * math.sin(theta)
            wave = 0.5 + 0.5 * torch.sin(math.pi * freq * u + phase)
            sx, sy = (torch.rand(2, generator=generator) - 0.5).tolist()
            spot = torch.exp(-((x - sx) ** 2 + (y - sy) ** 2) / 1.2)
            images.append(_finish(wave * spot, size, noise, generator))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


@register_source("shapes")
@register_source("gratings")
def build_procedural(hp: DataHparams) -> SourceSplits:
    size = int(hp.image_size or 8)
    channels = int(hp.channels or 1)
    render = render_shapes if hp.source == "shapes" else render_gratings
    classes = len(SHAPES) if hp.source == "shapes" else _ORIENTATIONS
    g = torch.Generator().manual_seed(int(hp.split_seed))
    train_x, train_y = render(TRAIN_PER_CLASS, size, g)
    test_x, test_y = render(TEST_PER_CLASS, size, g)
    stats = torch.cat([train_x, test_x])
    mean, std = float(stats.mean()), float(stats.std())
    norm = lambda t: ((t - mean) / std).expand(-1, channels, -1, -1).contiguous()  # noqa: E731
    train = TensorDataset(norm(train_x), train_y)
    test = TensorDataset(norm(test_x), test_y)
    info = DatasetInfo(
        name=hp.source,
        num_classes=classes,
        input_shape=(channels, size, size),
        mean=(mean,) * channels,
        std=(std,) * channels,
    )
    return SourceSplits(info=info, train=train, train_eval=train, test=test)
