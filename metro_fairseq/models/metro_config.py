"""The METRO model's options (``--arch metro`` and its presets), as fairseq reads them.

Options marked ``pretraining_only`` in their metadata shape only pretraining (the generator, the
sampling temperature, how the embeddings are shared, memory savings): fine-tuning the main model needs
none of them, so ``metro-export --show-args`` leaves them out.
"""
import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Tuple

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..errors import MetroError

from ..modules.disentangled_attention import POS_ATT_TYPES
from ..modules.embedding_sharing import SHARING_MODES
from ..modules.encoder import ATTENTION_TYPES
from ..modules.heads import CLASSIFIER_POOLING
from ..modules.temperature_schedule import ANNEAL_SHAPES


def pretraining_only(help: str) -> dict:
    """Field metadata of an option that shapes only pretraining (fine-tuning needs none of them)."""
    return {"pretraining_only": True, "help": help}


@dataclass
class MetroConfig(FairseqDataclass):
    encoder_layers: int = field(default=12, metadata={"help": "main-model Transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "main-model width (also the token embedding size)"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "main-model feed-forward width"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "main-model attention heads"})
    encoder_normalize_before: bool = field(
        default=False, metadata={"help": "Pre-LN blocks (more stable when deep) instead of BERT's Post-LN"}
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout of the main model"})
    attention_dropout: float = field(default=0.1, metadata={"help": "attention-probability dropout of the main model"})
    activation_dropout: float = field(default=0.0, metadata={"help": "dropout after the FFN activation"})
    layer_norm_eps: float = field(
        default=1e-5,
        metadata={"help": "epsilon of the encoders' LayerNorms (fairseq's 1e-5; BERT and ELECTRA checkpoints, "
                  "imported with metro-import-hf, use 1e-12, DeBERTa-v3 1e-7)"},
    )
    max_positions: int = field(
        default=512, metadata={"help": "longest input sequence (the learned absolute positions of standard attention)"}
    )
    attention_type: ChoiceEnum(ATTENTION_TYPES) = field(
        default="standard",
        metadata={"help": "standard: content attention, learned absolute positions and the optional shared T5 bias; "
                  "disentangled: DeBERTa-v2/v3's attention (content + c2p/p2c terms on one shared log-bucketed "
                  "relative embedding table, no absolute positions)"},
    )
    relative_position_buckets: int = field(
        default=64,
        metadata={"help": "T5 relative position buckets shared by all layers (standard attention; ignored by "
                  "disentangled); 0 turns the bias off"},
    )
    relative_position_max_distance: int = field(
        default=128, metadata={"help": "distance beyond which relative positions share the last T5 bucket"}
    )
    position_buckets: int = field(
        default=256,
        metadata={"help": "disentangled attention: log buckets per direction of the relative embedding table "
                  "(DeBERTa-v3: 256); 0: one row per distance up to --max-relative-positions (DeBERTa v1)"},
    )
    max_relative_positions: int = field(
        default=512, metadata={"help": "disentangled attention: distance the log buckets reach their last one at (v3: 512)"}
    )
    pos_att_type: ChoiceEnum(POS_ATT_TYPES) = field(
        default="c2p+p2c",
        metadata={"help": "disentangled attention's position terms: content-to-position and/or position-to-content"},
    )
    generator_layers: Optional[int] = field(
        default=None,
        metadata=pretraining_only("generator depth; default a third of --encoder-layers (metro_large: 6 of 24)"),
    )
    generator_embed_dim: Optional[int] = field(
        default=None, metadata=pretraining_only("generator width; default the main width (narrower: ELECTRA-style)")
    )
    generator_ffn_embed_dim: Optional[int] = field(
        default=None, metadata=pretraining_only("generator FFN width; default scales with the generator width")
    )
    generator_attention_heads: Optional[int] = field(
        default=None, metadata=pretraining_only("generator heads; default scales with the generator width")
    )
    generator_project_after_norm: bool = field(
        default=False,
        metadata=pretraining_only("a narrower generator adds its positions and normalises at the embeddings' width, "
                                  "then projects to its own (ELECTRA's layout; set by metro-import-hf --generator); "
                                  "default: it projects first"),
    )
    generator_dropout: float = field(default=0.0, metadata=pretraining_only("dropout (all kinds) inside the generator"))
    allow_deep_generator: bool = field(
        default=False, metadata=pretraining_only("permit a generator as deep as or deeper than the main model")
    )
    embedding_sharing: ChoiceEnum(SHARING_MODES) = field(
        default="tied",
        metadata=pretraining_only("token embeddings of generator and main model: tied, gdes (DeBERTaV3) or none")
    )
    sampling_temperature: float = field(
        default=1.0,
        metadata=pretraining_only("temperature of the generator softmax the replacements are sampled from (the final "
                  "value when --sampling-temperature-start is given)"),
    )
    sampling_temperature_start: Optional[float] = field(
        default=None,
        metadata=pretraining_only("start temperature, annealed to --sampling-temperature (Fast-ELECTRA's descending "
                  "schedule); default: constant"),
    )
    sampling_temperature_anneal: ChoiceEnum(ANNEAL_SHAPES) = field(
        default="cosine", metadata=pretraining_only("shape of the anneal from the start to the final temperature")
    )
    sampling_temperature_anneal_updates: int = field(
        default=0,
        metadata=pretraining_only("updates the anneal takes (0 with --sampling-temperature-release-bits: a step)")
    )
    sampling_temperature_release_bits: Optional[float] = field(
        default=None,
        metadata=pretraining_only("hold the start temperature until the generator's MLM loss (moving average) is this "
                  "many bits under the unigram entropy of the tokens it predicts, then anneal; default: "
                  "anneal from update 0"),
    )
    scale_residual_init: bool = field(
        default=False,
        metadata=pretraining_only("scale residual output projections by 1/sqrt(2 * layers) at init (deep models)"),
    )
    checkpoint_activations: bool = field(
        default=False, metadata=pretraining_only("recompute each layer's activations in backward to save memory")
    )
    layer_lr_decay: float = field(
        default=1.0,
        metadata={"help": "layer-wise learning-rate decay for fine-tuning (ELECTRA: 0.8 base, 0.9 large); "
                  "layer i of L gets lr * decay^(L + 1 - i), embeddings decay^(L + 1); 1.0 = off. Takes "
                  "effect through fairseq's composite optimizer (see config/finetuning)"},
    )
    generator_lr_scale: float = field(
        default=1.0,
        metadata={"help": "the generator's layers and MLM head train at lr * this scale (the token embeddings it "
                  "shares with the main model keep lr); 1.0 = off. Takes effect through fairseq's composite "
                  "optimizer with dynamic_groups (see config/pretraining/variants/metro_cpu_small_genlr.yaml)"},
    )
    relative_bias_lr_scale: float = field(
        default=1.0,
        metadata={"help": "the shared T5 relative position bias trains at lr * this scale (times the layer decay); "
                  "1.0 = off. A small table every layer reads: Adam moves each entry by about lr per step, so "
                  "fine-tuning barely changes it. Takes effect through fairseq's composite optimizer"},
    )
    classifier_pooling: ChoiceEnum(CLASSIFIER_POOLING) = field(
        default="first",
        metadata={"help": "what sentence classification heads read: the <s> state (first; BERT, RoBERTa) or the "
                  "mean of the non-padding states (mean)"},
    )
    pooler_dropout: float = field(default=0.1, metadata={"help": "dropout in sentence classification heads"})
    pooler_activation_fn: str = field(default="tanh", metadata={"help": "activation of sentence classification heads"})


def config_from_checkpoint(model_cfg) -> MetroConfig:
    """A saved ``cfg.model`` as a MetroConfig: options added since the checkpoint was written take
    their defaults (which keep the old behaviour), keys this version does not know are dropped."""
    names = {f.name for f in dataclasses.fields(MetroConfig)}
    return MetroConfig(**{k: v for k, v in dict(model_cfg).items() if k in names})


def pretraining_only_options() -> Tuple[str, ...]:
    """The options marked ``pretraining_only``, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(MetroConfig) if f.metadata.get("pretraining_only"))


class ConfigError(MetroError, ValueError):
    """Options that cannot build a model."""


def generator_depth(cfg) -> int:
    return cfg.generator_layers if cfg.generator_layers is not None else max(1, cfg.encoder_layers // 3)


def check_config(cfg: MetroConfig, with_generator: bool, tokens_per_sample: Optional[int] = None) -> None:
    """Refuse, before anything is built, options that would train a broken model."""
    if with_generator:
        depth = generator_depth(cfg)
        if depth >= cfg.encoder_layers and not cfg.allow_deep_generator:
            raise ConfigError(
                f"--generator-layers {depth} is not shallower than --encoder-layers {cfg.encoder_layers}: "
                "a deep generator makes the replaced-token task too hard; lower --generator-layers "
                "or pass --allow-deep-generator"
            )
    mid = cfg.position_buckets // 2
    if cfg.attention_type == "disentangled" and cfg.max_relative_positions - 1 <= max(mid, 0):
        raise ConfigError(
            f"--max-relative-positions {cfg.max_relative_positions} leaves no distance for the log buckets "
            f"above {mid} (half of --position-buckets {cfg.position_buckets}): raise it above {max(mid, 0) + 1}"
        )
    if tokens_per_sample is not None and tokens_per_sample > cfg.max_positions:
        raise ConfigError(
            f"--tokens-per-sample {tokens_per_sample} exceeds --max-positions {cfg.max_positions}: "
            "lower --tokens-per-sample or raise --max-positions"
        )
