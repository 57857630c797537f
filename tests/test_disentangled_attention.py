"""--attention-type disentangled: DeBERTa's log buckets, exactness against transformers' DebertaV2Model
on a padded batch, and gradients through the relative embedding table all layers share."""
import importlib.util
import math

import pytest
import torch

from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig
from test_model import dictionary
from metro_fairseq.modules.log_buckets import log_bucket_position, relative_embedding_index


def naive_log_bucket(distance: int, buckets: int, max_position: int) -> int:
    """DeBERTa's definition, one distance at a time: exact up to half the buckets, then
    sign * (ceil(log(|d| / mid) / log((max_position - 1) / mid) * (mid - 1)) + mid)."""
    mid = buckets // 2
    if abs(distance) <= mid:
        return distance
    log_bucket = math.ceil(math.log(abs(distance) / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    return int(math.copysign(log_bucket, distance))


@pytest.mark.parametrize("buckets,max_position", [(256, 512), (64, 128), (32, 64), (16, 512)])
def test_log_buckets_follow_debertas_definition(buckets, max_position):
    rel = torch.arange(-2048, 2049)
    got = log_bucket_position(rel, buckets, max_position)
    assert got.tolist() == [naive_log_bucket(d, buckets, max_position) for d in rel.tolist()]
    # distances below max_position stay inside the table; and no bucket is farther out than its
    # distance, which RelativeEmbedding relies on to leave unread rows out
    inside = rel.abs() < max_position
    assert got[inside].abs().max() == buckets - 1
    assert (got.abs() <= rel.abs()).all()
    index = relative_embedding_index(40, buckets, max_position)
    assert index[0, 0] == buckets and index.min() >= 0 and index.max() < 2 * buckets


def disentangled_cfg(**kw):
    base = dict(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4,
                generator_layers=1, max_positions=64, dropout=0.0, attention_dropout=0.0,
                attention_type="disentangled", position_buckets=8, max_relative_positions=32)
    base.update(kw)
    return MetroConfig(**base)


def perturbed_model(cfg, d, generator=False):
    torch.manual_seed(0)
    model = MetroModel(cfg, d, generator)
    with torch.no_grad():  # every tensor away from its init: a misplaced LayerNorm cannot hide
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def padded_batch(d, lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), max(lengths)), d.pad(), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(d.nspecial, len(d), (n,), generator=g)
    return ids


@pytest.mark.parametrize(
    "options,lengths",
    [
        ({}, [40, 17, 5]),  # log buckets and distances beyond max_relative_positions (clamped)
        (dict(position_buckets=256, max_relative_positions=512), [24, 9]),  # v3's settings, rows left out
        (dict(pos_att_type="c2p"), [30, 12]),  # scale 1/sqrt(2 d)
        (dict(position_buckets=0, max_relative_positions=16), [40, 20]),  # raw distances (DeBERTa v1)
    ],
)
def test_hidden_states_equal_debertav2model_with_padding(options, lengths):
    if importlib.util.find_spec("transformers") is None:  # the [hf] extra
        pytest.skip("transformers is not installed")
    import transformers

    from metro_fairseq.hf.layouts import convert, hf_config

    cfg, d = disentangled_cfg(**options), dictionary(60)
    model = perturbed_model(cfg, d)
    config = hf_config(transformers, "deberta_v2", cfg, len(d), 2, 0.0)
    theirs = transformers.DebertaV2Model(config).eval()
    theirs.load_state_dict(convert("deberta_v2", model.state_dict(), cfg.encoder_layers, "base", {}), strict=True)
    ids = padded_batch(d, lengths)
    mask = ids.ne(d.pad())
    with torch.no_grad():
        ours = model.encode(ids)
        ref = theirs(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    assert (ours - ref)[mask].abs().max() <= 1e-4
    assert ours[mask].abs().mean() > 0.1  # a real comparison, not two zero tensors


def test_gradient_reaches_the_shared_relative_table_through_every_layer():
    d = dictionary(60)
    grads = {}
    for checkpoint in (False, True):
        model = perturbed_model(disentangled_cfg(checkpoint_activations=checkpoint), d).train()
        ids = padded_batch(d, [12, 7], seed=1)
        weights = torch.randn(12, 32, generator=torch.Generator().manual_seed(2))
        (model.encode(ids) * weights).sum().backward()
        table = model.encoder.relative_embedding
        grads[checkpoint] = [table.embedding.weight.grad.clone(), table.layer_norm.weight.grad.clone()]
    rows, norm = grads[False]
    # exactly the rows a length-12 batch reads get a gradient (log buckets: 8 of 16 here)
    read = set(relative_embedding_index(12, 8, 32).unique().tolist())
    reached = rows.abs().sum(dim=1) > 0
    assert reached.tolist() == [r in read for r in range(16)] and len(read) < 16
    assert norm.abs().sum() > 0
    # activation checkpointing routes the same gradient to the table the layers share
    for a, b in zip(grads[False], grads[True]):
        assert torch.allclose(a, b, atol=1e-6)
    # each layer contributes: with the table cut off from the first layer's graph the gradient changes
    class Detach(torch.nn.Module):
        def forward(self, table):
            return table.detach()

    model = perturbed_model(disentangled_cfg(), d).train()
    model.encoder.layers[0].self_attn.position_dropout = Detach()
    (model.encode(ids) * weights).sum().backward()
    assert not torch.allclose(model.encoder.relative_embedding.embedding.weight.grad, rows)


def test_disentangled_model_has_no_absolute_positions_and_default_is_unchanged():
    d = dictionary(60)
    keys = set(MetroModel(disentangled_cfg(), d, True).state_dict())
    assert not any("embed_positions" in k or "relative_bias" in k for k in keys)
    assert {"encoder.relative_embedding.embedding.weight", "generator.relative_embedding.layer_norm.bias"} <= keys
    assert MetroConfig().attention_type == "standard"
    default = set(MetroModel(MetroConfig(encoder_layers=2, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
                                         encoder_attention_heads=4), d, False).state_dict())
    assert "encoder.embed_positions.weight" in default and not any("relative_embedding" in k for k in default)


def test_fine_tuning_flags_of_a_disentangled_checkpoint_are_shell_safe():
    """metro-export --show-args output goes through $(...) and copy-paste alike."""
    import shlex

    from metro_fairseq.cli.export_main_model import fine_tuning_args

    cfg = disentangled_cfg()
    model_cfg = {"_name": "metro_base", **{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}}
    flags = fine_tuning_args(model_cfg)
    assert "--attention-type disentangled" in flags and "--pos-att-type c2p+p2c" in flags
    assert shlex.split(flags) == flags.split() and not set("|&;<>()$`") & set(flags)


def test_log_buckets_without_room_are_refused_with_the_fix():
    from types import SimpleNamespace

    task = SimpleNamespace(source_dictionary=dictionary(60))
    with pytest.raises(ValueError, match=r"--max-relative-positions 64 .* raise it above 129$"):
        MetroModel.build_model(disentangled_cfg(position_buckets=256, max_relative_positions=64), task)
    MetroModel.build_model(disentangled_cfg(position_buckets=256, max_relative_positions=512), task)
