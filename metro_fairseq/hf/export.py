"""``metro-export-hf`` (``scripts/export_hf.py``): a metro checkpoint as a transformers folder, verified
before it is written.

    metro-export-hf checkpoints/metro_base/checkpoint_best.pt hf/metro_base
    metro-export-hf glue-ckpt/RTE/checkpoint_best.pt hf/metro_base-rte --spm-model data-bin/corpus/spm.model
    metro-export-hf continued/checkpoint_last.pt hf/bert-domain --hf-tokenizer path/to/released-bert

``--hf-tokenizer``: a model imported with ``metro-import-hf`` goes back with the released tokenizer, its
embedding rows in the released ids.

Checks, each fatal: strict key loading; fairseq vs transformers hidden states (and head outputs) on
a padded batch, within 1e-4, before and after ``from_pretrained``; tokenizer ids equal to fairseq's
on sample lines. The folder is built beside OUTDIR and renamed into place only when all pass.
"""
import argparse
import os
import shutil
import tempfile

from ..cli.messages import log, one_line_errors
from .equivalence_check import TOLERANCE, fairseq_outputs, hf_outputs, max_difference, sample_batch
from .layouts import FAMILIES, HEAD_KINDS, choose_family, convert, hf_config
from .metro_checkpoint import ExportError, find_data_file, label_names, load_source
from .tokenizer import SAMPLE_LINES, build_tokenizer, id_mismatch, layout_problem, spm_model_type

HERE = os.path.dirname(os.path.abspath(__file__))
CUSTOM_FILES = ("configuration_metro.py", "modeling_metro.py")
AUTO_CLASSES = {"base": "AutoModel", "classification": "AutoModelForSequenceClassification",
                "qa": "AutoModelForQuestionAnswering"}
TOOL = "export_hf"


def _model_class(transformers, family: str, head_kind: str):
    name = FAMILIES[family].classes[HEAD_KINDS.index(head_kind)]
    if family == "metro":
        from . import modeling_metro

        return getattr(modeling_metro, name)
    return getattr(transformers, name)


def _check(what: str, diffs: dict):
    worst = max(diffs.values())
    if not worst <= TOLERANCE:  # also catches NaN
        detail = ", ".join(f"{k} {v:.2e}" for k, v in sorted(diffs.items()))
        raise ExportError(f"{what}: max abs difference {detail} exceeds {TOLERANCE:g}; nothing was written")
    return worst


def build_hf_model(transformers, source, family: str, vocab=None):
    """``vocab``: the released vocabulary (``--hf-tokenizer``) whose ids the embedding rows go back to."""
    cfg, n_labels = source.cfg, 2
    if source.head_kind == "classification":
        n_labels = source.head["out_proj.weight"].size(0)
    vocab_size = max(vocab.hf_ids) + 1 if vocab else len(source.dictionary)
    config = hf_config(transformers, family, cfg, vocab_size, n_labels, cfg.pooler_dropout)
    if vocab:
        config.pad_token_id, config.bos_token_id, config.eos_token_id = vocab.hf_ids[1], vocab.hf_ids[0], vocab.hf_ids[2]
    if source.head_kind == "classification":
        names = label_names(source.data_dir, n_labels)
        if names:
            config.id2label = dict(enumerate(names))
            config.label2id = {v: k for k, v in config.id2label.items()}
        if n_labels == 1:
            config.problem_type = "regression"
    if family == "metro":
        config.auto_map = {"AutoConfig": "configuration_metro.MetroEncoderConfig"}
        config.auto_map.update({auto: f"modeling_metro.{cls}" for auto, cls in zip(AUTO_CLASSES.values(), FAMILIES["metro"].classes)})
    model = _model_class(transformers, family, source.head_kind)(config)
    sd = source.model.state_dict()
    if vocab:
        table = sd["embeddings.weight"]
        sd["embeddings.weight"] = table.new_zeros(vocab_size, table.size(1)).index_copy(0, vocab.id_map(), table)
    state = convert(family, sd, cfg.encoder_layers, source.head_kind, source.head)
    model.load_state_dict(state, strict=True)  # check 1: every tensor has exactly one home
    config.architectures = [type(model).__name__]
    return model.eval()


def write_tokenizer(transformers, source, spm_path, workdir, outdir, extra_lines, remote: bool):
    import sentencepiece as spm

    kind = spm_model_type(spm_path)
    if kind != "unigram":
        raise ExportError(
            f"{spm_path} is a {kind} SentencePiece model; XLMRobertaTokenizer reproduces only unigram "
            "segmentation: pass --no-tokenizer to export the model alone"
        )
    sp = spm.SentencePieceProcessor(model_file=spm_path)
    problem = layout_problem(sp, source.dictionary)
    if problem:
        raise ExportError(f"{problem}: the tokenizer would not give fairseq's ids; pass --no-tokenizer")
    lines = SAMPLE_LINES + extra_lines
    tokenizer = build_tokenizer(transformers, spm_path, workdir, source.cfg.max_positions)
    tokenizer.save_pretrained(outdir)
    # check 4, on what a user loads (the config's auto_map makes AutoTokenizer ask for trust_remote_code too)
    reloaded = transformers.AutoTokenizer.from_pretrained(outdir, trust_remote_code=remote)
    for tok in (tokenizer, reloaded):
        mismatch = id_mismatch(tok, sp, source.dictionary, lines)
        if mismatch:
            raise ExportError(f"{type(tok).__name__} {mismatch}; pass --no-tokenizer to export the model alone")
    return type(reloaded).__name__, len(lines)


def released_vocabulary(transformers, hf_dir: str, dictionary):
    """(tokenizer, Vocabulary) of ``--hf-tokenizer``, refused unless it is the checkpoint's dictionary."""
    from .vocabulary import load_tokenizer, vocabulary_of

    tokenizer = load_tokenizer(hf_dir)
    vocab = vocabulary_of(tokenizer)
    if dictionary.symbols[4:-1] != vocab.symbols:
        raise ExportError(f"the checkpoint's dictionary is not {hf_dir}'s vocabulary: give the folder the model was "
                          "imported from (metro-import-hf), or export without --hf-tokenizer")
    return tokenizer, vocab


def write_released_tokenizer(transformers, tokenizer, vocab, outdir):
    """The released tokenizer, checked (as saved and reloaded) to give the ids fairseq trained on."""
    from .tokenizer import SAMPLE_LINES

    tokenizer.save_pretrained(outdir)
    for tok in (tokenizer, transformers.AutoTokenizer.from_pretrained(outdir)):
        for line in SAMPLE_LINES:
            if [vocab.hf_ids[i] for i in vocab.fairseq_ids(tok, line)] != tok(line)["input_ids"]:
                raise ExportError(f"{type(tok).__name__} and dict.txt give other ids for {line[:40]!r}; "
                                  "nothing was written")
    return type(tokenizer).__name__, len(SAMPLE_LINES)


def _default_permissions(folder):
    # mkdtemp (and safetensors) create owner-only entries; the export should read like any folder
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o666 & ~umask)


def export(args):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything loads from local folders
    import transformers

    transformers.logging.set_verbosity_error()  # load reports and progress bars would drown our lines
    transformers.utils.logging.disable_progress_bar()
    import torch

    source = load_source(args.checkpoint, args.dict, args.head)
    if source.head_kind == "classification":
        from .modeling_metro import CLASSIFIER_ACTIVATIONS

        if source.cfg.pooler_activation_fn not in CLASSIFIER_ACTIVATIONS:
            raise ExportError(f"the classification head's activation {source.cfg.pooler_activation_fn!r} is not one "
                              f"of {sorted(CLASSIFIER_ACTIVATIONS)}: no transformers head computes it")
        if getattr(source.cfg, "classifier_pooling", "first") != "first":
            raise ExportError(f"the classification head reads --classifier-pooling {source.cfg.classifier_pooling}: "
                              "transformers heads read the <s> state; fine-tune with --classifier-pooling first to export")
        if source.head["dense.weight"].shape[0] != source.cfg.encoder_embed_dim:
            raise ExportError("the classification head's inner dimension differs from the model width: "
                              "transformers heads are as wide as the model")
    family, why = choose_family(source.cfg, source.cfg.pooler_activation_fn)
    if args.custom_code and family != "metro":
        family, why = "metro", "--custom-code: shipping modeling_metro.py"
    head = f"{source.head_kind} head {source.head_name!r}" if source.head_name else "no fine-tuned head"
    log(TOOL, f"{args.checkpoint}: {source.cfg.encoder_layers} layers x {source.cfg.encoder_embed_dim}, {head}")
    log(TOOL, f"class {FAMILIES[family].classes[0]} family: {why}")

    released, vocab = (None, None)
    if args.hf_tokenizer:
        released, vocab = released_vocabulary(transformers, args.hf_tokenizer, source.dictionary)
    torch.manual_seed(0)
    model = build_hf_model(transformers, source, family, vocab)
    ids, mask = sample_batch(source.dictionary, source.cfg.max_positions)
    ours = fairseq_outputs(source, ids)
    hf_ids = vocab.id_map()[ids] if vocab else ids  # the same tokens under the released ids
    base = model if source.head_kind == "base" else getattr(model, model.base_model_prefix)
    before = {"hidden": base(input_ids=hf_ids, attention_mask=mask).last_hidden_state.detach()}
    if source.head_kind != "base":
        before.update(hf_outputs(model, hf_ids, mask, source.head_kind))
    _check("before saving", max_difference(ours, before, mask))

    spm_path = None if released else args.spm_model or find_data_file(source.data_dir, "spm.model")
    if not args.no_tokenizer and not spm_path and not released:
        raise ExportError("no SentencePiece model found in the checkpoint's data folder: pass --spm-model "
                          "DATA/spm.model (prepare_corpus.py writes it) or --no-tokenizer")
    if spm_path and not os.path.isfile(spm_path):
        raise ExportError(f"--spm-model {spm_path} does not exist")
    extra = []
    if args.sample_text:
        with open(args.sample_text, encoding="utf-8") as f:
            extra = [line for line in (next(f, "") for _ in range(200)) if line.strip()]

    outdir = os.path.abspath(args.outdir)
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise ExportError(f"{args.outdir} is a file: OUTDIR is the folder to write")
    if os.path.exists(outdir) and os.listdir(outdir) and not args.force:
        raise ExportError(f"{args.outdir} exists and is not empty: choose another OUTDIR or pass --force")
    parent = os.path.dirname(outdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(outdir) + ".partial-", dir=parent)
    try:
        model.save_pretrained(tmp)
        if family == "metro":
            for name in CUSTOM_FILES:
                shutil.copy(os.path.join(HERE, name), tmp)
        remote = family == "metro"
        tok_note = "no tokenizer (--no-tokenizer)"
        if released is not None and not args.no_tokenizer:
            cls, n = write_released_tokenizer(transformers, released, vocab, tmp)
            tok_note = f"{cls} from {args.hf_tokenizer}: ids equal fairseq's on {n} lines"
        elif not args.no_tokenizer:
            cls, n = write_tokenizer(transformers, source, spm_path, os.path.join(tmp, ".spm"), tmp, extra, remote)
            shutil.rmtree(os.path.join(tmp, ".spm"))
            tok_note = f"{cls}: ids equal fairseq's on {n} lines and {n // 2} sentence pairs"
        worst = {}
        for kind in {"base", source.head_kind}:
            auto = getattr(transformers, AUTO_CLASSES[kind])
            loaded, info = auto.from_pretrained(tmp, trust_remote_code=remote, output_loading_info=True)
            # a head export's AutoModel has no trained pooler (BERT QA, MPNet, RoBERTa): not a hidden state
            missing = [k for k in info.get("missing_keys") or [] if not (kind == "base" and k.startswith("pooler."))]
            if missing:
                raise ExportError(f"{AUTO_CLASSES[kind]}.from_pretrained misses {sorted(missing)[0]}: nothing was written")
            got = hf_outputs(loaded, hf_ids, mask, kind)
            worst[kind] = _check(f"after {AUTO_CLASSES[kind]}.from_pretrained", max_difference(ours, got, mask))
        _default_permissions(tmp)
        if os.path.exists(outdir):
            shutil.rmtree(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    diffs = ", ".join(f"{AUTO_CLASSES[k]} {v:.1e}" for k, v in sorted(worst.items()))
    log(TOOL, f"verified after reload (max abs difference {diffs} <= {TOLERANCE:g}); {tok_note}")
    log(TOOL, f"wrote {args.outdir}" + (" (load with trust_remote_code=True)" if remote else ""))
    return family


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="metro pretraining checkpoint, metro-export output, or fine-tuned checkpoint")
    p.add_argument("outdir", help="transformers folder to write (save_pretrained layout, safetensors)")
    p.add_argument("--dict", help="dict.txt of pretraining (default: from the checkpoint's data folder)")
    p.add_argument("--spm-model", help="SentencePiece model of pretraining (default: DATA/spm.model)")
    p.add_argument("--head", help="which fine-tuned head to export when the checkpoint has several")
    p.add_argument("--sample-text", help="also check tokenizer ids on the first 200 lines of this text file")
    p.add_argument("--hf-tokenizer", metavar="HF_DIR",
                   help="the released folder a metro-import-hf model came from: its tokenizer and ids go back")
    p.add_argument("--no-tokenizer", action="store_true", help="export the model without a tokenizer")
    p.add_argument("--custom-code", action="store_true",
                   help="ship modeling_metro.py even where a stock class is exact")
    p.add_argument("--force", action="store_true", help="replace an existing OUTDIR")
    return p.parse_args(argv)


@one_line_errors(TOOL)
def export_command(argv=None) -> str:
    """The command line as a function: the family written (``metro``, ``roberta``, ...)."""
    return export(parse_args(argv))


def main(argv=None) -> None:
    export_command(argv)
