"""``metro-probe``: frozen-feature probe of a checkpoint: how well a linear classifier on its mean-pooled
main-model states separates a labelled task, as a learning curve over the number of training labels.

    metro-probe CHECKPOINT --task-dir DIR [--sizes 100 300 1000 all] [--seeds 5]
        [--out-json probe.json] [--random-init] [--data DATA_BIN] [--layer K | --bag-of-pieces]

DIR holds ``train.tsv`` and ``dev.tsv`` in the SST-2 layout (a header line, then
``sentence<TAB>label``; labels are any strings, any number of classes). The text is encoded with the
checkpoint's own SentencePiece model and dict.txt (its data directory, or --data). For each n and
seed a fixed stratified subset of train (scripts never read dev for it) fits an L2 logistic
regression whose C is chosen on a held-out quarter of that subset; dev accuracy is reported as the
median and range over seeds, and the area under the curve as the mean over n on a log axis.
Works for metro pretraining checkpoints, exported main models and fairseq RoBERTa checkpoints;
--random-init probes the same architecture untrained. --layer K probes the states after layer K
(0: the normalised input embeddings) instead of the last layer's; --bag-of-pieces probes log(1 + count)
of each SentencePiece piece instead of any model states: the lexical reference a checkpoint should beat.
"""
import argparse
import json
import os

import torch

from ..evaluation.checkpoint_features import (
    ProbeError, bag_of_pieces, check_layer, encode_texts, load_main_model, mean_pooled_states,
)
from ..evaluation.label_subsets import parse_sizes, read_labelled_tsv, stratified_subset
from ..evaluation.linear_probe import accuracy, fit_with_selected_C, learning_curve_area, summarise
from .messages import fail, one_line_errors

TOOL = "probe_checkpoint"


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--task-dir", required=True, help="folder with train.tsv and dev.tsv (SST-2 layout)")
    p.add_argument("--data", help="data directory with spm.model and dict.txt (default: the checkpoint's)")
    p.add_argument("--sizes", nargs="+", default=["100", "300", "1000", "all"], help="training-set sizes; 'all' = full")
    p.add_argument("--seeds", type=int, default=5, help="subsets per size up to 1000 labels")
    p.add_argument("--seeds-large", type=int, default=3, help="subsets per size above 1000 labels")
    p.add_argument("--max-length", type=int, default=256, help="tokens per text, <s> included (longer texts are cut)")
    p.add_argument("--random-init", action="store_true", help="probe the same architecture, untrained")
    p.add_argument("--hf-tokenizer", metavar="HF_DIR",
                   help="a metro-import-hf model's released folder: split texts with its tokenizer (no spm.model)")
    features = p.add_mutually_exclusive_group()
    features.add_argument("--layer", type=int, help="mean-pool the states after this layer (0: the input "
                                                    "embeddings; default: the last layer)")
    features.add_argument("--bag-of-pieces", action="store_true",
                          help="probe log(1 + piece counts) instead of the model's states (lexical reference)")
    p.add_argument("--out-json", help="write {area, by_n: {n: {median, scores, ...}}} here")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.seeds < 1 or args.seeds_large < 1:
        fail(TOOL, "--seeds and --seeds-large must be at least 1")
    try:
        train_x, train_y = read_labelled_tsv(os.path.join(args.task_dir, "train.tsv"))
        dev_x, dev_y = read_labelled_tsv(os.path.join(args.task_dir, "dev.tsv"))
        sizes = parse_sizes(args.sizes, len(train_x))
        model, vocab, spm_path, kind = load_main_model(args.checkpoint, args.data, args.random_init,
                                                     hf_tokenizer=args.hf_tokenizer)
        check_layer(model, kind, args.layer)
    except FileNotFoundError as e:
        fail(TOOL, f"{e.filename} does not exist: --task-dir must hold train.tsv and dev.tsv (SST-2 layout)")
    except (ValueError, ProbeError) as e:
        fail(TOOL, str(e))
    classes = sorted(set(train_y))
    unknown = sorted(set(dev_y) - set(classes))
    if unknown:
        fail(TOOL, f"dev.tsv has labels {unknown[:3]} that train.tsv never uses: the splits do not belong together")
    index = {c: i for i, c in enumerate(classes)}
    max_length = min(args.max_length, model.max_positions() if hasattr(model, "max_positions") else args.max_length)
    sequences = encode_texts(train_x + dev_x, vocab, spm_path, max_length)
    feats = (bag_of_pieces(sequences, len(vocab)) if args.bag_of_pieces
             else mean_pooled_states(model, kind, sequences, vocab.pad(), layer=args.layer))
    train_f, dev_f = feats[: len(train_x)], feats[len(train_x):]
    train_t = torch.tensor([index[c] for c in train_y])
    dev_t = torch.tensor([index[c] for c in dev_y])
    majority = 100.0 * max(dev_y.count(c) for c in classes) / len(dev_y)

    by_n = {}
    for n in sizes:
        seeds = range(1, 1 + (args.seeds if n <= 1000 else args.seeds_large))
        scores = []
        for seed in seeds:
            subset = torch.tensor(stratified_subset(train_y, n, seed))
            probe = fit_with_selected_C(train_f[subset], train_t[subset], len(classes), seed)
            scores.append(accuracy(probe.predict(dev_f), dev_t))
        by_n[n] = summarise(scores)
    area = learning_curve_area({n: s["median"] for n, s in by_n.items()})

    what = "random initialisation of " if args.random_init else ""
    source = ("bag of pieces" if args.bag_of_pieces else "last layer" if args.layer is None else f"layer {args.layer}")
    print(f"probe of {what}{args.checkpoint} ({kind}, {source}, {feats.size(1)} features) on {args.task_dir}: "
          f"{len(classes)} classes, {len(train_x)} train / {len(dev_x)} dev, majority class {majority:.1f}")
    print("| n | seeds | median dev accuracy | min - max |")
    print("|---|---|---|---|")
    for n, s in by_n.items():
        print(f"| {n} | {len(s['scores'])} | {s['median']:.1f} | {s['min']:.1f} - {s['max']:.1f} |")
    print(f"area under the learning curve (mean over log n): {area:.2f}")
    if args.out_json:
        os.makedirs(os.path.dirname(os.path.abspath(args.out_json)), exist_ok=True)
        with open(args.out_json, "w") as f:
            json.dump({"area": area, "by_n": {str(n): s for n, s in by_n.items()}, "majority": majority,
                       "classes": classes, "checkpoint": args.checkpoint, "random_init": args.random_init,
                       "features": source}, f, indent=1)


if __name__ == "__main__":
    main()
