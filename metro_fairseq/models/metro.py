"""The METRO pretraining model: an auxiliary generator corrupts the input, the main model
("discriminator") detects which tokens were replaced.

RTD label convention, used everywhere in this package: 1 = replaced, 0 = original. A generator
sample that equals the original token is labelled original.
"""
import dataclasses
import logging
import zlib
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture
from fairseq.models.roberta.model import RobertaClassificationHead

from ..modules import (
    CorrectiveLMHead,
    GeneratorHead,
    ReplacedTokenDetectionHead,
    SamplingTemperatureSchedule,
    SequenceEmbeddingHead,
    SpanHead,
    TokenEmbeddingSharing,
    TransformerEncoder,
    sample_replacements,
)
from ..modules.disentangled_attention import POS_ATT_TYPES
from ..modules.embedding_sharing import SHARING_MODES
from ..modules.encoder import ATTENTION_TYPES
from ..modules.temperature_schedule import ANNEAL_SHAPES

logger = logging.getLogger(__name__)


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
        metadata={"help": "generator depth; default a third of --encoder-layers (metro_large: 6 of 24)"},
    )
    generator_embed_dim: Optional[int] = field(
        default=None, metadata={"help": "generator width; default the main width (narrower: ELECTRA-style)"}
    )
    generator_ffn_embed_dim: Optional[int] = field(
        default=None, metadata={"help": "generator FFN width; default scales with the generator width"}
    )
    generator_attention_heads: Optional[int] = field(
        default=None, metadata={"help": "generator heads; default scales with the generator width"}
    )
    generator_dropout: float = field(default=0.0, metadata={"help": "dropout (all kinds) inside the generator"})
    allow_deep_generator: bool = field(
        default=False, metadata={"help": "permit a generator as deep as or deeper than the main model"}
    )
    embedding_sharing: ChoiceEnum(SHARING_MODES) = field(
        default="tied", metadata={"help": "token embeddings of generator and main model: tied, gdes (DeBERTaV3) or none"}
    )
    sampling_temperature: float = field(
        default=1.0,
        metadata={"help": "temperature of the generator softmax the replacements are sampled from (the final "
                  "value when --sampling-temperature-start is given)"},
    )
    sampling_temperature_start: Optional[float] = field(
        default=None,
        metadata={"help": "start temperature, annealed to --sampling-temperature (Fast-ELECTRA's descending "
                  "schedule); default: constant"},
    )
    sampling_temperature_anneal: ChoiceEnum(ANNEAL_SHAPES) = field(
        default="cosine", metadata={"help": "shape of the anneal from the start to the final temperature"}
    )
    sampling_temperature_anneal_updates: int = field(
        default=0, metadata={"help": "updates the anneal takes (0 with --sampling-temperature-release-bits: a step)"}
    )
    sampling_temperature_release_bits: Optional[float] = field(
        default=None,
        metadata={"help": "hold the start temperature until the generator's MLM loss (moving average) is this "
                  "many bits under the unigram entropy of the tokens it predicts, then anneal; default: "
                  "anneal from update 0"},
    )
    scale_residual_init: bool = field(
        default=False,
        metadata={"help": "scale residual output projections by 1/sqrt(2 * layers) at init (deep models)"},
    )
    checkpoint_activations: bool = field(
        default=False, metadata={"help": "recompute each layer's activations in backward to save memory"}
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
                  "optimizer with dynamic_groups (see config/pretraining/metro_cpu_small_genlr.yaml)"},
    )
    pooler_dropout: float = field(default=0.1, metadata={"help": "dropout in sentence classification heads"})
    pooler_activation_fn: str = field(default="tanh", metadata={"help": "activation of sentence classification heads"})


def config_from_checkpoint(model_cfg) -> MetroConfig:
    """A saved ``cfg.model`` as a MetroConfig: options added since the checkpoint was written take
    their defaults (which keep the old behaviour), keys this version does not know are dropped."""
    names = {f.name for f in dataclasses.fields(MetroConfig)}
    return MetroConfig(**{k: v for k, v in dict(model_cfg).items() if k in names})


def dictionary_fingerprint(dictionary) -> int:
    """A checksum of the symbol list, stored in checkpoints to catch a mismatched dictionary."""
    return zlib.crc32("\n".join(dictionary.symbols).encode("utf-8"))


def init_bert_weights(module: nn.Module):
    """BERT initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@register_model("metro", dataclass=MetroConfig)
class MetroModel(BaseFairseqModel):
    def __init__(self, cfg: MetroConfig, dictionary, with_generator: bool, clm: bool = False, scl_view: str = "none"):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = dictionary.pad()
        dim = cfg.encoder_embed_dim
        self.embeddings = TokenEmbeddingSharing(
            len(dictionary), dim, self.padding_idx, cfg.embedding_sharing, with_generator
        )
        self.encoder = self._build_encoder(
            dim, cfg.encoder_ffn_embed_dim, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.dropout,
            cfg.attention_dropout, cfg.activation_dropout,
        )
        self.rtd_head = None
        self.generator = None
        self.generator_head = None
        self.sampling_temperature = None
        self.clm_head = CorrectiveLMHead(len(dictionary)) if with_generator and clm else None
        self.scl_view = scl_view if with_generator else "none"
        self.scl_head = SequenceEmbeddingHead(dim) if self.scl_view != "none" else None
        if with_generator:
            self.rtd_head = ReplacedTokenDetectionHead(dim)
            gen_dim = cfg.generator_embed_dim or dim
            ratio = gen_dim / dim
            self.generator = self._build_encoder(
                gen_dim,
                cfg.generator_ffn_embed_dim or int(cfg.encoder_ffn_embed_dim * ratio),
                self.generator_depth(cfg),
                cfg.generator_attention_heads or max(1, int(cfg.encoder_attention_heads * ratio)),
                cfg.generator_dropout, cfg.generator_dropout, cfg.generator_dropout,
            )
            self.generator_head = GeneratorHead(gen_dim, dim, len(dictionary))
            self.sampling_temperature = SamplingTemperatureSchedule(
                cfg.sampling_temperature, cfg.sampling_temperature_start, cfg.sampling_temperature_anneal_updates,
                cfg.sampling_temperature_anneal, cfg.sampling_temperature_release_bits, len(dictionary),
            )
        self.classification_heads = nn.ModuleDict()
        self.span_heads = nn.ModuleDict()
        self.register_buffer(
            "dictionary_fingerprint", torch.tensor(dictionary_fingerprint(dictionary), dtype=torch.long)
        )
        self.apply(init_bert_weights)
        self.embeddings.reset_parameters()
        if cfg.scale_residual_init:
            self._scale_residual_projections()
        if cfg.layer_lr_decay != 1.0:
            self.apply_layer_lr_decay(cfg.layer_lr_decay)
        if cfg.generator_lr_scale != 1.0 and with_generator:
            self.apply_generator_lr_scale(cfg.generator_lr_scale)

    def _build_encoder(self, dim, ffn_dim, layers, heads, dropout, attention_dropout, activation_dropout):
        cfg = self.cfg
        return TransformerEncoder(
            input_dim=cfg.encoder_embed_dim,
            embed_dim=dim,
            ffn_dim=ffn_dim,
            num_layers=layers,
            num_heads=heads,
            max_positions=cfg.max_positions,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            normalize_before=cfg.encoder_normalize_before,
            relative_position_buckets=cfg.relative_position_buckets,
            relative_position_max_distance=cfg.relative_position_max_distance,
            checkpoint_activations=cfg.checkpoint_activations,
            attention_type=cfg.attention_type,
            position_buckets=cfg.position_buckets,
            max_relative_positions=cfg.max_relative_positions,
            pos_att_type=cfg.pos_att_type,
        )

    def _scale_residual_projections(self):
        for encoder in (self.encoder, self.generator):
            if encoder is None:
                continue
            scale = (2.0 * len(encoder.layers)) ** -0.5
            for layer in encoder.layers:
                for proj in layer.residual_projections():
                    proj.weight.data.mul_(scale)

    def layer_depth(self, name: str) -> int:
        """0 for the embeddings (and the relative bias or table every layer shares), i + 1 for main layer i,
        L + 1 for everything above the last layer (final norm, heads)."""
        if name.startswith(("embeddings.", "encoder.embed_", "encoder.relative_bias", "encoder.relative_embedding")):
            return 0
        if name.startswith("encoder.layers."):
            return int(name.split(".")[2]) + 1
        return len(self.encoder.layers) + 1

    def apply_layer_lr_decay(self, decay: float):
        """Tag every parameter with an lr scale for fairseq's composite optimizer
        (``optimizer._name=composite``, ``dynamic_groups=true``), which builds one group per scale."""
        top = len(self.encoder.layers) + 1
        for name, param in self.named_parameters():
            param.param_group = "default"
            param.optim_overrides = {"optimizer": {"lr_scale": decay ** (top - self.layer_depth(name))}}

    def apply_generator_lr_scale(self, scale: float):
        """Tag the generator-only parameters with an lr scale (and the rest with none) for fairseq's
        composite optimizer with ``dynamic_groups=true``: two groups, one schedule shape."""
        for name, param in self.named_parameters():
            param.param_group = "default"
            if name.startswith(("generator.", "generator_head.")):
                param.optim_overrides = {"optimizer": {"lr_scale": scale}}

    @staticmethod
    def generator_depth(cfg) -> int:
        return cfg.generator_layers if cfg.generator_layers is not None else max(1, cfg.encoder_layers // 3)

    @classmethod
    def build_model(cls, cfg: MetroConfig, task):
        with_generator = getattr(task, "trains_generator", False)
        if with_generator:
            depth = cls.generator_depth(cfg)
            if depth >= cfg.encoder_layers and not cfg.allow_deep_generator:
                raise ValueError(
                    f"--generator-layers {depth} is not shallower than --encoder-layers {cfg.encoder_layers}: "
                    "a deep generator makes the replaced-token task too hard; lower --generator-layers "
                    "or pass --allow-deep-generator"
                )
        mid = cfg.position_buckets // 2
        if cfg.attention_type == "disentangled" and cfg.max_relative_positions - 1 <= max(mid, 0):
            raise ValueError(
                f"--max-relative-positions {cfg.max_relative_positions} leaves no distance for the log buckets "
                f"above {mid} (half of --position-buckets {cfg.position_buckets}): raise it above {max(mid, 0) + 1}"
            )
        tokens_per_sample = getattr(getattr(task, "cfg", None), "tokens_per_sample", None)
        if tokens_per_sample is not None and tokens_per_sample > cfg.max_positions:
            raise ValueError(
                f"--tokens-per-sample {tokens_per_sample} exceeds --max-positions {cfg.max_positions}: "
                "lower --tokens-per-sample or raise --max-positions"
            )
        task_cfg = getattr(task, "cfg", None)
        return cls(
            cfg, task.source_dictionary, with_generator,
            clm=getattr(task_cfg, "clm", False), scl_view=getattr(task_cfg, "scl_view", "none"),
        )

    def max_positions(self):
        return self.cfg.max_positions

    def padding_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.eq(self.padding_idx)

    def encode(self, tokens: torch.Tensor, embedding_perturbation=None) -> torch.Tensor:
        """Main-model hidden states ``(B, T, C)`` for ``tokens``; ``embedding_perturbation`` maps the
        normalised input embeddings (``criterions/adversarial_sentence_prediction.py``)."""
        return self.encoder(self.embeddings.embed_main(tokens), self.padding_mask(tokens), embedding_perturbation)

    def forward(
        self,
        src_tokens: torch.Tensor,
        original_tokens: Optional[torch.Tensor] = None,
        masked_index: Optional[torch.Tensor] = None,
        crop_tokens: Optional[torch.Tensor] = None,
        features_only: bool = False,
        classification_head_name: Optional[str] = None,
        span_head_name: Optional[str] = None,
        embedding_perturbation=None,
        **kwargs,
    ):
        """Pretraining when ``masked_index`` is given, else the main model alone (fine-tuning).

        Pretraining: ``src_tokens`` is the generator input (``<mask>`` at the selected positions),
        ``original_tokens`` the uncorrupted sequence, ``masked_index`` the flat positions
        (into ``B * T``) the generator predicts and the sampler replaces, ``crop_tokens`` the
        second view for ``--scl-view crop``.
        """
        if masked_index is not None:
            return self.pretraining_forward(src_tokens, original_tokens, masked_index, crop_tokens)
        x = self.encode(src_tokens, embedding_perturbation)
        if classification_head_name is not None:
            x = self.classification_heads[classification_head_name](x)
        elif span_head_name is not None:
            x = self.span_heads[span_head_name](x)  # (B, T, 2): start and end logits
        return x, {}

    def pretraining_forward(self, generator_input, original_tokens, masked_index, crop_tokens=None):
        if self.generator is None:
            raise RuntimeError("this MetroModel was built without a generator (not for pretraining)")
        padding_mask = self.padding_mask(original_tokens)
        gen_hidden = self.generator(self.embeddings.embed_generator(generator_input), padding_mask)
        gen_hidden = gen_hidden.flatten(0, 1).index_select(0, masked_index)
        generator_logits = self.generator_head(gen_hidden, self.embeddings.generator_weight())
        generator_targets = original_tokens.flatten().index_select(0, masked_index)

        if self.training:
            self.sampling_temperature.observe(generator_logits, generator_targets)
        temperature = self.sampling_temperature.value()
        sampled = sample_replacements(generator_logits, temperature)
        main_input = original_tokens.flatten().index_copy(0, masked_index, sampled).view_as(original_tokens)
        main_hidden = self.encode(main_input)
        out = {
            "generator_logits": generator_logits,
            "generator_targets": generator_targets,
            "masked_index": masked_index,
            "main_input": main_input,
            "main_hidden": main_hidden,
            "rtd_logits": self.rtd_head(main_hidden),
            "rtd_labels": main_input.ne(original_tokens),
            "padding_mask": padding_mask,
            "sample_temp": temperature,
        }
        if self.clm_head is not None:
            masked_hidden = main_hidden.flatten(0, 1).index_select(0, masked_index)
            out["clm_logits"] = self.clm_head(masked_hidden, self.embeddings.main_weight())
        if self.scl_view == "crop":
            if crop_tokens is None:
                raise ValueError("--scl-view crop needs crop views in the batch (task metro_pretraining builds them)")
            views = (main_hidden[:, 0], self.encode(crop_tokens)[:, 0])
        elif self.scl_view == "dropout":
            # one pass over two copies: each copy gets its own dropout mask
            views = self.encode(torch.cat([original_tokens, original_tokens]))[:, 0].chunk(2)
        if self.scl_head is not None:
            out["scl_embeddings"] = self.scl_head(torch.cat(views))
        return out

    def register_classification_head(self, name, num_classes=None, inner_dim=None, **kwargs):
        if name in self.classification_heads:
            prev = self.classification_heads[name].out_proj.out_features
            if num_classes != prev:
                logger.warning(f"re-registering head {name!r} with num_classes {num_classes} (was {prev})")
        self.classification_heads[name] = RobertaClassificationHead(
            input_dim=self.cfg.encoder_embed_dim,
            inner_dim=inner_dim or self.cfg.encoder_embed_dim,
            num_classes=num_classes,
            activation_fn=self.cfg.pooler_activation_fn,
            pooler_dropout=self.cfg.pooler_dropout,
        )
        if self.cfg.layer_lr_decay != 1.0:
            self.apply_layer_lr_decay(self.cfg.layer_lr_decay)

    def register_span_head(self, name):
        """Start/end logits for extractive QA (task ``squad``), registered like a classification head."""
        self.span_heads[name] = SpanHead(self.cfg.encoder_embed_dim)
        if self.cfg.layer_lr_decay != 1.0:
            self.apply_layer_lr_decay(self.cfg.layer_lr_decay)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        # SystemExit, not an Exception: fairseq's trainer rewraps any Exception raised while
        # loading into a generic "architectures match" message that hides the cause
        saved = state_dict.get("dictionary_fingerprint")
        if saved is not None and int(saved) != int(self.dictionary_fingerprint):
            raise SystemExit(
                "metro_fairseq: error: the dictionary of this run does not match the one the checkpoint was "
                "trained with: use the checkpoint's dict.txt (fairseq-preprocess --srcdict) or a new --save-dir"
            )
        self.upgrade_state_dict(state_dict)
        problem = _architecture_mismatch(self.state_dict(), state_dict)
        if problem:
            raise SystemExit(
                f"metro_fairseq: error: {problem}: the checkpoint was trained with other architecture options; "
                "pass the ones `python scripts/export_main_model.py --show-args CHECKPOINT` prints"
            )
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name else ""
        if self.generator is None:
            # fine-tuning from a pretraining checkpoint: the main model alone, GDES merged
            strip_to_main_model(state_dict, prefix)
        # heads this run adds (a classification or span head for fine-tuning, a CLM or SCL head when a
        # later phase switches an objective on) keep their fresh initialisation
        new_heads = {f"classification_heads.{n}": h for n, h in self.classification_heads.items()}
        new_heads.update({f"span_heads.{n}": h for n, h in self.span_heads.items()})
        new_heads.update({n: getattr(self, n) for n in ("clm_head", "scl_head") if getattr(self, n) is not None})
        for head_name, head in new_heads.items():
            keys = {f"{prefix}{head_name}.{k}": v for k, v in head.state_dict().items()}
            if not any(k in state_dict for k in keys):
                logger.info(f"{head_name} is not in the checkpoint: starting it from its initialisation")
                state_dict.update(keys)
        super().upgrade_state_dict_named(state_dict, name)


PRETRAINING_ONLY = (
    "generator.", "generator_head.", "rtd_head.", "clm_head.", "scl_head.", "embeddings.generator_table",
    "sampling_temperature.",
)


def strip_to_main_model(state_dict: dict, prefix: str = "") -> dict:
    """Turn a pretraining state dict into the main model's, in place: the generator and the
    pretraining heads are dropped and GDES's ``E + E_delta`` becomes the one embedding table."""
    delta = state_dict.pop(prefix + "embeddings.delta", None)
    if delta is not None:
        state_dict[prefix + "embeddings.weight"] = state_dict[prefix + "embeddings.weight"] + delta
    for key in [k for k in state_dict if k.startswith(tuple(prefix + p for p in PRETRAINING_ONLY))]:
        del state_dict[key]
    return state_dict


def _architecture_mismatch(expected: dict, found: dict) -> Optional[str]:
    for key, value in found.items():
        if key in expected and expected[key].shape != value.shape:
            return f"{key} has shape {tuple(value.shape)} in the checkpoint but {tuple(expected[key].shape)} here"
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"the checkpoint has no {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        return f"this model has no {unexpected[0]}" + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
    return None


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
