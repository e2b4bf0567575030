"""Self-attention (:class:`diffcore.nn.SelfAttention`) computes softmax(Q K^T / sqrt(d)) V
(Vaswani et al. 2017, eq. 1) and hands SDPA q, k, v in the layout its fused CPU kernel takes:
a transposed view sends it to the slow math kernel (benchmarks/attention_kernel.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from diffcore.nn import SelfAttention

FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH = "aten::_scaled_dot_product_attention_math"


def _attention(dims: int, channels: int = 32, heads: int = 4) -> SelfAttention:
    torch.manual_seed(0)
    attn = SelfAttention(channels, heads, dims=dims)
    torch.nn.init.normal_(attn.proj.weight, std=0.2)  # zero at init: the residual alone would hide the attention
    return attn


def _reference(attn: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """x + proj(softmax(Q K^T / sqrt(d)) V), per head, in float64 from the module's weights."""
    b, c = x.shape[:2]
    heads, d = attn.heads, c // attn.heads
    qkv = attn.qkv(attn.norm(x)).double().reshape(b, 3, heads, d, -1)
    q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))  # [B, heads, N, d]
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(-1, -2).reshape(b, c, *x.shape[2:]).float()
    return x + attn.proj(out)


def _ops(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("dims, shape", [(2, (3, 32, 8, 8)), (1, (2, 32, 24))])
def test_self_attention_is_scaled_dot_product_attention(dims, shape):
    attn = _attention(dims)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(attn(x), _reference(attn, x), rtol=0, atol=1e-5)


def test_self_attention_runs_the_fused_cpu_kernel():
    attn = _attention(2)
    x = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(1))

    with torch.no_grad():
        inference = _ops(lambda: attn(x))
    assert FLASH in inference and MATH not in inference, sorted(n for n in inference if "attention" in n)

    training = _ops(lambda: attn(x).square().sum().backward())
    assert FLASH + "_backward" in training and MATH not in training, sorted(n for n in training if "attention" in n)
