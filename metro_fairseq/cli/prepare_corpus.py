"""``metro-prepare-corpus``: raw text -> SentencePiece model -> fairseq-binarized data for
``--task metro_pretraining``.

Input files hold one sentence (or paragraph) per line; a blank line ends a document (used by
``--sample-break-mode complete_doc``). Example:

    metro-prepare-corpus --train corpus.train.txt --valid corpus.valid.txt \
        --vocab-size 32000 --destdir data-bin/corpus

writes ``DESTDIR/spm.model``, ``DESTDIR/dict.txt`` and ``DESTDIR/{train,valid}.{bin,idx}``.

With ``--hf-tokenizer HF_DIR`` (a released model's folder, as ``metro-import-hf`` takes) the text is
split by that tokenizer instead and dict.txt is its vocabulary, as the import writes it: the ids are
the ones the imported checkpoint's embedding rows are in.
"""
import argparse
import functools
import os
import subprocess
import sys

from ..data.sentencepiece_file import load_sentencepiece
from ..errors import MetroError
from .messages import fail, log, one_line_errors

TOOL = "prepare_corpus"


def check_text(path: str, what: str) -> int:
    """Words in the text file ``path``; MetroError if it is missing or holds none."""
    if not os.path.isfile(path):
        raise MetroError(f"{what} file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        words = sum(len(line.split()) for line in f)
    if words == 0:
        raise MetroError(f"{what} file {path} is empty or only whitespace: give it text, one sentence per line")
    return words


def train_sentencepiece(train: str, prefix: str, vocab_size: int, model_type: str, max_sentences: int):
    import sentencepiece as spm

    # fairseq's Dictionary adds <s>, <pad>, </s>, <unk> itself; SentencePiece keeps its own
    # ids for them, which never reach fairseq because we binarize pieces, not ids.
    try:
        spm.SentencePieceTrainer.train(
            input=train,
            model_prefix=prefix,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=1.0,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            minloglevel=2,
        )
    except RuntimeError as e:
        raise MetroError(f"SentencePiece training failed ({e}); for a small corpus lower --vocab-size") from None


def write_fairseq_dict(prefix: str, dict_path: str) -> int:
    """One line ``piece count`` per SentencePiece piece, specials excluded (fairseq adds its own)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    n = 0
    with open(dict_path, "w", encoding="utf-8") as out:
        for i in range(sp.get_piece_size()):
            if sp.is_control(i) or sp.is_unknown(i):
                continue
            # fairseq loads counts only for ordering; SentencePiece's order is kept
            out.write(f"{sp.id_to_piece(i)} {sp.get_piece_size() - i}\n")
            n += 1
    return n


def encode(prefix: str, src: str, dst: str) -> int:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            line = line.strip()
            encoded = sp.encode(line, out_type=str) if line else []  # blank lines keep document breaks
            pieces += len(encoded)
            fout.write(" ".join(encoded) + "\n")
    return pieces


def hf_vocabulary(hf_dir: str, dict_path: str):
    """The released tokenizer of ``hf_dir`` and its vocabulary written as dict.txt."""
    from ..hf.vocabulary import load_tokenizer, vocabulary_of

    tokenizer = load_tokenizer(hf_dir)
    vocab = vocabulary_of(tokenizer)
    vocab.write_dict(dict_path)
    return tokenizer, len(vocab.symbols)


def encode_hf(tokenizer, src: str, dst: str) -> int:
    pieces = 0
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            line = line.strip()
            encoded = tokenizer.tokenize(line) if line else []  # blank lines keep document breaks
            pieces += len(encoded)
            fout.write(" ".join(encoded) + "\n")
    return pieces


def fairseq_preprocess(destdir: str, trainpref: str, validpref: str, srcdict, workers: int, what: str = ""):
    """``fairseq-preprocess --only-source`` in a subprocess (``srcdict`` None: it builds the dictionary);
    its output goes to stderr and a MetroError is raised if it fails."""
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--only-source", "--trainpref", trainpref,
           "--validpref", validpref, "--destdir", destdir, "--workers", str(workers)]
    if srcdict:
        cmd += ["--srcdict", srcdict]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise MetroError(f"fairseq-preprocess failed{what} (its output is above)")


def spm_prefix(args) -> str:
    """The SentencePiece model's prefix: ``--spm-model``'s, or one trained into DESTDIR."""
    if args.spm_model:
        return args.spm_model[: -len(".model")] if args.spm_model.endswith(".model") else args.spm_model
    prefix = os.path.join(args.destdir, "spm")
    log(TOOL, f"training a {args.model_type} SentencePiece model with {args.vocab_size} pieces")
    train_sentencepiece(args.train, prefix, args.vocab_size, args.model_type, args.max_sentences)
    return prefix


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="raw training text, one sentence per line")
    p.add_argument("--valid", required=True, help="raw validation text, one sentence per line")
    p.add_argument("--destdir", required=True, help="output directory (fairseq DATA for fairseq-train)")
    p.add_argument("--vocab-size", type=int, default=32000, help="SentencePiece vocabulary size")
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"], help="SentencePiece model type")
    p.add_argument("--max-sentences", type=int, default=2_000_000, help="lines sampled to train SentencePiece")
    p.add_argument("--spm-model", help="reuse this SentencePiece model (PREFIX.model) instead of training one")
    p.add_argument("--hf-tokenizer", metavar="HF_DIR",
                   help="split with this transformers folder's tokenizer and use its vocabulary (metro-import-hf)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fairseq-preprocess workers")
    args = p.parse_args(argv)

    train_words = check_text(args.train, "training")
    valid_words = check_text(args.valid, "validation")
    log(TOOL, f"training text: {train_words:,} words; validation text: {valid_words:,} words")
    if args.hf_tokenizer and args.spm_model:
        fail(TOOL, "--hf-tokenizer and --spm-model both choose the tokenizer: pass one")
    if args.spm_model:
        if not os.path.isfile(args.spm_model):
            fail(TOOL, f"--spm-model {args.spm_model} does not exist")
        load_sentencepiece(args.spm_model)
    os.makedirs(args.destdir, exist_ok=True)
    dict_path = os.path.join(args.destdir, "dict.txt")
    if args.hf_tokenizer:
        tokenizer, n = hf_vocabulary(args.hf_tokenizer, dict_path)
        log(TOOL, f"wrote the {n + 5} tokens of {args.hf_tokenizer}'s tokenizer to {dict_path}")
        encoder = functools.partial(encode_hf, tokenizer)
    else:
        encoder = functools.partial(encode, spm_prefix(args))
        log(TOOL, f"wrote {write_fairseq_dict(encoder.args[0], dict_path)} symbols to {dict_path}")

    for split, src in (("train", args.train), ("valid", args.valid)):
        dst = os.path.join(args.destdir, f"{split}.spm.txt")
        log(TOOL, f"{split}: {encoder(src, dst):,} pieces -> {dst}")
    log(TOOL, "binarizing with fairseq-preprocess")
    fairseq_preprocess(args.destdir, os.path.join(args.destdir, "train.spm.txt"),
                       os.path.join(args.destdir, "valid.spm.txt"), dict_path, args.workers)
    for split in ("train", "valid"):
        os.remove(os.path.join(args.destdir, f"{split}.spm.txt"))
    if args.hf_tokenizer:
        log(TOOL, f"done: continue an imported checkpoint with  fairseq-train {args.destdir} --task metro_pretraining "
                  "--finetune-from-model OUT.pt  and the flags metro-import-hf printed (docs/import.md)")
        return
    log(TOOL, "done: pretrain with  fairseq-hydra-train --config-dir metro_fairseq/config/pretraining "
              f"--config-name metro_base task.data={args.destdir}  (presets and flags: docs/pretraining.md)")


if __name__ == "__main__":
    main()
