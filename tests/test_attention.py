import math

import pytest
import torch

from metro_fairseq.modules import SelfAttention, TransformerEncoder


def naive_attention(attn: SelfAttention, x, bias):
    """Per-head, per-query softmax attention written out with plain tensor ops."""
    bsz, T, C = x.shape
    H, D = attn.num_heads, attn.head_dim
    q, k, v = attn.in_proj(x).split(C, dim=-1)
    out = torch.zeros(bsz, T, C)
    for b in range(bsz):
        for h in range(H):
            sl = slice(h * D, (h + 1) * D)
            scores = q[b, :, sl] @ k[b, :, sl].T / math.sqrt(D) + bias[b if bias.size(0) > 1 else 0, h if bias.size(1) > 1 else 0]
            out[b, :, sl] = torch.softmax(scores, dim=-1) @ v[b, :, sl]
    return attn.out_proj(out)


def test_sdpa_matches_naive_softmax_with_bias_and_padding():
    torch.manual_seed(0)
    attn = SelfAttention(12, 3).eval()
    x = torch.randn(2, 5, 12)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    enc = TransformerEncoder(12, 12, 24, 1, 3, 16, relative_position_buckets=8)
    with torch.no_grad():
        enc.relative_bias.embedding.weight.normal_()
    bias = enc.attention_bias(padding, torch.float32)
    assert bias.shape == (2, 3, 5, 5)
    got = attn(x, bias)
    want = naive_attention(attn, x, bias)
    assert torch.allclose(got, want, atol=1e-5)
    # padded keys get no weight: changing the padded inputs does not change the real outputs
    x2 = x.clone()
    x2[1, 3:] = 100.0
    assert torch.allclose(attn(x2, bias)[1, :3], got[1, :3], atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_padding_fill_is_dtype_aware(dtype):
    enc = TransformerEncoder(8, 8, 16, 1, 2, 16, relative_position_buckets=8)
    bias = enc.attention_bias(torch.tensor([[False, True]]), dtype)
    assert bias.dtype == dtype
    assert torch.isfinite(bias).all()
    assert bias[0, 0, 0, 1] < -1e3
