"""BatchNorm folding: every BatchNorm2d is merged into the convolution before it."""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_batchnorm"]


def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    folded = copy.deepcopy(conv)
    folded.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    folded.bias = nn.Parameter((bias - norm.running_mean) * scale + norm.bias)
    return folded


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each ``Conv2d -> BatchNorm2d`` pair of every
    ``nn.Sequential`` merged into one biased ``Conv2d``.

    Raises ``ValueError`` for a BatchNorm2d that does not follow a Conv2d.
    """
    model = copy.deepcopy(model).eval()
    for name, child in list(model.named_children()):
        setattr(model, name, fold_batchnorm(child))
    if isinstance(model, nn.Sequential):
        layers: list[nn.Module] = []
        for index, layer in enumerate(model):
            if isinstance(layer, nn.BatchNorm2d):
                if not layers or not isinstance(layers[-1], nn.Conv2d):
                    raise ValueError(f"BatchNorm2d at position {index} does not follow a Conv2d")
                layers[-1] = _fold_into(layers[-1], layer)
            else:
                layers.append(layer)
        model = nn.Sequential(*layers)
    return model
