import math

import pytest
import torch

from metro_fairseq.modules import RelativePositionBias, TransformerEncoder, relative_position_bucket


def naive_bucket(rel: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """T5's bucketing written out for one scalar."""
    bucket = 0
    n = -rel
    if bidirectional:
        num_buckets //= 2
        if n < 0:
            bucket += num_buckets
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return bucket + n
    large = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return bucket + min(large, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (64, 128), (128, 256), (8, 20)])
def test_bucket_matches_t5_formula(bidirectional, num_buckets, max_distance):
    rel = torch.arange(-400, 401)
    got = relative_position_bucket(rel, bidirectional, num_buckets, max_distance)
    want = [naive_bucket(int(r), bidirectional, num_buckets, max_distance) for r in rel]
    assert got.tolist() == want
    assert got.min() >= 0 and got.max() < num_buckets


def test_bucket_layout_bidirectional():
    b = relative_position_bucket(torch.tensor([0, -1, 1, -7, 7, -1000, 1000]), True, 32, 128)
    # keys before the query (negative offsets) use the lower half, after it the upper half
    assert b.tolist()[:5] == [0, 1, 17, 7, 23]
    assert b[5] == 15 and b[6] == 31


def test_bias_shape_and_values():
    bias = RelativePositionBias(num_heads=3, num_buckets=16, max_distance=32)
    out = bias(5)
    assert out.shape == (1, 3, 5, 5)
    pos = torch.arange(5)
    buckets = relative_position_bucket(pos[None, :] - pos[:, None], True, 16, 32)
    assert torch.equal(out[0, 1], bias.embedding.weight[buckets, 1])


def test_bias_computed_once_per_forward_and_shared_by_layers():
    enc = TransformerEncoder(16, 16, 32, num_layers=4, num_heads=2, max_positions=32, relative_position_buckets=8)
    calls = []
    enc.relative_bias.register_forward_hook(lambda *a: calls.append(1))
    seen = []
    for layer in enc.layers:
        layer.self_attn.register_forward_hook(lambda m, args, out: seen.append(args[1]))
    enc(torch.randn(2, 7, 16), torch.zeros(2, 7, dtype=torch.bool))
    assert len(calls) == 1
    assert all(b is seen[0] for b in seen) and len(seen) == 4


def test_bias_off():
    enc = TransformerEncoder(16, 16, 32, num_layers=1, num_heads=2, max_positions=32, relative_position_buckets=0)
    assert enc.relative_bias is None
    assert not any("relative" in n for n, _ in enc.named_parameters())
