"""How close a compressed network is to its float original, on images without labels, by
what its output is (:data:`METRICS`)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["METRICS", "fidelity", "output_kind", "outputs"]

#: What an output is, and what says how close two of them are:
#: ``logits`` (a classifier's): top-1 and top-5 agreement and KL divergence;
#: ``probabilities`` (a softmax's or sigmoid's, in [0, 1]) and ``regression``: relative
#: error and cosine similarity; ``embedding``: cosine similarity.
METRICS = ("logits", "probabilities", "regression", "embedding")


@torch.no_grad()
def outputs(model: nn.Module, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``model``'s outputs on ``images``, ``batch`` at a time (a whole set of 224x224 images at
    once holds GBs of activations)."""
    return torch.cat(
        [model(images[start : start + batch]) for start in range(0, len(images), batch)]
    )


def output_kind(output: torch.Tensor) -> str:
    """The kind of output (of :data:`METRICS`) that a batch of float ``output`` looks like:
    probabilities when every value lies in [0, 1]; else logits when it is a score per class
    (``[N, C]``, ``C >= 2``), and regression when not. An embedding looks like logits or a
    regression: name it with ``metric``."""
    if output.min() >= 0 and output.max() <= 1:
        return "probabilities"
    return "logits" if output.dim() == 2 and output.shape[1] >= 2 else "regression"


@torch.no_grad()
def fidelity(
    reference: nn.Module,
    candidate: nn.Module,
    images: torch.Tensor,
    batch: int = 32,
    metric: str = "logits",
) -> dict[str, float]:
    """How close ``candidate``'s outputs are to ``reference``'s, by ``metric``: for logits,
    top-1 agreement (%), top-5 overlap (%) and mean KL(reference || candidate) in nats; else
    the relative error ``|c - r| / |r|`` over all outputs (not for an embedding) and the mean
    cosine similarity of each image's output."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} is not one of {METRICS}")
    if metric != "logits":
        r = outputs(reference.eval(), images, batch).flatten(1).double()
        c = outputs(candidate.eval(), images, batch).flatten(1).double()
        scores = {"cosine": float(torch.nn.functional.cosine_similarity(r, c, dim=1).mean())}
        if metric != "embedding":
            scores["relative_error"] = float((c - r).norm() / r.norm().clamp_min(1e-30))
        return scores
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
