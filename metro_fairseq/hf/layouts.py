"""Which transformers class computes our main model exactly, and the weights under its names.

- Post-LN, no relative bias: BERT (positions from 0, one zero token-type row).
- Post-LN, T5 bias at exactly 32 buckets / distance 128: MPNet (it hard-codes both; at any other
  setting it runs without error and gives wrong outputs, so it is never chosen there).
- Pre-LN, no bias: RoBERTa-PreLayerNorm.
- Post-LN, disentangled attention: DeBERTa-v2 (v3's settings: share_att_key, no absolute positions,
  LayerNorm-ed relative table; any classifier activation, its pooler takes a named one).
- Everything else: ``modeling_metro.py``, shipped with the export (``trust_remote_code=True``).
MPNet and RoBERTa count positions from ``padding_idx + 1 = 2``: two zero rows go in front of the table.
"""
from dataclasses import dataclass

import torch

HEAD_KINDS = ("base", "classification", "qa")


@dataclass(frozen=True)
class Family:
    name: str
    prefix: str  # base_model_prefix of the head classes
    classes: tuple  # class names for HEAD_KINDS
    position_offset: int
    pooler: bool  # the base class has a pooler (BERT's is the classification head's dense)


FAMILIES = {
    "bert": Family("bert", "bert", ("BertModel", "BertForSequenceClassification", "BertForQuestionAnswering"), 0, True),
    "mpnet": Family("mpnet", "mpnet", ("MPNetModel", "MPNetForSequenceClassification", "MPNetForQuestionAnswering"), 2, True),
    "roberta_prelayernorm": Family(
        "roberta_prelayernorm", "roberta_prelayernorm",
        ("RobertaPreLayerNormModel", "RobertaPreLayerNormForSequenceClassification",
         "RobertaPreLayerNormForQuestionAnswering"), 2, True,
    ),
    "deberta_v2": Family(
        "deberta_v2", "deberta",
        ("DebertaV2Model", "DebertaV2ForSequenceClassification", "DebertaV2ForQuestionAnswering"), 0, False,
    ),
    "metro": Family(
        "metro", "metro",
        ("MetroEncoderModel", "MetroEncoderForSequenceClassification", "MetroEncoderForQuestionAnswering"), 0, False,
    ),
}
MPNET_BUCKETS, MPNET_MAX_DISTANCE = 32, 128  # hard-coded in transformers' MPNet


def choose_family(cfg, classifier_activation: str = "tanh") -> tuple:
    """(family name, why) for a MetroConfig-like ``cfg``."""
    buckets, distance = cfg.relative_position_buckets, cfg.relative_position_max_distance
    if str(getattr(cfg, "attention_type", "standard")) == "disentangled":
        if not cfg.encoder_normalize_before:
            return "deberta_v2", "Post-LN disentangled attention is exactly DeBERTa-v2 with v3's settings"
        return "metro", (
            "DeBERTa-v2 is Post-LN only: shipping modeling_metro.py for Pre-LN disentangled attention, "
            "load with trust_remote_code=True"
        )
    if classifier_activation != "tanh":
        return "metro", f"the classification head uses {classifier_activation}; stock heads use tanh"
    if not cfg.encoder_normalize_before and buckets == 0:
        return "bert", "Post-LN without relative position bias is exactly BERT"
    if not cfg.encoder_normalize_before and (buckets, distance) == (MPNET_BUCKETS, MPNET_MAX_DISTANCE):
        return "mpnet", "Post-LN with the shared T5 bias at 32 buckets / distance 128 is exactly MPNet"
    if cfg.encoder_normalize_before and buckets == 0:
        return "roberta_prelayernorm", "Pre-LN without relative position bias is exactly RoBERTa-PreLayerNorm"
    ln = "Pre-LN" if cfg.encoder_normalize_before else "Post-LN"
    return "metro", (
        f"no stock class computes {ln} with a T5 bias of {buckets} buckets / distance {distance} "
        "(MPNet hard-codes 32/128): shipping modeling_metro.py, load with trust_remote_code=True"
    )


def hf_config(transformers, family: str, cfg, vocab_size: int, num_labels: int, pooler_dropout: float):
    """The config object of ``family`` for a MetroConfig-like ``cfg``."""
    common = dict(
        vocab_size=vocab_size, hidden_size=cfg.encoder_embed_dim, num_hidden_layers=cfg.encoder_layers,
        num_attention_heads=cfg.encoder_attention_heads, intermediate_size=cfg.encoder_ffn_embed_dim,
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.attention_dropout,
        layer_norm_eps=cfg.layer_norm_eps, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=num_labels,
    )
    if family == "metro":
        from .configuration_metro import MetroEncoderConfig

        return MetroEncoderConfig(
            max_position_embeddings=cfg.max_positions, normalize_before=cfg.encoder_normalize_before,
            relative_position_buckets=cfg.relative_position_buckets,
            relative_position_max_distance=cfg.relative_position_max_distance,
            attention_type=str(getattr(cfg, "attention_type", "standard")), position_buckets=cfg.position_buckets,
            max_relative_positions=cfg.max_relative_positions, pos_att_type=str(cfg.pos_att_type),
            activation_dropout=cfg.activation_dropout, classifier_activation=cfg.pooler_activation_fn,
            classifier_dropout=pooler_dropout, **common,
        )
    common.update(hidden_act="gelu", max_position_embeddings=cfg.max_positions + FAMILIES[family].position_offset)
    if family == "deberta_v2":
        # DeBERTa-v3's switches; its ContextPooler + classifier are fairseq's classification head
        return transformers.DebertaV2Config(
            type_vocab_size=0, position_biased_input=False, relative_attention=True,
            position_buckets=cfg.position_buckets if cfg.position_buckets > 0 else -1,
            max_relative_positions=cfg.max_relative_positions,
            pos_att_type=str(cfg.pos_att_type).replace("+", "|"), share_att_key=True, norm_rel_ebd="layer_norm", pooler_hidden_act=cfg.pooler_activation_fn,
            pooler_dropout=pooler_dropout, cls_dropout=pooler_dropout, **common,
        )
    if family == "bert":
        return transformers.BertConfig(type_vocab_size=1, classifier_dropout=pooler_dropout, **common)
    if family == "mpnet":
        if (cfg.relative_position_buckets, cfg.relative_position_max_distance) != (MPNET_BUCKETS, MPNET_MAX_DISTANCE):
            raise ValueError(  # MPNet would run and silently give other hidden states
                f"MPNet computes only a 32-bucket / distance-128 bias, not {cfg.relative_position_buckets}/"
                f"{cfg.relative_position_max_distance}: use the metro family (modeling_metro.py)"
            )
        return transformers.MPNetConfig(relative_attention_num_buckets=MPNET_BUCKETS, **common)
    return transformers.RobertaPreLayerNormConfig(type_vocab_size=1, classifier_dropout=pooler_dropout, **common)


# The encoder's name table per family: (metro name, transformers name, kind) with kind
#   "param": the module's weight and bias; "tensor": one tensor; "qkv": our fused in_proj, their three projections.
# The same table maps both ways (export: ``to_hf``, import: ``from_hf``); positions and token types are
# handled beside it, since they are where the layouts differ beyond names.
def _layer_table(family: str, i: int, p: str) -> list:
    src, dst = f"encoder.layers.{i}", f"{p}encoder.layer.{i}"
    ffn = [(f"{src}.fc1", f"{dst}.intermediate.dense", "param"), (f"{src}.fc2", f"{dst}.output.dense", "param")]
    if family == "mpnet":
        return ffn + [(f"{src}.self_attn.in_proj", tuple(f"{dst}.attention.attn.{n}" for n in "qkv"), "qkv"),
                      (f"{src}.self_attn.out_proj", f"{dst}.attention.attn.o", "param"),
                      (f"{src}.self_attn_layer_norm", f"{dst}.attention.LayerNorm", "param"),
                      (f"{src}.final_layer_norm", f"{dst}.output.LayerNorm", "param")]
    qkv = tuple(f"{dst}.attention.self.{n}" for n in ("query", "key", "value"))
    if family == "deberta_v2":
        qkv = tuple(name + "_proj" for name in qkv)
    table = ffn + [(f"{src}.self_attn.in_proj", qkv, "qkv"),
                   (f"{src}.self_attn.out_proj", f"{dst}.attention.output.dense", "param")]
    if family == "roberta_prelayernorm":  # Pre-LN: the norms sit before attention and before the FFN
        return table + [(f"{src}.self_attn_layer_norm", f"{dst}.attention.LayerNorm", "param"),
                        (f"{src}.final_layer_norm", f"{dst}.intermediate.LayerNorm", "param")]
    return table + [(f"{src}.self_attn_layer_norm", f"{dst}.attention.output.LayerNorm", "param"),
                    (f"{src}.final_layer_norm", f"{dst}.output.LayerNorm", "param")]


def encoder_table(family: str, num_layers: int, p: str = "") -> list:
    """Every encoder tensor but the position and token-type tables, under both names (``p``: the
    transformers prefix, e.g. ``bert.`` inside a head class)."""
    table = [("embeddings.weight", p + "embeddings.word_embeddings.weight", "tensor")]
    if family == "deberta_v2":
        table += [("encoder.embed_layer_norm", p + "embeddings.LayerNorm", "param"),
                  ("encoder.relative_embedding.layer_norm", p + "encoder.LayerNorm", "param"),
                  ("encoder.relative_embedding.embedding.weight", p + "encoder.rel_embeddings.weight", "tensor")]
    else:
        table += [("encoder.embed_layer_norm", p + "embeddings.LayerNorm", "param")]
    if family == "mpnet":
        table += [("encoder.relative_bias.embedding.weight", p + "encoder.relative_attention_bias.weight", "tensor")]
    if family == "roberta_prelayernorm":
        table += [("encoder.final_layer_norm", p + "LayerNorm", "param")]
    for i in range(num_layers):
        table += _layer_table(family, i, p)
    return table


def _expand(table):
    """(metro key, transformers key or keys, kind) per tensor."""
    for ours, theirs, kind in table:
        if kind == "tensor":
            yield ours, theirs, kind
        else:
            for t in ("weight", "bias"):
                yield f"{ours}.{t}", (tuple(f"{n}.{t}" for n in theirs) if kind == "qkv" else f"{theirs}.{t}"), kind


def to_hf(family: str, sd: dict, num_layers: int, p: str = "") -> dict:
    """The encoder's tensors of a fairseq main-model state dict ``sd`` under ``family``'s names."""
    out = {}
    for ours, theirs, kind in _expand(encoder_table(family, num_layers, p)):
        if kind == "qkv":
            out.update(zip(theirs, (part.clone() for part in sd[ours].chunk(3, dim=0))))
        else:
            out[theirs] = sd[ours]
    if family == "deberta_v2":  # no absolute positions
        return out
    positions = sd["encoder.embed_positions.weight"]
    offset = FAMILIES[family].position_offset
    out[p + "embeddings.position_embeddings.weight"] = torch.cat([positions.new_zeros(offset, positions.size(1)), positions])
    if family != "mpnet":  # one token type, a zero row: adds nothing
        out[p + "embeddings.token_type_embeddings.weight"] = positions.new_zeros(1, positions.size(1))
    return out


def from_hf(family: str, theirs_sd: dict, num_layers: int, p: str = "", position_offset: int = 0,
            max_positions: int = None) -> dict:
    """The inverse of ``to_hf``: a main-model state dict from a transformers one. Token type 0 (added to
    every token when no ``token_type_ids`` are given) is folded into the position table, and the
    positions start at ``position_offset`` (RoBERTa and MPNet: 2)."""
    out = {}
    for ours, theirs, kind in _expand(encoder_table(family, num_layers, p)):
        out[ours] = torch.cat([theirs_sd[n] for n in theirs]) if kind == "qkv" else theirs_sd[theirs]
    if family == "deberta_v2":
        return out
    positions = theirs_sd[p + "embeddings.position_embeddings.weight"][position_offset:]
    if max_positions is not None:
        positions = positions[:max_positions]
    token_type = theirs_sd.get(p + "embeddings.token_type_embeddings.weight")
    out["encoder.embed_positions.weight"] = positions + (token_type[0] if token_type is not None else 0)
    return out


def _copy(sd, out, pairs):
    for src, dst in pairs:
        for kind in ("weight", "bias"):
            out[f"{dst}.{kind}"] = sd[f"{src}.{kind}"]


def convert(family: str, sd: dict, num_layers: int, head_kind: str, head: dict) -> dict:
    """The state dict of ``FAMILIES[family].classes[head_kind]`` from a fairseq main-model state dict
    ``sd`` (GDES merged) and ``head`` (the fine-tuned head's tensors without their prefix)."""
    fam = FAMILIES[family]
    p = "" if head_kind == "base" else fam.prefix + "."
    if family == "metro":
        out = {p + "embed_tokens.weight": sd["embeddings.weight"]}
        out.update({p + k: v for k, v in sd.items() if k.startswith("encoder.")})
    else:
        out = to_hf(family, sd, num_layers, p)
    if head_kind == "base" and fam.pooler:
        # the pretrained model has no pooler: identity, so pooler_output = tanh(<s> state)
        dim = sd["embeddings.weight"].size(1)
        out["pooler.dense.weight"], out["pooler.dense.bias"] = torch.eye(dim), torch.zeros(dim)
    elif head_kind == "classification":
        if family == "bert":  # BERT's pooler + classifier are the head's dense + tanh and out_proj
            _copy(head, out, [("dense", p + "pooler.dense"), ("out_proj", "classifier")])
        elif family == "deberta_v2":  # ContextPooler (dropout, dense, activation), dropout, classifier
            _copy(head, out, [("dense", "pooler.dense"), ("out_proj", "classifier")])
        else:
            _copy(head, out, [("dense", "classifier.dense"), ("out_proj", "classifier.out_proj")])
    elif head_kind == "qa":
        _copy(head, out, [("out_proj", "qa_outputs")])
    return {k: v.detach().float().contiguous() for k, v in out.items()}
