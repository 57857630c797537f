"""The METRO pretraining model: an auxiliary generator corrupts the input, the main model
("discriminator") detects which tokens were replaced.

RTD label convention, used everywhere in this package: 1 = replaced, 0 = original. A generator
sample that equals the original token is labelled original.

Its options are in ``metro_config.py``, its presets in ``metro_architectures.py``, what a checkpoint
must satisfy to load in ``checkpoint_surgery.py``, and the lr scales in ``parameter_groups.py``.
"""
import logging
from typing import Optional

import torch
import torch.nn as nn
from fairseq.models import BaseFairseqModel, register_model
from fairseq.models.roberta.model import RobertaClassificationHead

from ..modules import (
    CorrectiveLMHead,
    GeneratorHead,
    ReplacedTokenDetectionHead,
    SamplingTemperatureSchedule,
    SequenceEmbeddingHead,
    SpanHead,
    TokenClassificationHead,
    TokenEmbeddingSharing,
    TransformerEncoder,
    classifier_input,
    sample_replacements,
)
from . import checkpoint_surgery, parameter_groups
from .metro_config import MetroConfig, check_config, generator_depth

logger = logging.getLogger(__name__)


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
                generator_depth(cfg),
                cfg.generator_attention_heads or max(1, int(cfg.encoder_attention_heads * ratio)),
                cfg.generator_dropout, cfg.generator_dropout, cfg.generator_dropout,
                project_after_norm=cfg.generator_project_after_norm,
            )
            self.generator_head = GeneratorHead(gen_dim, dim, len(dictionary), cfg.layer_norm_eps)
            self.sampling_temperature = SamplingTemperatureSchedule(
                cfg.sampling_temperature, cfg.sampling_temperature_start, cfg.sampling_temperature_anneal_updates,
                cfg.sampling_temperature_anneal, cfg.sampling_temperature_release_bits, len(dictionary),
            )
        self.classification_heads = nn.ModuleDict()
        self.span_heads = nn.ModuleDict()
        self.token_heads = nn.ModuleDict()
        self.register_buffer(
            "dictionary_fingerprint",
            torch.tensor(checkpoint_surgery.dictionary_fingerprint(dictionary), dtype=torch.long),
        )
        self.apply(init_bert_weights)
        self.embeddings.reset_parameters()
        if cfg.scale_residual_init:
            self._scale_residual_projections()
        self._tag_lr_scales()
        if cfg.generator_lr_scale != 1.0 and with_generator:
            parameter_groups.apply_generator_lr_scale(self, cfg.generator_lr_scale)

    def _build_encoder(self, dim, ffn_dim, layers, heads, dropout, attention_dropout, activation_dropout,
                       project_after_norm=False):
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
            layer_norm_eps=cfg.layer_norm_eps,
            project_after_norm=project_after_norm,
        )

    def _scale_residual_projections(self):
        for encoder in (self.encoder, self.generator):
            if encoder is None:
                continue
            scale = (2.0 * len(encoder.layers)) ** -0.5
            for layer in encoder.layers:
                for proj in layer.residual_projections():
                    proj.weight.data.mul_(scale)

    def _tag_lr_scales(self):
        """Fine-tuning's lr scales (layer-wise decay, the relative bias's), re-applied whenever a head is added."""
        if self.cfg.layer_lr_decay != 1.0 or self.cfg.relative_bias_lr_scale != 1.0:
            parameter_groups.apply_finetuning_lr_scales(
                self, len(self.encoder.layers), self.cfg.layer_lr_decay, self.cfg.relative_bias_lr_scale)

    @classmethod
    def build_model(cls, cfg: MetroConfig, task):
        with_generator = getattr(task, "trains_generator", False)
        task_cfg = getattr(task, "cfg", None)
        check_config(cfg, with_generator, getattr(task_cfg, "tokens_per_sample", None))
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
        token_head_name: Optional[str] = None,
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
            x = classifier_input(x, self.padding_mask(src_tokens), self.cfg.classifier_pooling)
            x = self.classification_heads[classification_head_name](x)
        elif span_head_name is not None:
            x = self.span_heads[span_head_name](x)  # (B, T, 2): start and end logits
        elif token_head_name is not None:
            x = self.token_heads[token_head_name](x)  # (B, T, labels)
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
        self._tag_lr_scales()

    def register_span_head(self, name):
        """Start/end logits for extractive QA (task ``squad``), registered like a classification head."""
        self.span_heads[name] = SpanHead(self.cfg.encoder_embed_dim)
        self._tag_lr_scales()

    def register_token_head(self, name, num_labels):
        """One label per token (task ``token_classification``), BERT's token classification head."""
        self.token_heads[name] = TokenClassificationHead(self.cfg.encoder_embed_dim, num_labels, self.cfg.pooler_dropout)
        self._tag_lr_scales()

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        checkpoint_surgery.check_dictionary_fingerprint(state_dict, self.dictionary_fingerprint)
        self.upgrade_state_dict(state_dict)
        checkpoint_surgery.check_architecture(self.state_dict(), state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg)

    def upgrade_state_dict_named(self, state_dict, name):
        prefix = name + "." if name else ""
        if self.generator is None:
            # fine-tuning from a pretraining checkpoint: the main model alone, GDES merged
            checkpoint_surgery.strip_to_main_model(state_dict, prefix)
        new_heads = {f"classification_heads.{n}": h for n, h in self.classification_heads.items()}
        new_heads.update({f"span_heads.{n}": h for n, h in self.span_heads.items()})
        new_heads.update({f"token_heads.{n}": h for n, h in self.token_heads.items()})
        new_heads.update({n: getattr(self, n) for n in ("clm_head", "scl_head") if getattr(self, n) is not None})
        if self.sampling_temperature is not None and not self.sampling_temperature.constant:
            new_heads["sampling_temperature"] = self.sampling_temperature  # a schedule switched on: it starts fresh
        elif self.sampling_temperature is not None:  # a constant temperature keeps no state: a schedule's is dropped
            checkpoint_surgery.drop_module(state_dict, prefix + "sampling_temperature.", logger.info)
        checkpoint_surgery.add_missing_heads(state_dict, prefix, new_heads, logger.info)
        super().upgrade_state_dict_named(state_dict, name)
