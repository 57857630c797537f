"""``metro-prepare-token-classification``: word-tagged sentences (part-of-speech, named entities) ->
fairseq data for ``--task token_classification``, encoded with the SentencePiece model and dictionary
of pretraining.

    metro-prepare-token-classification --train train.tsv --valid dev.tsv \
        --spm-model data-bin/corpus/spm.model --dict data-bin/corpus/dict.txt --destdir pos-bin

Input: one word per line, ``WORD<TAB>TAG`` (the first and last columns, split on tabs, or on spaces
when a line has no tab: CoNLL-2003 files work, their ``-DOCSTART-`` lines skipped), a blank line
between sentences. Each word's tag goes to its first piece (``data/first_piece_labels.py``). Writes
``DESTDIR/input0`` (pieces) and ``DESTDIR/labels`` (one label per piece, its dictionary holding exactly
the training tags, or ``--labels``).
"""
import argparse
import collections
import os
import tempfile

from ..data.first_piece_labels import first_piece_labels
from ..data.sentencepiece_file import load_sentencepiece
from .messages import fail, log, one_line_errors
from .prepare_corpus import fairseq_preprocess

TOOL = "prepare_token_classification"


def read_tagged_sentences(path):
    """[(words, tags, line of the first word)] of a one-word-per-line file; names the file and line of a bad line."""
    sentences, words, tags, first = [], [], [], None
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if line.startswith("-DOCSTART-"):  # CoNLL-2003's document separators
                continue
            if not line.strip():
                if words:
                    sentences.append((words, tags, first))
                words, tags = [], []
                continue
            columns = line.split("\t") if "\t" in line else line.split()
            if len(columns) < 2 or not columns[0].strip() or not columns[-1].strip():
                fail(TOOL, f"{path}:{line_no} is not WORD<TAB>TAG (or WORD ... TAG): {line[:60]!r}")
            if not words:
                first = line_no
            words.append(columns[0].strip())
            tags.append(columns[-1].strip())
    if words:
        sentences.append((words, tags, first))
    if not sentences:
        fail(TOOL, f"{path} holds no sentences")
    return sentences


def write_split(sentences, sp, tmp, split, path):
    encode = lambda word: sp.encode(word, out_type=str)  # noqa: E731
    with open(os.path.join(tmp, f"input0.{split}"), "w", encoding="utf-8") as pieces_out, \
            open(os.path.join(tmp, f"labels.{split}"), "w", encoding="utf-8") as labels_out:
        for words, tags, line_no in sentences:
            try:
                pieces, labels = first_piece_labels(words, tags, encode)
            except ValueError as e:
                fail(TOOL, f"{path}: the sentence at line {line_no}: {e}: drop or replace that word")
            pieces_out.write(" ".join(pieces) + "\n")
            labels_out.write(" ".join(labels) + "\n")


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="training sentences, WORD<TAB>TAG per line")
    p.add_argument("--valid", required=True, help="validation sentences, same layout")
    p.add_argument("--spm-model", required=True, help="SentencePiece model of pretraining (spm.model)")
    p.add_argument("--dict", required=True, help="dict.txt of pretraining")
    p.add_argument("--destdir", required=True, help="output folder (fairseq DATA for --task token_classification)")
    p.add_argument("--labels", nargs="+",
                   help="the label set (default: the training file's tags); give it when a small training file may "
                        "lack a tag the dev file has, so every subset of one task shares one label dictionary")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    for path, what in ((args.train, "--train"), (args.valid, "--valid"), (args.spm_model, "--spm-model"),
                       (args.dict, "--dict")):
        if not os.path.isfile(path):
            fail(TOOL, f"{what} {path} does not exist")
    paths = {"train": args.train, "valid": args.valid}
    splits = {split: read_tagged_sentences(path) for split, path in paths.items()}
    counts = collections.Counter(tag for _, tags, _ in splits["train"] for tag in tags)
    if args.labels:
        outside = sorted(set(counts) - set(args.labels))
        if outside:
            fail(TOOL, f"{args.train} has tags outside --labels ({', '.join(outside[:5])}): add them to --labels")
        counts = collections.Counter({tag: counts[tag] for tag in args.labels})
    known = "--labels" if args.labels else "the training file"
    unseen = sorted({tag for _, tags, _ in splits["valid"] for tag in tags} - set(counts))
    if unseen:
        fail(TOOL, f"{args.valid} has tags {known} lacks ({', '.join(unseen[:5])}): the classifier could never "
                   "predict them; add examples to --train, list every tag with --labels, or map them to a known tag")
    sp = load_sentencepiece(args.spm_model)
    with tempfile.TemporaryDirectory() as tmp:
        for split, sentences in splits.items():
            write_split(sentences, sp, tmp, split, paths[split])
            log(TOOL, f"{split}: {len(sentences)} sentences, {sum(len(w) for w, _, _ in sentences)} words")
        label_dict = os.path.join(tmp, "label_dict.txt")
        with open(label_dict, "w", encoding="utf-8") as f:  # exactly the tags: no padding symbols
            f.writelines(f"{tag} {n}\n" for tag, n in (counts.items() if args.labels else counts.most_common()))
        for name, srcdict in (("input0", args.dict), ("labels", label_dict)):
            fairseq_preprocess(os.path.join(args.destdir, name), os.path.join(tmp, f"{name}.train"),
                               os.path.join(tmp, f"{name}.valid"), srcdict, args.workers,
                               f" for {args.destdir}/{name}")
    log(TOOL, f"{len(counts)} tags -> {args.destdir}")


if __name__ == "__main__":
    main()
