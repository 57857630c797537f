"""The METRO architecture presets (``--arch metro_tiny|metro_small|metro_base|metro_large``): sizes
only; each option not set on the command line or in the YAML takes the preset's value."""
from fairseq.models import register_model_architecture

from .metro import MetroModel  # noqa: F401  (registers the model the presets belong to)


def _set_defaults(args, **defaults):
    for key, value in defaults.items():
        setattr(args, key, getattr(args, key, value))


@register_model_architecture("metro", "metro_tiny")
def metro_tiny(args):
    _set_defaults(
        args, encoder_layers=3, encoder_embed_dim=64, encoder_ffn_embed_dim=256, encoder_attention_heads=4,
        generator_layers=1, relative_position_buckets=32, relative_position_max_distance=128, max_positions=512,
    )


@register_model_architecture("metro", "metro_small")
def metro_small(args):
    _set_defaults(
        args, encoder_layers=12, encoder_embed_dim=256, encoder_ffn_embed_dim=1024, encoder_attention_heads=4,
        relative_position_buckets=32, relative_position_max_distance=128,
    )


@register_model_architecture("metro", "metro_base")
def metro_base(args):
    _set_defaults(
        args, encoder_layers=12, encoder_embed_dim=768, encoder_ffn_embed_dim=3072, encoder_attention_heads=12,
        relative_position_buckets=64, relative_position_max_distance=128,
    )


@register_model_architecture("metro", "metro_large")
def metro_large(args):
    _set_defaults(
        args, encoder_layers=24, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096, encoder_attention_heads=16,
        relative_position_buckets=128, relative_position_max_distance=256,
        generator_layers=6,  # METRO/COCO-LM large use 6 (a quarter), not a third
    )
