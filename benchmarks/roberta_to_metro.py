#!/usr/bin/env python
"""A fairseq RoBERTa checkpoint (``--task masked_lm --arch roberta``, Post-LN) as a metro pretraining checkpoint,
built the way ``metro-import-hf`` builds one from a released model: the main model exactly (checked against
fairseq's own RobertaModel), GDES, a generator of its lower layers that starts with its trained LM head.

    python benchmarks/roberta_to_metro.py ROBERTA.pt OUT.pt [--generator-layers 2]

Used by benchmarks/branch_race.py to continue one masked-LM checkpoint with masked LM and with METRO.
Prints the fairseq-train model flags that rebuild OUT's model.
"""
import argparse
import os
import sys
from types import SimpleNamespace

import torch

PREFIX = "encoder.sentence_encoder."


def main_state(sd: dict, layers: int, offset: int) -> dict:
    """The metro main model's tensors from a fairseq RoBERTa state dict (positions start at ``offset``)."""
    out = {"embeddings.weight": sd[PREFIX + "embed_tokens.weight"],
           "encoder.embed_positions.weight": sd[PREFIX + "embed_positions.weight"][offset:]}
    for t in ("weight", "bias"):
        out[f"encoder.embed_layer_norm.{t}"] = sd[f"{PREFIX}layernorm_embedding.{t}"]
        for i in range(layers):
            src, dst = f"{PREFIX}layers.{i}.", f"encoder.layers.{i}."
            out[f"{dst}self_attn.in_proj.{t}"] = torch.cat([sd[f"{src}self_attn.{n}_proj.{t}"] for n in "qkv"])
            for name in ("self_attn.out_proj", "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"):
                out[f"{dst}{name}.{t}"] = sd[f"{src}{name}.{t}"]
    return {k: v.float().clone() for k, v in out.items()}


def lm_head_state(sd: dict) -> dict:
    """RoBERTa's LM head (dense, gelu, LayerNorm, tied output + bias) as the metro generator head."""
    out = {"generator_head.bias": sd["encoder.lm_head.bias"]}
    for t in ("weight", "bias"):
        out[f"generator_head.dense.{t}"] = sd[f"encoder.lm_head.dense.{t}"]
        out[f"generator_head.layer_norm.{t}"] = sd[f"encoder.lm_head.layer_norm.{t}"]
    return {k: v.float().clone() for k, v in out.items()}


def refuse(args) -> str:
    """Why a RoBERTa's config is not the metro encoder's (None when it is)."""
    checks = {"encoder_normalize_before": False, "activation_fn": "gelu", "layernorm_embedding": True,
              "no_scale_embedding": True, "untie_weights_roberta": False, "encoder_learned_pos": True}
    for name, want in checks.items():
        if getattr(args, name, want) != want:
            return f"{name}={getattr(args, name)!r} (the metro encoder computes {want!r})"
    return None


def convert(path: str, out: str, generator_layers: int, seed: int = 1) -> str:
    """Write OUT (and dict.txt beside it); returns the model flags for fairseq-train."""
    from fairseq import checkpoint_utils, tasks
    from fairseq.data import Dictionary

    from metro_fairseq import plugin

    plugin.install()
    from metro_fairseq.hf import import_hf
    from metro_fairseq.models.metro_config import MetroConfig

    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    args, data = state["cfg"]["model"], state["cfg"]["task"].data
    problem = refuse(args)
    if problem:
        sys.exit(f"roberta_to_metro: {path}: {problem}")
    dictionary = Dictionary.load(os.path.join(data, "dict.txt"))
    dictionary.add_symbol("<mask>")
    cfg = MetroConfig(encoder_layers=args.encoder_layers, encoder_embed_dim=args.encoder_embed_dim,
                      encoder_ffn_embed_dim=args.encoder_ffn_embed_dim,
                      encoder_attention_heads=args.encoder_attention_heads, dropout=args.dropout,
                      attention_dropout=args.attention_dropout, max_positions=args.max_positions,
                      relative_position_buckets=0)
    main = main_state(state["model"], args.encoder_layers, dictionary.pad() + 1)
    model = import_hf.pretraining_model(cfg, dictionary, main, SimpleNamespace(
        generator_layers=generator_layers, generator_embed_dim=None, generator_from="lower-layers", seed=seed))
    model.load_state_dict({**model.state_dict(), **lm_head_state(state["model"])}, strict=True)

    # exactness against fairseq's own model, on a padded batch
    from metro_fairseq.hf.equivalence_check import TOLERANCE, sample_batch

    roberta = tasks.setup_task(state["cfg"]["task"]).build_model(args)
    roberta.load_state_dict(state["model"], strict=True)
    roberta.eval()
    ids, mask = sample_batch(dictionary, cfg.max_positions)
    with torch.no_grad():
        worst = (model.encode(ids) - roberta(ids, features_only=True)[0])[mask.bool()].abs().max().item()
    if not worst <= TOLERANCE:
        sys.exit(f"roberta_to_metro: the converted model differs from fairseq's RoBERTa by {worst:.2e}")

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    model_cfg = import_hf.save_checkpoint(out, cfg, data, model)
    print(f"roberta_to_metro: {path} -> {out}: hidden states within {worst:.1e} of fairseq's RoBERTa; generator: "
          f"its lower {generator_layers} layers and its LM head")
    return import_hf.continue_flags(model_cfg)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("roberta", help="fairseq RoBERTa checkpoint (masked_lm task)")
    p.add_argument("output", help="metro checkpoint to write")
    p.add_argument("--generator-layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="initialisation of the fresh RTD head")
    args = p.parse_args()
    print(convert(args.roberta, args.output, args.generator_layers, args.seed))


if __name__ == "__main__":
    main()
