"""A small Vision Transformer for sklearn's 8x8 digits: the network that the transformer ops
of a program (constants, LayerNorm, softmax, products of activations, GELU) are tested and
measured on, written as Vision Transformer code usually is."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Attention", "Block", "TinyViT"]


class Attention(nn.Module):
    """Multi-head self-attention written out, as most Vision Transformer code does."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.out = nn.Linear(dim, dim)

    def forward(self, x):
        batch, tokens, dim = x.shape

        def split(y):
            return y.view(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        weights = torch.softmax(q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5, dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """A pre-norm transformer block: attention and a GELU MLP, each around a residual."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1, self.attention = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """A Vision Transformer for 8x8 digits: 2x2 patches embedded by a convolution, a class
    token, position embeddings, pre-norm blocks of multi-head attention and GELU MLPs, and a
    LayerNorm before the head."""

    def __init__(self, dim: int = 48, heads: int = 4, depth: int = 2):
        super().__init__()
        self.patches = nn.Conv2d(1, dim, 2, stride=2)
        self.token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1) + self.position
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))
