import types

import pytest
import torch
import torch.nn.functional as F
from fairseq.data import Dictionary

import metro_fairseq.models.metro as metro_module
import metro_fairseq.models.metro_architectures as metro_architectures
from metro_fairseq.criterions.contrastive import info_nce_terms
from metro_fairseq.models.checkpoint_surgery import CheckpointMismatchError
from metro_fairseq.models.metro import MetroModel
from metro_fairseq.models.metro_config import MetroConfig, generator_depth


def dictionary(n=40):
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"w{i}")
    d.add_symbol("<mask>")
    return d


def tiny_cfg(**kw):
    base = dict(
        encoder_layers=3, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2,
        generator_layers=1, max_positions=32, relative_position_buckets=8, dropout=0.0, attention_dropout=0.0,
    )
    base.update(kw)
    return MetroConfig(**base)


def build(with_generator=True, clm=False, scl_view="none", **kw):
    torch.manual_seed(0)
    return MetroModel(tiny_cfg(**kw), dictionary(), with_generator, clm=clm, scl_view=scl_view)


def batch(d=None, seed=0):
    d = d or dictionary()
    g = torch.Generator().manual_seed(seed)
    original = torch.randint(d.nspecial, len(d) - 1, (2, 10), generator=g)
    original[:, 0] = d.bos()
    original[1, 7:] = d.pad()
    masked_index = torch.tensor([1, 2, 5, 11, 13])
    gen_input = original.clone().view(-1)
    gen_input[masked_index] = d.index("<mask>")
    return gen_input.view(2, 10), original, masked_index


def test_pretraining_forward_shapes_and_rtd_labels(monkeypatch):
    model = build()
    gen_input, original, masked_index = batch()
    flat = original.view(-1)
    # the "sample" keeps the original at flat position 5 (a correct guess): labelled original
    chosen = flat[masked_index].clone()
    chosen[[0, 1, 3, 4]] = (chosen[[0, 1, 3, 4]] - 4 + 1) % (len(dictionary()) - 5) + 4
    monkeypatch.setattr(metro_module, "sample_replacements", lambda logits, t: chosen)
    out = model(gen_input, original_tokens=original, masked_index=masked_index)
    assert out["generator_logits"].shape == (5, len(dictionary()))
    assert torch.equal(out["generator_targets"], flat[masked_index])
    assert out["rtd_logits"].shape == (2, 10)
    expected = torch.zeros(20, dtype=torch.bool)
    expected[masked_index[[0, 1, 3, 4]]] = True
    assert torch.equal(out["rtd_labels"].view(-1), expected)
    assert torch.equal(out["main_input"].view(-1)[masked_index], chosen)


def test_sampling_is_fp32_categorical_without_grad():
    torch.manual_seed(0)
    logits = torch.tensor([[0.0, 5.0, -5.0]] * 4000, requires_grad=True, dtype=torch.bfloat16)
    draws = metro_module.sample_replacements(logits, 1.0)
    assert not draws.requires_grad
    freq = torch.bincount(draws, minlength=3).float() / 4000
    ref = torch.softmax(torch.tensor([0.0, 5.0, -5.0]), -1)
    assert torch.allclose(freq, ref, atol=0.02)
    hot = torch.bincount(metro_module.sample_replacements(logits.float(), 100.0), minlength=3).float() / 4000
    assert hot.min() > 0.25  # high temperature flattens the distribution


def test_sampling_matches_softmax_frequencies_and_never_draws_zero_probability():
    torch.manual_seed(0)
    logits = torch.randn(1, 50) * 2
    logits[0, [0, 17, 49]] = float("-inf")  # first, middle and last entries impossible
    draws = metro_module.sample_replacements(logits.expand(200_000, 50), 1.0)
    freq = torch.bincount(draws, minlength=50).double() / draws.numel()
    ref = torch.softmax(logits[0].double(), -1)
    assert freq[[0, 17, 49]].sum() == 0
    # every entry within 5 standard errors of its probability
    assert ((freq - ref).abs() <= 5 * (ref * (1 - ref) / draws.numel()).sqrt() + 1e-12).all()


def grads_of(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {n: (p.grad is not None and p.grad.abs().sum().item() > 0) for n, p in model.named_parameters()}


def all_losses(model):
    gen_input, original, masked_index = batch()
    crop = original[:, [0, 2, 3, 4, 5]]
    out = model(gen_input, original_tokens=original, masked_index=masked_index, crop_tokens=crop)
    result = {
        "mlm": F.cross_entropy(out["generator_logits"], out["generator_targets"]),
        "rtd": F.binary_cross_entropy_with_logits(out["rtd_logits"], out["rtd_labels"].float()),
    }
    if "clm_logits" in out:
        result["clm"] = F.cross_entropy(out["clm_logits"], out["generator_targets"])
    if "scl_embeddings" in out:
        result["scl"] = info_nce_terms(out["scl_embeddings"], 0.5)["scl_loss"]
    return result


def losses(model):
    result = all_losses(model)
    return result["mlm"], result["rtd"]


def test_tied_sharing_both_losses_reach_shared_table():
    model = build(embedding_sharing="tied")
    mlm, rtd = losses(model)
    g_mlm, g_rtd = grads_of(model, mlm), grads_of(model, rtd)
    assert g_mlm["embeddings.weight"] and g_rtd["embeddings.weight"]
    assert not any(k.startswith("embeddings.") and k != "embeddings.weight" for k in g_mlm)


def test_gdes_rtd_moves_only_delta_and_mlm_only_generator_table():
    model = build(embedding_sharing="gdes")
    assert torch.count_nonzero(model.embeddings.delta) == 0
    mlm, rtd = losses(model)
    g_mlm, g_rtd = grads_of(model, mlm), grads_of(model, rtd)
    assert g_mlm["embeddings.weight"] and not g_mlm["embeddings.delta"]
    assert g_rtd["embeddings.delta"] and not g_rtd["embeddings.weight"]


def test_no_sharing_keeps_tables_apart():
    model = build(embedding_sharing="none")
    mlm, rtd = losses(model)
    g_mlm, g_rtd = grads_of(model, mlm), grads_of(model, rtd)
    assert g_mlm["embeddings.generator_table"] and not g_mlm["embeddings.weight"]
    assert g_rtd["embeddings.weight"] and not g_rtd["embeddings.generator_table"]


@pytest.mark.parametrize("scl_view", ["crop", "dropout"])
@pytest.mark.parametrize("sharing", ["tied", "gdes", "none"])
def test_main_model_losses_never_reach_generator(sharing, scl_view):
    model = build(embedding_sharing=sharing, clm=True, scl_view=scl_view)
    found = all_losses(model)
    assert set(found) == {"mlm", "rtd", "clm", "scl"}
    generator = [n for n, _ in model.named_parameters() if n.startswith(("generator.", "generator_head."))]
    for name in ("rtd", "clm", "scl"):
        g = grads_of(model, found[name])
        assert generator and not any(g[k] for k in generator), name
        assert g["encoder.layers.0.fc1.weight"], name
        # under gdes the main model's losses move only E_delta, never the generator's table
        if sharing == "gdes":
            assert g["embeddings.delta"] and not g["embeddings.weight"], name
        if sharing == "none":
            assert g["embeddings.weight"] and not g["embeddings.generator_table"], name
    assert grads_of(model, found["clm"])["clm_head.bias"]
    assert grads_of(model, found["scl"])["scl_head.dense.weight"]


def test_dropout_views_differ_only_by_dropout():
    model = build(scl_view="dropout", dropout=0.1, attention_dropout=0.1)
    gen_input, original, masked_index = batch()
    z = model(gen_input, original_tokens=original, masked_index=masked_index)["scl_embeddings"]
    assert z.shape == (4, 16) and not torch.allclose(z[:2], z[2:])
    model.eval()
    z = model(gen_input, original_tokens=original, masked_index=masked_index)["scl_embeddings"]
    assert torch.allclose(z[:2], z[2:], atol=1e-5)
    assert torch.allclose(z.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_generator_defaults_and_narrow_generator():
    assert generator_depth(MetroConfig(encoder_layers=12)) == 4
    for arch, depth in (("metro_base", 4), ("metro_large", 6)):
        args = types.SimpleNamespace()
        getattr(metro_architectures, arch)(args)
        assert generator_depth(MetroConfig(**vars(args))) == depth
    model = build(generator_embed_dim=8, generator_layers=2)
    assert model.generator.layers[0].fc1.in_features == 8
    assert model.generator.input_proj.in_features == 16
    mlm, rtd = losses(model)
    assert torch.isfinite(mlm + rtd)


def test_fine_tuning_path_and_classification_head():
    model = build(with_generator=False)
    assert model.generator is None and model.rtd_head is None
    model.register_classification_head("sentence_classification_head", num_classes=3)
    tokens = batch()[1]
    logits, _ = model(tokens, features_only=True, classification_head_name="sentence_classification_head")
    assert logits.shape == (2, 3)
    features, _ = model(tokens)
    assert features.shape == (2, 10, 16)


def naive_layer(layer, x, normalize_before):
    """BERT's Post-LN block, or the Pre-LN block, written out with per-head softmax attention."""
    def norm(ln, h):
        return F.layer_norm(h, h.shape[-1:], ln.weight, ln.bias, ln.eps)

    def attention(h):
        heads, (bsz, length, dim) = layer.self_attn.num_heads, h.shape
        q, k, v = (h @ layer.self_attn.in_proj.weight.T + layer.self_attn.in_proj.bias).chunk(3, dim=-1)
        out = torch.zeros_like(h)
        size = dim // heads
        for i in range(heads):
            cols = slice(i * size, (i + 1) * size)
            weights = torch.softmax(q[..., cols] @ k[..., cols].transpose(1, 2) / size ** 0.5, dim=-1)
            out[..., cols] = weights @ v[..., cols]
        return out @ layer.self_attn.out_proj.weight.T + layer.self_attn.out_proj.bias

    def ffn(h):
        return F.gelu(h @ layer.fc1.weight.T + layer.fc1.bias) @ layer.fc2.weight.T + layer.fc2.bias

    if normalize_before:
        x = x + attention(norm(layer.self_attn_layer_norm, x))
        return x + ffn(norm(layer.final_layer_norm, x))
    x = norm(layer.self_attn_layer_norm, x + attention(x))
    return norm(layer.final_layer_norm, x + ffn(x))


@pytest.mark.parametrize("normalize_before", [False, True])
def test_post_ln_and_pre_ln_layers_match_a_naive_reference(normalize_before):
    model = build(encoder_normalize_before=normalize_before, relative_position_buckets=0).eval()
    x = torch.randn(2, 7, 16)
    for layer in model.encoder.layers:
        with torch.no_grad():
            layer.self_attn_layer_norm.weight.uniform_(0.5, 1.5), layer.final_layer_norm.bias.normal_()
        assert torch.allclose(layer(x, None), naive_layer(layer, x, normalize_before), atol=1e-5)
    # Pre-LN's residual stream is never normalised inside a block: the encoder ends with a final norm
    assert (model.encoder.final_layer_norm is not None) == normalize_before


def test_bert_init():
    model = build()
    w = model.encoder.layers[0].fc1.weight
    assert abs(w.std().item() - 0.02) < 0.003 and model.encoder.layers[0].fc1.bias.abs().sum() == 0
    assert model.embeddings.weight[model.padding_idx].abs().sum() == 0


def test_scaled_residual_init():
    plain, scaled = build(), build(scale_residual_init=True)
    ratio = scaled.encoder.layers[0].fc2.weight.std() / plain.encoder.layers[0].fc2.weight.std()
    assert abs(ratio.item() - (2 * 3) ** -0.5) < 0.01


def fake_task(tokens_per_sample=16):
    return types.SimpleNamespace(
        trains_generator=True, source_dictionary=dictionary(), cfg=types.SimpleNamespace(tokens_per_sample=tokens_per_sample)
    )


def test_deep_generator_needs_explicit_permission():
    with pytest.raises(ValueError, match="allow-deep-generator"):
        MetroModel.build_model(tiny_cfg(generator_layers=3), fake_task())
    assert MetroModel.build_model(tiny_cfg(generator_layers=3, allow_deep_generator=True), fake_task())


def test_tokens_per_sample_above_max_positions():
    with pytest.raises(ValueError, match="tokens-per-sample 64 exceeds --max-positions 32"):
        MetroModel.build_model(tiny_cfg(), fake_task(64))


def test_dictionary_mismatch_is_refused():
    model = build()
    state = model.state_dict()
    d2 = Dictionary()
    for i in range(40):
        d2.add_symbol(f"x{i}")
    d2.add_symbol("<mask>")
    other = MetroModel(tiny_cfg(), d2, True)
    with pytest.raises(CheckpointMismatchError, match="dictionary"):
        other.load_state_dict(state)
    build().load_state_dict(state)  # same dictionary loads


@pytest.mark.parametrize("sharing", ["tied", "gdes", "none"])
def test_main_model_alone_loads_pretraining_weights(sharing):
    """Fine-tuning builds no generator: its weights are dropped and GDES's E + E_delta merged."""
    pretrained = build(embedding_sharing=sharing, clm=True, scl_view="crop")
    if sharing == "gdes":
        with torch.no_grad():
            pretrained.embeddings.delta.normal_()
    state = pretrained.state_dict()
    merged = state["embeddings.weight"] + state.get("embeddings.delta", 0)
    main_only = build(with_generator=False, embedding_sharing=sharing)
    main_only.register_classification_head("head", num_classes=2)
    main_only.load_state_dict(state)
    assert not any(n.startswith(("generator", "clm_head", "scl_head", "rtd_head")) for n in main_only.state_dict())
    assert set(main_only.state_dict()) >= {"embeddings.weight", "classification_heads.head.out_proj.weight"}
    pretrained.eval(), main_only.eval()
    tokens = batch()[1]
    assert torch.allclose(main_only(tokens)[0], pretrained(tokens)[0], atol=1e-6)
    assert torch.allclose(main_only.embeddings.weight, merged)
    if sharing == "gdes":
        assert not torch.allclose(merged, pretrained.embeddings.weight)


def test_activation_checkpointing_gives_same_gradients():
    plain, ckpt = build(), build(checkpoint_activations=True)
    assert all(hasattr(layer, "precheckpoint_forward") for layer in ckpt.encoder.layers)
    assert not any(hasattr(layer, "precheckpoint_forward") for layer in plain.encoder.layers)
    grads = []
    for model in (plain, ckpt):
        torch.manual_seed(1)
        mlm, rtd = losses(model)
        model.zero_grad()
        (mlm + 50 * rtd).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert "encoder.layers.0.fc1.weight" in grads[1] and set(grads[0]) == set(grads[1])
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-6), name
