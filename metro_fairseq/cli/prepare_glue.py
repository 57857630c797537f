"""``metro-prepare-glue``: official GLUE folders -> fairseq data for ``--task sentence_prediction``,
encoded with the SentencePiece model and dictionary of pretraining.

    metro-prepare-glue --glue-dir glue_data --spm-model data-bin/corpus/spm.model \
        --dict data-bin/corpus/dict.txt --destdir glue-bin [--tasks RTE MRPC ...]

A model imported with ``metro-import-hf`` gives ``--hf-tokenizer HF_DIR`` (the released folder) instead of
``--spm-model``, with the dict.txt the import wrote.

writes ``DESTDIR/TASK/{input0,input1,label}`` (input1 only for sentence pairs). Classification labels
are binarized with their own dictionary; STS-B scores are divided by 5 and written as
``label/{train,valid}.label`` text, as fairseq's regression mode reads them. MNLI's dev_mismatched
becomes the split ``valid1`` (evaluate it with ``--valid-subset valid,valid1``).
"""
import argparse
import csv
import functools
import os
import tempfile

from ..data.sentencepiece_file import load_sentencepiece
from .messages import fail, log, one_line_errors
from .prepare_corpus import fairseq_preprocess

TOOL = "prepare_glue"

# per task: folder, header row?, input columns, label column, {split: file}
TASKS = {
    "CoLA": ("CoLA", False, [3], 1, {"train": "train.tsv", "valid": "dev.tsv"}),
    "SST-2": ("SST-2", True, [0], 1, {"train": "train.tsv", "valid": "dev.tsv"}),
    "MRPC": ("MRPC", True, [3, 4], 0, {"train": "train.tsv", "valid": "dev.tsv"}),
    "QQP": ("QQP", True, [3, 4], 5, {"train": "train.tsv", "valid": "dev.tsv"}),
    "STS-B": ("STS-B", True, [7, 8], 9, {"train": "train.tsv", "valid": "dev.tsv"}),
    "MNLI": ("MNLI", True, [8, 9], -1, {"train": "train.tsv", "valid": "dev_matched.tsv", "valid1": "dev_mismatched.tsv"}),
    "QNLI": ("QNLI", True, [1, 2], 3, {"train": "train.tsv", "valid": "dev.tsv"}),
    "RTE": ("RTE", True, [1, 2], 3, {"train": "train.tsv", "valid": "dev.tsv"}),
    "WNLI": ("WNLI", True, [1, 2], 3, {"train": "train.tsv", "valid": "dev.tsv"}),
    # not GLUE: BBC News topics in the SST-2 layout (scripts/fetch_bbc_news.py)
    "BBC": ("BBC", True, [0], 1, {"train": "train.tsv", "valid": "dev.tsv"}),
}
REGRESSION = {"STS-B"}


def read_rows(path, has_header, inputs, label):
    """(sentences..., label) per row of one official TSV; names the file and line on any problem."""
    rows = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for line_no, row in enumerate(reader, start=1):
            if has_header and line_no == 1:
                continue
            needed = max(max(inputs), label if label >= 0 else 0) + 1
            if len(row) < needed:
                fail(TOOL, f"{path}:{line_no} has {len(row)} columns, expected at least {needed}: not the official GLUE layout")
            rows.append([row[i] for i in inputs] + [row[label]])
    if not rows:
        fail(TOOL, f"{path} holds no examples")
    return rows


def binarize(src_prefix, dest, srcdict, splits, workers):
    validpref = ",".join(f"{src_prefix}.{s}" for s in splits if s.startswith("valid"))
    fairseq_preprocess(dest, f"{src_prefix}.train", validpref, srcdict, workers, f" for {dest}")


def prepare_task(task, args, pieces):
    """``pieces``: text -> the tokenizer's pieces, as dict.txt spells them."""
    folder, header, inputs, label, files = TASKS[task]
    task_dir = os.path.join(args.glue_dir, folder)
    if not os.path.isdir(task_dir):
        fail(TOOL, f"{task_dir} does not exist: --glue-dir must hold the official GLUE folders ({', '.join(TASKS)})")
    dest = os.path.join(args.destdir, task)
    with tempfile.TemporaryDirectory() as tmp:
        for split, name in files.items():
            path = os.path.join(task_dir, name)
            if not os.path.isfile(path):
                fail(TOOL, f"{path} is missing (official GLUE layout expected)")
            rows = read_rows(path, header, inputs, label)
            for i in range(len(inputs)):
                with open(os.path.join(tmp, f"input{i}.{split}"), "w", encoding="utf-8") as out:
                    for row in rows:
                        out.write(" ".join(pieces(row[i])) + "\n")
            with open(os.path.join(tmp, f"label.{split}"), "w", encoding="utf-8") as out:
                for row in rows:
                    out.write((f"{float(row[-1]) / 5.0}" if task in REGRESSION else row[-1]) + "\n")
            log(TOOL, f"{task} {split}: {len(rows)} examples from {path}")
        for i in range(len(inputs)):
            binarize(os.path.join(tmp, f"input{i}"), os.path.join(dest, f"input{i}"), args.dict, files, args.workers)
        if task in REGRESSION:
            os.makedirs(os.path.join(dest, "label"), exist_ok=True)
            for split in files:
                os.replace(os.path.join(tmp, f"label.{split}"), os.path.join(dest, "label", f"{split}.label"))
        else:
            binarize(os.path.join(tmp, "label"), os.path.join(dest, "label"), None, files, args.workers)
    log(TOOL, f"{task} -> {dest}")


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glue-dir", required=True, help="folder holding the official GLUE task folders")
    tokenizer = p.add_mutually_exclusive_group(required=True)
    tokenizer.add_argument("--spm-model", help="SentencePiece model of pretraining (spm.model)")
    tokenizer.add_argument("--hf-tokenizer", metavar="HF_DIR",
                           help="the released transformers folder of a metro-import-hf model: its tokenizer")
    p.add_argument("--dict", required=True, help="dict.txt of pretraining")
    p.add_argument("--destdir", required=True, help="output folder, one subfolder per task")
    p.add_argument("--tasks", nargs="+", default=None, choices=sorted(TASKS), help="default: every task found")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    for path, what in ((args.spm_model, "--spm-model"), (args.dict, "--dict")):
        if path is not None and not os.path.isfile(path):
            fail(TOOL, f"{what} {path} does not exist")
    if not os.path.isdir(args.glue_dir):
        fail(TOOL, f"--glue-dir {args.glue_dir} does not exist")
    tasks = args.tasks or [t for t, spec in TASKS.items() if os.path.isdir(os.path.join(args.glue_dir, spec[0]))]
    if not tasks:
        fail(TOOL, f"no GLUE task folder ({', '.join(TASKS)}) in {args.glue_dir}")
    if args.hf_tokenizer:
        from ..hf.vocabulary import load_tokenizer

        pieces = load_tokenizer(args.hf_tokenizer).tokenize
    else:
        sp = load_sentencepiece(args.spm_model)
        pieces = functools.partial(sp.encode, out_type=str)
    for task in tasks:
        prepare_task(task, args, pieces)


if __name__ == "__main__":
    main()
