"""The papers' architectures, each starting with a :class:`Normalize` layer.

Inputs are pixels in [0, 1]; the model standardises them itself, so an attack's ε is a pixel
budget and gradients are taken with respect to the image a person would see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from lsnotes.checks import FLOAT32_MAX, choice, number_in, positive_int




class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean/std stored as buffers (saved in state_dict)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError(f"mean and std must have one entry per channel and std > 0; "
                             f"got mean={mean}, std={std}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _linear(in_features, num_classes, in_channels, image_size):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, num_classes))


def _mlp(in_features, num_classes, in_channels, image_size, hidden=256):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def _lenet(in_features, num_classes, in_channels, image_size):
    """LeNet as in PyTorch's MNIST example (conv20-pool-conv50-pool-fc500): our choice. Goibert &
    Dohmatob's text names "LeNet" without its layers; their repository's code (MGoibert/
    Label_smoothing, ``label_smoothing/lenet.py``) has smaller ones (conv10-conv20-fc50 on MNIST,
    conv6-conv16-fc120-fc84 on CIFAR-10; ``papers.paper("goibert2019")["repository"]``)."""
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"lenet needs image_size >= 16; got {image_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(50 * side * side, 500), nn.ReLU(), nn.Linear(500, num_classes))


def _cnn4(in_features, num_classes, in_channels, image_size):
    """Carlini & Wagner's (2017) MNIST network: conv32-conv32-pool-conv64-conv64-pool-fc200-fc200.

    Four convolutions, as in the "4-layer CNN" Fu et al. (2020) use on MNIST; they give no more
    detail, so this is our choice of such a network, not theirs.
    """
    side = ((image_size - 4) // 2 - 4) // 2
    if side < 1:
        raise ValueError(f"cnn4 needs image_size >= 16; got {image_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * side * side, 200), nn.ReLU(),
        nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, num_classes))


def _resnet18(in_features, num_classes, in_channels, image_size):
    """torchvision's ResNet-18 with the CIFAR stem: one 3×3 stride-1 conv and no max-pool."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class PreActBlock(nn.Module):
    """He et al. (2016b) pre-activation block: BN-ReLU-conv twice, identity (or 1×1) shortcut."""

    def __init__(self, in_planes, planes, stride=1, dropout=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        # The projection shortcut reads the activated input, as in the pre-activation paper.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


class PreActNet(nn.Module):
    """A stack of pre-activation stages: PreAct ResNet-18 and the Wide ResNets share this."""

    def __init__(self, in_channels, num_classes, stem_width, widths, blocks, strides):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False)
        layers, planes = [], stem_width
        for width, count, stride in zip(widths, blocks, strides):
            for i in range(count):
                layers.append(PreActBlock(planes, width, stride if i == 0 else 1))
                planes = width
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(planes)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x):
        out = torch.relu(self.bn(self.layers(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1))


def _preact_resnet18(in_features, num_classes, in_channels, image_size):
    return PreActNet(in_channels, num_classes, 64, (64, 128, 256, 512), (2, 2, 2, 2), (1, 2, 2, 2))


def wide_resnet(depth: int, widen: int, num_classes=10, in_channels=3) -> PreActNet:
    """WRN-depth-widen (Zagoruyko & Komodakis): three stages of (depth-4)/6 blocks."""
    if (depth - 4) % 6:
        raise ValueError(f"wide_resnet depth must be 6n+4; got {depth}")
    n = (depth - 4) // 6
    return PreActNet(in_channels, num_classes, 16, (16 * widen, 32 * widen, 64 * widen),
                     (n, n, n), (1, 2, 2))


@dataclass(frozen=True)
class ModelSpec:
    build: Callable[..., nn.Module]
    description: str


MODELS: dict[str, ModelSpec] = {
    "linear": ModelSpec(_linear, "multinomial logistic regression on the pixels"),
    "mlp": ModelSpec(_mlp, "two hidden layers of 256 ReLU units"),
    "lenet": ModelSpec(_lenet, "LeNet (conv20-conv50-fc500), our choice for Goibert & Dohmatob's unspecified LeNet"),
    "cnn4": ModelSpec(_cnn4, "four-conv CNN (32-32-64-64, fc200-fc200), Carlini & Wagner's MNIST network"),
    "resnet18": ModelSpec(_resnet18, "ResNet-18, CIFAR stem (11.2M parameters)"),
    "preact_resnet18": ModelSpec(_preact_resnet18, "pre-activation ResNet-18 (11.2M parameters)"),
    "wrn34_10": ModelSpec(lambda f, k, c, s: wide_resnet(34, 10, k, c),
                          "Wide ResNet-34-10 (46.2M parameters), Fu et al.'s CIFAR model"),
    "wrn_small": ModelSpec(lambda f, k, c, s: wide_resnet(16, 4, k, c),
                           "Wide ResNet-16-4 (2.7M parameters), a CPU-sized stand-in for WRN-34-10"),
}


def build_model(name: str, num_classes: int = 10, in_channels: int = 1, image_size: int = 28,
                mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> nn.Sequential:
    """``Normalize(mean, std)`` followed by the named network; mean/std default to 0 and 1."""
    choice("name", name, MODELS)
    num_classes = positive_int("num_classes", num_classes, minimum=2)
    in_channels = positive_int("in_channels", in_channels)
    image_size = positive_int("image_size", image_size, minimum=8)
    mean = tuple(mean) if mean is not None else (0.0,) * in_channels
    std = tuple(std) if std is not None else (1.0,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean and std need {in_channels} entries (one per channel); "
                         f"got {len(mean)} and {len(std)}")
    mean = tuple(number_in("mean", m, -FLOAT32_MAX, FLOAT32_MAX) for m in mean)
    std = tuple(number_in("std", s, 0.0, FLOAT32_MAX, low_open=True) for s in std)
    network = MODELS[name].build(in_channels * image_size * image_size, num_classes,
                                 in_channels, image_size)
    return nn.Sequential(Normalize(mean, std), network)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
