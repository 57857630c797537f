"""Per-parameter learning-rate scales for fairseq's composite optimizer (``optimizer._name=composite``,
``dynamic_groups=true``), which builds one parameter group per distinct ``optim_overrides``."""
import torch.nn as nn

# shared by every main-model layer: they sit at depth 0 with the embeddings
_DEPTH_ZERO = ("embeddings.", "encoder.embed_", "encoder.relative_bias", "encoder.relative_embedding")
_GENERATOR = ("generator.", "generator_head.")


def layer_depth(name: str, num_layers: int) -> int:
    """0 for the embeddings (and the relative bias or table every layer shares), i + 1 for main layer i,
    L + 1 for everything above the last layer (final norm, heads)."""
    if name.startswith(_DEPTH_ZERO):
        return 0
    if name.startswith("encoder.layers."):
        return int(name.split(".")[2]) + 1
    return num_layers + 1


def apply_finetuning_lr_scales(model: nn.Module, num_layers: int, decay: float, relative_bias_scale: float) -> None:
    """ELECTRA's layer-wise decay for fine-tuning, depth d at lr * decay^(L + 1 - d), and the main model's
    T5 relative bias at ``relative_bias_scale`` times its own. Idempotent: called again whenever a head is added."""
    top = num_layers + 1
    for name, param in model.named_parameters():
        param.param_group = "default"
        scale = decay ** (top - layer_depth(name, num_layers))
        if name.startswith("encoder.relative_bias."):
            scale *= relative_bias_scale
        param.optim_overrides = {"optimizer": {"lr_scale": scale}}


def apply_generator_lr_scale(model: nn.Module, scale: float) -> None:
    """The generator's own layers and MLM head at lr * scale, everything else (the shared embeddings
    too) at lr: two groups, one schedule shape."""
    for name, param in model.named_parameters():
        param.param_group = "default"
        if name.startswith(_GENERATOR):
            param.optim_overrides = {"optimizer": {"lr_scale": scale}}
