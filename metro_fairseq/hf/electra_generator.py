"""ELECTRA's released generator (``ElectraForMaskedLM``) as the metro generator: ``metro-import-hf --generator``.

- ELECTRA shares the embeddings (tokens, positions, token type, LayerNorm) of generator and discriminator
  at the embedding width; a narrower generator normalises first and then projects
  (``--generator-project-after-norm``). The metro generator keeps its own copy of the positions.
- Under GDES the generator owns the token table and the main model reads ``stopgrad(table) + delta``:
  the import sets ``delta`` = discriminator table - generator table, so both compute what was released.
- The MLM head (dense, gelu, LayerNorm, output tied to the table, bias) is ``GeneratorHead``.
The generator's logits are checked against transformers' before anything is written.
"""
import os

from .equivalence_check import TOLERANCE, max_difference, sample_batch
from .layouts import from_hf
from .vocabulary import HFImportError, load_tokenizer, vocabulary_of

OPTION = "--generator"


def _problem(config, main_config):
    """One line for a generator the metro model cannot take with this main model; None when it can."""
    if config.model_type != "electra":
        return f"{OPTION} takes ELECTRA's generator (ElectraForMaskedLM), not model type {config.model_type!r}"
    if config.hidden_act != "gelu":
        return f"the generator's hidden_act {config.hidden_act!r}: the metro encoder computes exact (erf) gelu only"
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"the generator's position_embedding_type {config.position_embedding_type!r}: only absolute imports"
    pairs = [("embedding_size", config.embedding_size, main_config.hidden_size, "ELECTRA shares one token table"),
             ("max_position_embeddings", config.max_position_embeddings, main_config.max_position_embeddings, ""),
             ("layer_norm_eps", config.layer_norm_eps, main_config.layer_norm_eps, "one epsilon serves both models"),
             ("vocab_size", config.vocab_size, main_config.vocab_size, "")]
    for name, theirs, ours, why in pairs:
        if theirs != ours:
            return (f"the generator's {name} {theirs} differs from the main model's {ours}"
                    + (f": {why}" if why else "") + "; give the generator released with this discriminator")
    return None


def read_generator(transformers, gen_dir: str, main_config, vocab):
    """The ``ElectraForMaskedLM`` in ``gen_dir`` (eval, fp32), refused in one line where it cannot serve."""
    if not os.path.isfile(os.path.join(gen_dir, "config.json")):
        raise HFImportError(f"{OPTION} {gen_dir} has no config.json: give the generator's save_pretrained folder")
    config = transformers.AutoConfig.from_pretrained(gen_dir)
    problem = _problem(config, main_config)
    if problem:
        raise HFImportError(f"{problem}; nothing was written")
    if vocabulary_of(load_tokenizer(gen_dir, OPTION), config.vocab_size).symbols != vocab.symbols:
        raise HFImportError(f"{OPTION} {gen_dir} has another vocabulary than the main model; nothing was written")
    try:
        model, info = transformers.ElectraForMaskedLM.from_pretrained(gen_dir, output_loading_info=True)
    except OSError as e:
        raise HFImportError(f"{OPTION} {gen_dir}: no weights transformers can load ({e.__class__.__name__})")
    missing = sorted(info["missing_keys"])
    if missing:
        raise HFImportError(f"{OPTION} {gen_dir} lacks {missing[0]} (and {len(missing) - 1} more): it is not a "
                            "generator (ElectraForMaskedLM) checkpoint; nothing was written")
    sd = model.state_dict()
    if not sd["generator_lm_head.weight"].equal(sd["electra.embeddings.word_embeddings.weight"]):
        raise HFImportError("the generator's output layer is not tied to its token table (tie_word_embeddings false): "
                            "the metro generator ties them; nothing was written")
    return config, model.float().eval()


def generator_options(config, main_width: int) -> dict:
    """The MetroConfig generator options that build ``config``'s shape."""
    narrower = config.hidden_size != main_width
    return dict(generator_layers=config.num_hidden_layers, generator_embed_dim=config.hidden_size if narrower else None,
                generator_ffn_embed_dim=config.intermediate_size, generator_attention_heads=config.num_attention_heads,
                generator_project_after_norm=narrower)


def generator_state(config, model, vocab, max_positions: int) -> dict:
    """The generator's tensors under metro names, its token table as ``embeddings.weight`` (fairseq order)."""
    sd = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    body = from_hf("bert", sd, config.num_hidden_layers, p="electra.", max_positions=max_positions)
    out = {"generator." + k[len("encoder."):]: v for k, v in body.items() if k.startswith("encoder.")}
    out["embeddings.weight"] = body["embeddings.weight"][vocab.hf_ids]
    for kind in ("weight", "bias"):
        if f"electra.embeddings_project.{kind}" in sd:
            out[f"generator.input_proj.{kind}"] = sd[f"electra.embeddings_project.{kind}"]
        out[f"generator_head.dense.{kind}"] = sd[f"generator_predictions.dense.{kind}"]
        out[f"generator_head.layer_norm.{kind}"] = sd[f"generator_predictions.LayerNorm.{kind}"]
    out["generator_head.bias"] = sd["generator_lm_head.bias"][vocab.hf_ids]
    return out


def check_generator(model, dictionary, hf_model, vocab) -> float:
    """Max abs difference of the metro generator's MLM logits (fairseq order) from transformers'."""
    import torch

    ids, mask = sample_batch(dictionary, model.cfg.max_positions)
    hf_ids = vocab.id_map()
    with torch.no_grad():
        hidden = model.generator(model.embeddings.embed_generator(ids), model.padding_mask(ids))
        ours = {"mlm": model.generator_head(hidden, model.embeddings.generator_weight())}
        theirs = {"mlm": hf_model(input_ids=hf_ids[ids], attention_mask=mask).logits[..., hf_ids]}
    worst = max_difference(ours, theirs, mask)["mlm"]
    if not worst <= TOLERANCE:  # also NaN
        raise HFImportError(f"the imported generator's logits differ from transformers' by {worst:.2e} "
                            f"(> {TOLERANCE:g}); nothing was written")
    return worst
