"""``metro-prepare-multilingual-corpus``: raw text per language -> one shared SentencePiece model ->
``DEST/<lang>/{train,valid}.{bin,idx}`` with one ``DEST/dict.txt``, for ``--task metro_pretraining``
(and fairseq's ``multilingual_masked_lm``).

The SentencePiece model is trained on lines sampled with p_i proportional to n_i ** alpha (n_i the
lines of language i): XLM's recipe, so a small language still gets pieces of its own. Example:

    metro-prepare-multilingual-corpus --train en=en.train.txt de=de.train.txt ru=ru.train.txt \
        --valid en=en.valid.txt de=de.valid.txt ru=ru.valid.txt --alpha 0.3 --vocab-size 32000 --destdir data-bin/multi

It reports per language: words, pieces, pieces per word (tokenizer fertility) and the unknown rate.
"""
import argparse
import os

import numpy as np

from ..data.language_probabilities import sampling_probabilities  # the task samples languages with it too
from .messages import fail, log, one_line_errors
from .prepare_corpus import check_text, fairseq_preprocess, train_sentencepiece, write_fairseq_dict

TOOL = "prepare_multilingual_corpus"


def parse_files(pairs, what):
    files = {}
    for pair in pairs:
        lang, sep, path = pair.partition("=")
        if not sep or not lang or not path:
            fail(TOOL, f"--{what} {pair}: give LANG=PATH, e.g. --{what} de=de.{what}.txt")
        if lang in files:
            fail(TOOL, f"--{what} names language {lang} twice")
        files[lang] = path
    return files


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def write_spm_sample(train, alpha, max_sentences, seed, out_path):
    """Lines of every language sampled with p_i ~ n_i^alpha; returns {lang: (n_i, p_i, drawn)}."""
    lines = {lang: read_lines(path) for lang, path in train.items()}
    counts = np.array([len(v) for v in lines.values()])
    probabilities = sampling_probabilities(counts, alpha)
    total = min(max_sentences, int(counts.sum()))
    rng = np.random.default_rng(seed)
    report = {}
    with open(out_path, "w", encoding="utf-8") as out:
        for (lang, text), n, p in zip(lines.items(), counts, probabilities):
            m = max(1, int(round(p * total)))
            for i in rng.choice(n, m, replace=bool(m > n)):
                out.write(text[i] + "\n")
            report[lang] = (int(n), float(p), m)
    return report


def encode(sp, src, dst):
    """SentencePiece pieces of ``src`` into ``dst``; returns (words, pieces, unknown pieces)."""
    words = pieces = unknown = 0
    unk = sp.unk_id()
    with open(src, encoding="utf-8") as fin, open(dst, "w", encoding="utf-8") as fout:
        for line in fin:
            line = line.strip()
            ids = sp.encode(line) if line else []  # blank lines keep document breaks
            words += len(line.split())
            pieces += len(ids)
            unknown += sum(i == unk for i in ids)
            fout.write(" ".join(sp.id_to_piece(i) for i in ids) + "\n")
    return words, pieces, unknown


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", nargs="+", required=True, metavar="LANG=PATH", help="raw training text per language")
    p.add_argument("--valid", nargs="+", required=True, metavar="LANG=PATH", help="raw validation text per language")
    p.add_argument("--destdir", required=True, help="output: DEST/dict.txt, DEST/spm.model, DEST/<lang>/")
    p.add_argument("--alpha", type=float, default=0.3,
                   help="SentencePiece training lines sampled with p_i ~ n_i^alpha (XLM-R 0.3; 1.0 = natural shares)")
    p.add_argument("--vocab-size", type=int, default=32000, help="SentencePiece vocabulary size")
    p.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"], help="SentencePiece model type")
    p.add_argument("--max-sentences", type=int, default=2_000_000, help="lines sampled to train SentencePiece")
    p.add_argument("--seed", type=int, default=1, help="seed of the SentencePiece sample")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="fairseq-preprocess workers")
    args = p.parse_args(argv)

    train, valid = parse_files(args.train, "train"), parse_files(args.valid, "valid")
    if set(train) != set(valid):
        fail(TOOL, f"--train has languages {','.join(sorted(train))} but --valid has {','.join(sorted(valid))}: give both for each")
    for lang in train:
        check_text(train[lang], f"{lang} training")
        check_text(valid[lang], f"{lang} validation")
    os.makedirs(args.destdir, exist_ok=True)
    prefix = os.path.join(args.destdir, "spm")
    sample = os.path.join(args.destdir, "spm.sample.txt")
    try:
        report = write_spm_sample(train, args.alpha, args.max_sentences, args.seed, sample)
    except ValueError as e:
        fail(TOOL, str(e).replace("--multilang-sampling-alpha", "--alpha"))
    log(TOOL, f"SentencePiece sample, alpha {args.alpha}:")
    log(TOOL, "| language | lines | natural share | sampled share | sampled lines |")
    total_n, total_m = sum(r[0] for r in report.values()), sum(r[2] for r in report.values())
    for lang, (n, _, m) in report.items():
        log(TOOL, f"| {lang} | {n} | {n / total_n:.4f} | {m / total_m:.4f} | {m} |")
    log(TOOL, f"training a {args.model_type} SentencePiece model with {args.vocab_size} pieces")
    train_sentencepiece(sample, prefix, args.vocab_size, args.model_type, args.max_sentences)
    os.remove(sample)
    dict_path = os.path.join(args.destdir, "dict.txt")
    log(TOOL, f"wrote {write_fairseq_dict(prefix, dict_path)} symbols to {dict_path}")

    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    log(TOOL, "| language | split | words | pieces | pieces per word | unknown rate |")
    for lang in train:
        lang_dir = os.path.join(args.destdir, lang)
        os.makedirs(lang_dir, exist_ok=True)
        for split, src in (("train", train[lang]), ("valid", valid[lang])):
            words, pieces, unknown = encode(sp, src, os.path.join(lang_dir, f"{split}.spm.txt"))
            log(TOOL, f"| {lang} | {split} | {words} | {pieces} | {pieces / max(words, 1):.3f} | {unknown / max(pieces, 1):.5f} |")
        fairseq_preprocess(lang_dir, os.path.join(lang_dir, "train.spm.txt"), os.path.join(lang_dir, "valid.spm.txt"),
                           dict_path, args.workers, f" for {lang}")
        for split in ("train", "valid"):
            os.remove(os.path.join(lang_dir, f"{split}.spm.txt"))
    log(TOOL, f"done: train with  fairseq-train {args.destdir} --user-dir metro_fairseq --task metro_pretraining "
        f"--multilang-sampling-alpha 0.3 --valid-subset valid,{','.join('valid_' + lang for lang in train)} ...")


if __name__ == "__main__":
    main()
