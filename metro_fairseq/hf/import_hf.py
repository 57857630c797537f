"""``metro-import-hf`` (``scripts/import_hf.py``): a released transformers encoder as a metro pretraining
checkpoint, verified before it is written.

    metro-import-hf path/to/bert-folder imported/bert.pt [--generator-from lower-layers --generator-layers 6]

The folder (config, weights, tokenizer) loads with ``from_pretrained`` from disk, never the hub. OUT
holds the main model (the released weights), a generator (ELECTRA's released one with ``--generator``, else
built from the released model) and fresh RTD head, so
``fairseq-train --task metro_pretraining --finetune-from-model OUT`` continues pretraining with the
flags the tool prints; dict.txt (the released vocabulary, specials moved to fairseq's ids) is
written beside OUT. Families: BERT, ELECTRA (discriminator, and generator), RoBERTa / XLM-R,
RoBERTa-PreLayerNorm, MPNet, DeBERTa-v2/v3. Checks, each fatal: the main model's hidden states (and a
released generator's logits) equal the transformers model's within 1e-4 on a padded batch; the
tokenizer's ids equal fairseq's on sample lines.
"""
import argparse
import os
from dataclasses import asdict

from ..cli.messages import log, one_line_errors
from . import electra_generator
from .equivalence_check import TOLERANCE, max_difference, sample_batch
from .layouts import from_hf
from .released_mlm_head import released_mlm_head
from .tokenizer import SAMPLE_LINES
from .vocabulary import HFImportError, load_tokenizer, vocabulary_of

TOOL = "import_hf"
# model_type -> the FAMILIES layout its weights follow
LAYOUTS = {"bert": "bert", "electra": "bert", "roberta": "bert", "xlm-roberta": "bert",
           "roberta-prelayernorm": "roberta_prelayernorm", "mpnet": "mpnet", "deberta-v2": "deberta_v2"}
COUNTED_FROM_PAD = ("roberta", "xlm-roberta", "roberta-prelayernorm", "mpnet")  # positions start at pad + 1


def _refuse_inexact(config):
    """One line for a config the metro architecture cannot compute exactly; None when it can."""
    kind = config.model_type
    if kind not in LAYOUTS:
        return (f"model type {kind!r} is not importable: metro-import-hf takes {', '.join(sorted(LAYOUTS))}")
    if getattr(config, "hidden_act", "gelu") != "gelu":
        return f"hidden_act {config.hidden_act!r}: the metro encoder computes exact (erf) gelu only"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "a decoder (is_decoder / add_cross_attention) is not an encoder the metro model computes"
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position_embedding_type {config.position_embedding_type!r}: only absolute positions import exactly"
    if getattr(config, "embedding_size", config.hidden_size) not in (None, config.hidden_size):
        return (f"embedding_size {config.embedding_size} differs from hidden_size {config.hidden_size} (a projected "
                "table, as ELECTRA-small): the metro encoder normalises after the projection, not before")
    if kind == "mpnet" and config.relative_attention_num_buckets != 32:
        return f"MPNet with {config.relative_attention_num_buckets} buckets: the metro T5 bias matches MPNet at 32"
    if kind == "mpnet" and config.pad_token_id != 1:  # transformers' MPNet counts positions past id 1, whatever pads
        return f"MPNet with pad_token_id {config.pad_token_id}: transformers' MPNet treats id 1 as padding"
    if kind == "deberta-v2":
        pos_att = set(config.pos_att_type or [])
        v3 = (config.relative_attention and not config.position_biased_input and config.share_att_key
              and "layer_norm" in str(config.norm_rel_ebd) and pos_att and pos_att <= {"c2p", "p2c"}
              and not getattr(config, "conv_kernel_size", 0) and not config.type_vocab_size)
        if not v3:
            return ("a DeBERTa-v2 config without v3's settings (relative attention with shared keys, LayerNorm-ed "
                    "table, c2p/p2c, no absolute positions, token types or convolution) does not import exactly")
    return None


def metro_config(config):
    """The MetroConfig computing ``config``'s encoder (pretraining options left to the caller)."""
    from ..models.metro_config import MetroConfig

    offset = config.pad_token_id + 1 if config.model_type in COUNTED_FROM_PAD else 0
    cfg = MetroConfig(
        encoder_layers=config.num_hidden_layers, encoder_embed_dim=config.hidden_size,
        encoder_ffn_embed_dim=config.intermediate_size, encoder_attention_heads=config.num_attention_heads,
        encoder_normalize_before=config.model_type == "roberta-prelayernorm",
        dropout=config.hidden_dropout_prob, attention_dropout=config.attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps, max_positions=config.max_position_embeddings - offset,
        relative_position_buckets=32 if config.model_type == "mpnet" else 0,
        relative_position_max_distance=128,
    )
    if config.model_type == "deberta-v2":
        cfg.attention_type = "disentangled"
        cfg.position_buckets = max(config.position_buckets, 0)
        cfg.max_relative_positions = (config.max_relative_positions if config.max_relative_positions > 0
                                      else config.max_position_embeddings)
        cfg.pos_att_type = "+".join(t for t in ("c2p", "p2c") if t in config.pos_att_type)
    return cfg, offset


def read_folder(transformers, hf_dir: str):
    """(config, base model, tokenizer) of a transformers folder, refused in one line where it cannot be imported."""
    if not os.path.isdir(hf_dir):
        raise HFImportError(f"{hf_dir} is not a folder: give the transformers folder (config.json, weights, tokenizer)")
    if not os.path.isfile(os.path.join(hf_dir, "config.json")):
        raise HFImportError(f"{hf_dir} has no config.json: give a folder written by save_pretrained")
    weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
    if not any(os.path.isfile(os.path.join(hf_dir, w)) for w in weights):
        raise HFImportError(f"{hf_dir} has no weights ({' / '.join(weights[:2])}): nothing to import")
    config = transformers.AutoConfig.from_pretrained(hf_dir)
    problem = _refuse_inexact(config)
    if problem:
        raise HFImportError(f"{problem}; nothing was written")
    tokenizer = load_tokenizer(hf_dir, "HF_DIR")
    model = transformers.AutoModel.from_pretrained(hf_dir).float().eval()
    return config, model, tokenizer


def main_state(config, hf_state: dict, vocab, offset: int, max_positions: int) -> dict:
    state = from_hf(LAYOUTS[config.model_type], hf_state, config.num_hidden_layers,
                    position_offset=offset, max_positions=max_positions)
    state["embeddings.weight"] = state["embeddings.weight"][vocab.hf_ids]  # fairseq order
    return {k: v.detach().float().clone() for k, v in state.items()}


def generator_state(main: dict, layers: int) -> dict:
    """GDES's generator as the main model's lower ``layers`` layers (same width, same embeddings,
    positions and position biases): it starts as a trained encoder instead of the unigram plateau."""
    out = {}
    for key, value in main.items():
        if key.startswith("encoder.layers."):
            if int(key.split(".")[2]) < layers:
                out["generator." + key[len("encoder."):]] = value.clone()
        elif key.startswith("encoder."):
            out["generator." + key[len("encoder."):]] = value.clone()
    return out


def check_equal(model, dictionary, hf_model, vocab) -> float:
    """Max abs difference of the metro model's main hidden states from the transformers model's."""
    import torch

    ids, mask = sample_batch(dictionary, model.cfg.max_positions)
    with torch.no_grad():
        ours = {"hidden": model.encode(ids)}
        theirs = {"hidden": hf_model(input_ids=vocab.id_map()[ids], attention_mask=mask).last_hidden_state}
    worst = max(max_difference(ours, theirs, mask).values())
    if not worst <= TOLERANCE:  # also NaN
        raise HFImportError(f"the imported main model's hidden states differ from transformers' by {worst:.2e} (> {TOLERANCE:g}); "
                            "nothing was written")
    return worst


def import_hf(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder, never the hub
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    from fairseq.data import Dictionary

    from metro_fairseq import plugin

    plugin.install()
    from ..models.metro_config import generator_depth

    out = os.path.abspath(args.output)
    if os.path.exists(out) and not args.force:
        raise HFImportError(f"{args.output} exists: choose another OUT or pass --force")
    if args.generator and (args.generator_from or args.generator_layers or args.generator_embed_dim):
        raise HFImportError("--generator gives the generator whole: leave out --generator-from, --generator-layers "
                            "and --generator-embed-dim")
    if args.generator_embed_dim and args.generator_from != "fresh":
        raise HFImportError("--generator-embed-dim sets a fresh generator's width: add --generator-from fresh "
                            "(the lower layers keep the main model's)")
    config, hf_model, tokenizer = read_folder(transformers, args.hf_dir)
    vocab = vocabulary_of(tokenizer, config.vocab_size)
    released_generator = None
    if args.generator:
        if config.model_type != "electra":
            raise HFImportError(f"--generator takes ELECTRA's generator, for an ELECTRA discriminator; HF_DIR is "
                                f"{config.model_type!r}")
        released_generator = electra_generator.read_generator(transformers, args.generator, config, vocab)
    cfg, offset = metro_config(config)
    log(TOOL, f"{args.hf_dir}: {config.model_type} ({type(hf_model).__name__}), {cfg.encoder_layers} layers x "
              f"{cfg.encoder_embed_dim}, {len(vocab.hf_ids)} tokens, specials {vocab.specials}")

    out_dir = os.path.dirname(out)
    os.makedirs(out_dir, exist_ok=True)
    dict_path = os.path.join(out_dir, "dict.txt")
    tmp_dict = dict_path + ".partial"
    vocab.write_dict(tmp_dict)
    if os.path.exists(dict_path) and not args.force and open(dict_path).read() != open(tmp_dict).read():
        os.remove(tmp_dict)
        raise HFImportError(f"{dict_path} holds another vocabulary: write OUT into its own folder or pass --force")
    try:
        dictionary = Dictionary.load(tmp_dict)
        dictionary.add_symbol("<mask>")  # the tasks add it last
        main = main_state(config, hf_model.state_dict(), vocab, offset, cfg.max_positions)
        model = pretraining_model(cfg, dictionary, main, args, released_generator, vocab)
        head = None
        if args.generator_from == "lower-layers":
            head = released_mlm_head(args.hf_dir, vocab, main["embeddings.weight"])
            if head:
                model.generator_head.load_state_dict({k[len("generator_head."):]: v for k, v in head.items()})
        worst = check_equal(model, dictionary, hf_model, vocab)
        if released_generator:
            gen_worst = electra_generator.check_generator(model, dictionary, released_generator[1], vocab)
        for line in SAMPLE_LINES:
            ours = [vocab.hf_ids[i] for i in vocab.fairseq_ids(tokenizer, line)]
            if ours != tokenizer(line)["input_ids"]:
                raise HFImportError(f"line {line[:40]!r}: dict.txt and the tokenizer give other ids; nothing was written")
        model_cfg = save_checkpoint(out, cfg, out_dir, model)
        os.replace(tmp_dict, dict_path)
    finally:
        for leftover in (tmp_dict, out + ".partial"):
            if os.path.exists(leftover):
                os.remove(leftover)
    gen = {"lower-layers": f"{generator_depth(cfg)} lower layers of the main model, "
                           + ("the released MLM head" if head else "a fresh head (the folder has no MLM head)"),
           "fresh": f"{generator_depth(cfg)} fresh layers"}.get(args.generator_from)
    if released_generator:
        gen = f"{args.generator}, its MLM logits within {gen_worst:.1e} of transformers'"
    log(TOOL, f"verified: hidden states within {worst:.1e} of transformers'; tokenizer ids equal on "
              f"{len(SAMPLE_LINES)} lines; generator: {gen}")
    log(TOOL, f"wrote {args.output} and {dict_path}")
    log(TOOL, f"continue pretraining with: {continue_flags(model_cfg)}")
    return cfg


def pretraining_model(cfg, dictionary, main: dict, args, released_generator=None, vocab=None):
    """The METRO model around the imported main model: GDES sharing, a generator (ELECTRA's released one,
    the main model's lower layers, or fresh), fresh RTD head."""
    import torch

    from ..models.metro import MetroModel
    from ..models.metro_config import check_config, generator_depth

    cfg.embedding_sharing = "gdes"
    if released_generator:
        for key, value in electra_generator.generator_options(released_generator[0], cfg.encoder_embed_dim).items():
            setattr(cfg, key, value)
    else:
        cfg.generator_layers = args.generator_layers or max(1, cfg.encoder_layers // 2)
        cfg.generator_embed_dim = args.generator_embed_dim
    cfg.allow_deep_generator = cfg.generator_layers >= cfg.encoder_layers  # asked for: a copy, or ELECTRA's 12 of 12
    check_config(cfg, with_generator=True)
    torch.manual_seed(args.seed)
    model = MetroModel(cfg, dictionary, with_generator=True)
    state = model.state_dict()
    state.update(main)
    if released_generator:
        state.update(electra_generator.generator_state(*released_generator, vocab, cfg.max_positions))
        state["embeddings.delta"] = main["embeddings.weight"] - state["embeddings.weight"]  # the main table again
    elif args.generator_from == "lower-layers":
        state.update(generator_state(main, generator_depth(cfg)))
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def save_checkpoint(path: str, cfg, data: str, model) -> dict:
    """Write ``model`` as a fairseq pretraining checkpoint at update 0 (atomically); returns its model config."""
    import torch

    checkpoint = {"cfg": fairseq_config(cfg, data), "model": model.state_dict(), "args": None,
                  "last_optimizer_state": None,  # fairseq's own layout at update 0
                  "optimizer_history": [{"criterion_name": "MetroCriterion", "optimizer_name": None,
                                         "lr_scheduler_state": {}, "num_updates": 0}],
                  "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0}}}
    torch.save(checkpoint, path + ".partial")
    os.replace(path + ".partial", path)
    return checkpoint["cfg"]["model"]


def fairseq_config(cfg, data: str) -> dict:
    """The whole config a fairseq checkpoint carries (plain containers, interpolations resolved), with
    ``cfg`` as the model and the metro_pretraining task reading ``data`` (where dict.txt is)."""
    from fairseq.dataclass.configs import FairseqConfig
    from omegaconf import OmegaConf

    from ..tasks.metro_pretraining import MetroPretrainingConfig

    full = OmegaConf.to_container(OmegaConf.structured(FairseqConfig(task=MetroPretrainingConfig(data=data),
                                                                     model=cfg)), resolve=True,
                                   enum_to_str=True)
    full["task"]["_name"], full["model"]["_name"] = "metro_pretraining", "metro"
    return full


def continue_flags(model_cfg: dict) -> str:
    """The fairseq-train model flags that rebuild OUT's model (generator included)."""
    from ..models.metro_config import MetroConfig

    defaults = asdict(MetroConfig())
    flags = ["--arch metro"]
    for key, value in model_cfg.items():
        if key == "_name" or value == defaults.get(key) or value is None:
            continue
        flags.append(f"--{key.replace('_', '-')}" + ("" if value is True else f" {value}"))
    return " ".join(flags)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hf_dir", help="transformers folder: config.json, weights (safetensors or bin), tokenizer files")
    p.add_argument("output", help="metro checkpoint to write (dict.txt goes beside it)")
    p.add_argument("--generator", metavar="HF_DIR",
                   help="ELECTRA's released generator (ElectraForMaskedLM folder), imported with the discriminator")
    p.add_argument("--generator-from", choices=["lower-layers", "fresh"],
                   help="the generator: the main model's lower layers at full width (GDES shares the embeddings; "
                        "the default without --generator: it starts past the unigram plateau) or fresh layers")
    p.add_argument("--generator-layers", type=int, help="generator depth (default: half the main model's layers)")
    p.add_argument("--generator-embed-dim", type=int, help="with --generator-from fresh: its width (default: the main model's)")
    p.add_argument("--seed", type=int, default=1, help="initialisation of the fresh heads (and fresh generator)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    args = p.parse_args(argv)
    if not args.generator:
        args.generator_from = args.generator_from or "lower-layers"
    return args


@one_line_errors(TOOL)
def import_command(argv=None):
    """The command line as a function: the MetroConfig written."""
    return import_hf(parse_args(argv))


def main(argv=None) -> None:
    import_command(argv)
