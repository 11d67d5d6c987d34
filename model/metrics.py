"""How close a compressed network is to its float original, on images without labels."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fidelity", "outputs"]


@torch.no_grad()
def outputs(model: nn.Module, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``model``'s outputs on ``images``, ``batch`` at a time (a whole set of 224x224 images at
    once holds GBs of activations)."""
    return torch.cat(
        [model(images[start : start + batch]) for start in range(0, len(images), batch)]
    )


@torch.no_grad()
def fidelity(
    reference: nn.Module, candidate: nn.Module, images: torch.Tensor, batch: int = 32
) -> dict[str, float]:
    """Top-1 agreement (%), top-5 overlap (%) and mean KL(reference || candidate) in nats."""
    reference.eval()
    candidate.eval()
    agree = overlap = kl = 0.0
    for start in range(0, len(images), batch):
        x = images[start : start + batch]
        p, q = reference(x).log_softmax(dim=1), candidate(x).log_softmax(dim=1)
        agree += float((p.argmax(1) == q.argmax(1)).sum())
        top_p, top_q = p.topk(5, dim=1).indices, q.topk(5, dim=1).indices
        overlap += float((top_p[:, :, None] == top_q[:, None, :]).any(-1).float().mean(1).sum())
        kl += float((p.exp() * (p - q)).sum(dim=1).sum())
    count = len(images)
    return {
        "top1_agreement": 100 * agree / count,
        "top5_overlap": 100 * overlap / count,
        "kl": kl / count,
    }
