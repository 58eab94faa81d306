"""Classification heads placed on a backbone's pooled features."""
from __future__ import annotations

from torch import nn

STUDY_HEAD_WIDTHS = (1024, 512, 256, 64)


def study_head(in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """The hemorrhoid study's head: dense 1024-512-256-64-n with ReLU."""
    layers: list[nn.Module] = []
    width = in_features
    for out in STUDY_HEAD_WIDTHS:
        layers += [nn.Linear(width, out), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = out
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def linear_head(in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    """A single linear layer, as torchvision's fine-tuning recipes use."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


def build_head(kind: str, in_features: int, num_classes: int, dropout: float = 0.0) -> nn.Sequential:
    builders = {"study": study_head, "linear": linear_head}
    if kind not in builders:
        raise ValueError(f"unknown head {kind!r}: use one of {', '.join(builders)}")
    return builders[kind](in_features, num_classes, dropout)
