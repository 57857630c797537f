#!/usr/bin/env python
"""Adversarial (SiFT) against plain fine-tuning, same checkpoint, same label subsets, same seeds.

    python benchmarks/adversarial_finetune.py [--source outputs/bench/sample_efficiency] [--arm metro] [--lr 1e-3]

Runs on the learning-curve harness of benchmarks/sample_efficiency.py (run that first, at least with
--pretrain-only): the arm's exported main model, the fixed stratified n = 300 subsets of review
sentiment and BBC topics, and its plain fine-tuning runs, which are reused where they exist (same
folder, same command). The adversarial runs differ only in the criterion:
``adversarial_sentence_prediction`` (criterions/adversarial_sentence_prediction.py, DeBERTa's SiFT)
with its defaults unless --adv-options overrides them. One lr for both, chosen before the comparison.
Resumable: finished runs are skipped. Prints a Markdown table (median [min - max] over seeds, the
paired difference, minutes per run) and writes SOURCE/adversarial_finetune_ARM.json and a PNG.
"""
import argparse
import concurrent.futures
import json
import logging
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import sample_efficiency as se  # noqa: E402
from sample_efficiency_report import TASK_NAMES  # noqa: E402

CRITERIA = {"plain": ("sentence_prediction",), "sift": ("adversarial_sentence_prediction",)}


def run_minutes(run_dir):
    found = re.findall(r"done training in ([\d.]+) seconds", open(os.path.join(run_dir, "train.log")).read())
    return float(found[-1]) / 60 if found else float("nan")


def spread(values):
    return f"{statistics.median(values):.1f} [{min(values):.1f} - {max(values):.1f}]"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency"),
                   help="results folder of benchmarks/sample_efficiency.py (its --out)")
    p.add_argument("--data", help="the binarized pretraining corpus (its dictionary and SentencePiece model)")
    p.add_argument("--arm", default="metro", choices=[a for a in se.ARMS if a not in ("random", "roberta")],
                   help="pretraining arm whose checkpoint is fine-tuned (a metro model: SiFT perturbs its embeddings)")
    p.add_argument("--lr", default="1e-3")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--adv-options", default="", help="extra criterion options, e.g. '--adv-epsilon 0.05'")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    p.add_argument("--min-finetune-updates", type=int, default=300)
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "adversarial_finetune.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args.out, args.finetune_sizes, args.finetune_seeds = args.source, [300], args.seeds
    ckpt = os.path.join(args.source, "pretrain", args.arm, "main.pt")
    if not os.path.exists(ckpt):
        sys.exit(f"adversarial_finetune: no exported checkpoint {ckpt}; run benchmarks/sample_efficiency.py "
                 f"--arms {args.arm} --no-finetune first (or pass --source)")
    data = harness.data_bin(args.data)
    raw = se.fetch_tasks(args)
    binarized = se.binarize_subsets(args, data, raw)
    model_args = se.run([sys.executable, "scripts/export_main_model.py", "--show-args", ckpt]).split()
    options = args.adv_options.split()
    criteria = dict(CRITERIA, sift=CRITERIA["sift"] + tuple(options))
    folders = {"plain": "finetune",  # sample_efficiency.py's own runs
               "sift": "finetune_sift" + ("_" + re.sub(r"[^\w.]+", "", args.adv_options) if options else "")}
    runs = [(task, seed, c) for task in se.TASKS for seed in args.seeds for c in criteria]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        scores = dict(zip(runs, pool.map(
            lambda r: se.finetune(args.arm, ckpt, model_args, r[0], 300, r[1], args.lr, args, binarized,
                                  criterion=criteria[r[2]], folder=folders[r[2]]), runs)))
    minutes = {r: run_minutes(se.finetune_dir(args, folders[r[2]], args.arm, r[0], 300, r[1], args.lr)) for r in runs}
    results = report(args, scores, minutes)
    with open(os.path.join(args.source, f"adversarial_finetune_{args.arm}.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(args, results)


def report(args, scores, minutes):
    print(f"## SiFT against plain fine-tuning, {args.arm} checkpoint, n = 300, lr {args.lr}, seeds {args.seeds}\n")
    print(f"machine: {harness.machine()}; SiFT options: {args.adv_options or 'the criterion defaults'}\n")
    print("| task | plain | SiFT | SiFT - plain, per seed | median difference | minutes per run, SiFT / plain |")
    print("|---|---|---|---|---|---|")
    results = {"arm": args.arm, "lr": args.lr, "seeds": args.seeds, "adv_options": args.adv_options, "tasks": {}}
    for task in se.TASKS:
        by = {c: [scores[task, s, c] for s in args.seeds] for c in CRITERIA}
        diff = [b - a for a, b in zip(by["plain"], by["sift"])]
        time_ratio = (statistics.median(minutes[task, s, "sift"] for s in args.seeds)
                      / statistics.median(minutes[task, s, "plain"] for s in args.seeds))
        print(f"| {TASK_NAMES[task]} | {spread(by['plain'])} | {spread(by['sift'])} | "
              f"{' / '.join(f'{d:+.1f}' for d in diff)} | {statistics.median(diff):+.1f} | {time_ratio:.2f} |")
        results["tasks"][task] = dict(by, difference=diff, time_ratio=time_ratio)
    return results


def plot(args, results):
    tasks = results["tasks"]
    fig, axes = harness.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6))
    for ax, (task, r) in zip(axes, tasks.items()):
        for seed, a, b in zip(args.seeds, r["plain"], r["sift"]):
            ax.plot([0, 1], [a, b], "o-", color="0.6", label=f"seed {seed}" if seed == args.seeds[0] else None)
        ax.plot([0, 1], [statistics.median(r["plain"]), statistics.median(r["sift"])], "s-", color="C3", lw=2,
                label="median")
        ax.set_xticks([0, 1], ["plain", "SiFT"])
        ax.set_xlim(-0.4, 1.4)
        ax.set_title(f"{TASK_NAMES[task]}, n = 300")
        ax.set_ylabel("dev accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{args.arm} checkpoint, lr {args.lr}: adversarial vs plain fine-tuning (paired by seed)")
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
