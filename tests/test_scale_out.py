"""FSDP wrapping plan (checked on CPU with a recording wrapper) and apex fused-kernel pick-up."""
import fairseq.modules.layer_norm as fairseq_layer_norm
import pytest
import torch
import torch.nn as nn
from fairscale.nn.wrap import enable_wrap, wrap

from metro_fairseq.modules.transformer_layer import TransformerEncoderLayer
from test_model import build, losses


class Unit(nn.Module):
    """Stands in for FullyShardedDataParallel: records which modules become their own unit."""

    def __init__(self, module, **kwargs):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


def units_of_parameters(root: nn.Module):
    """For every parameter (shared ones listed once per use), the innermost unit that owns it."""
    unit_paths = [name for name, m in root.named_modules() if isinstance(m, Unit)]
    owners = {}
    for name, param in root.named_parameters(remove_duplicate=False):
        owner = max((u for u in unit_paths if name.startswith(u + ".") or u == ""), key=len)
        owners.setdefault(id(param), set()).add(owner)
    return unit_paths, owners, dict(root.named_parameters())


@pytest.mark.parametrize(
    "sharing,attention", [("tied", "standard"), ("gdes", "standard"), ("none", "standard"), ("gdes", "disentangled")]
)
@pytest.mark.parametrize("checkpoint_activations", [False, True])
def test_fsdp_wraps_each_layer_and_keeps_shared_embeddings_in_root_unit(sharing, attention, checkpoint_activations):
    # fairseq_cli.train builds the model inside fsdp_enable_wrap, then wraps the whole model
    with enable_wrap(wrapper_cls=Unit):
        model = build(embedding_sharing=sharing, clm=True, checkpoint_activations=checkpoint_activations,
                      attention_type=attention)
        root = wrap(model)
    unit_paths, owners, params = units_of_parameters(root)
    expected_layers = {f"module.encoder.layers.{i}" for i in range(3)} | {"module.generator.layers.0"}
    assert set(unit_paths) == {""} | expected_layers
    for path in expected_layers:
        inner = root.get_submodule(path).module
        assert isinstance(inner, TransformerEncoderLayer)
        assert hasattr(inner, "precheckpoint_forward") == checkpoint_activations  # checkpointing inside the unit
    # no parameter (tied ones included) is split across units
    assert all(len(units) == 1 for units in owners.values())
    root_params = {n for n, p in params.items() if owners[id(p)] == {""}}
    shared = {"module.embeddings.weight"} | ({"module.embeddings.delta"} if sharing == "gdes" else set())
    if attention == "disentangled":  # the relative table every layer reads
        shared |= {"module.encoder.relative_embedding.embedding.weight", "module.generator.relative_embedding.layer_norm.bias"}
    assert shared <= root_params
    assert {"module.generator_head.bias", "module.rtd_head.out_proj.weight"} <= root_params
    # the wrapped model still trains
    mlm, rtd = losses(model)
    (mlm + 50 * rtd).backward()
    assert model.embeddings.weight.grad is not None and torch.isfinite(model.embeddings.weight.grad).all()
    if attention == "disentangled":
        assert model.encoder.relative_embedding.embedding.weight.grad.abs().sum() > 0


def test_layer_norms_use_apex_fused_kernel_when_fairseq_finds_it(monkeypatch):
    class FusedLayerNorm(nn.LayerNorm):
        pass

    monkeypatch.setattr(fairseq_layer_norm, "has_fused_layernorm", True)
    monkeypatch.setattr(fairseq_layer_norm, "FusedLayerNorm", FusedLayerNorm, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = build(clm=True, scl_view="dropout")
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) > 10 and all(isinstance(m, FusedLayerNorm) for m in norms)
