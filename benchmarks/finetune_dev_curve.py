#!/usr/bin/env python
"""Dev accuracy after every epoch of one fine-tuning run per arm, with the recipe and the fixed n = 300
subsets of benchmarks/sample_efficiency.py: does an arm that ends behind peak early and then decline
(too many updates), or level off lower?

    python benchmarks/finetune_dev_curve.py [--arms random roberta metro_gdes] [--task bbc] [--seed 2] [--lr 1e-3]

Reads OUT/pretrain/ARM (run sample_efficiency.py first). Evaluating dev every epoch does not change
training, so each run ends where sample_efficiency.py's run of the same seed and lr ends. Runs go to
OUT/finetune_curve and are skipped when done (resumable). Prints a Markdown table and writes a PNG.
"""
import argparse
import concurrent.futures
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sample_efficiency as se  # noqa: E402
from probe_layers import checkpoint  # noqa: E402
from sample_efficiency_report import LABELS, TASK_NAMES  # noqa: E402
from metro_fairseq.fairseq_log import VALID, read_log  # noqa: E402

FOLDER = "finetune_curve"


def dev_curve(train_log):
    """{update: dev accuracy} from a fine-tuning log (one validation per epoch)."""
    return {u: stats["accuracy"] for u, stats in read_log(train_log, require=True).by_update(VALID).items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency"),
                   help="sample_efficiency.py's results folder")
    p.add_argument("--arms", nargs="+", default=["random", "roberta", "metro_gdes"], choices=se.ARMS)
    p.add_argument("--task", choices=list(se.TASKS), default="bbc")
    p.add_argument("--seed", type=int, default=2, help="which n = 300 subset")
    p.add_argument("--lr", default="1e-3")
    p.add_argument("--preset", default="metro_cpu_small", help="the main model's size, for the roberta arm")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per run (the benchmark's runs use 1; other counts change the order of "
                        "CPU reductions and so the result, and go to OUT/finetune_curve_threadsN)")
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "finetune_dev_curve.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args.finetune_seeds, args.finetune_sizes, args.min_finetune_updates = [args.seed], [300], 300
    folder = FOLDER + (f"_threads{args.threads}" if args.threads != 1 else "")
    data = harness.data_bin(None)
    binarized = se.binarize_subsets(args, data, se.fetch_tasks(args))
    preset = se.load_preset(args.preset)
    ckpts = {a: checkpoint(a, args.out) for a in args.arms}
    missing = [c for c in ckpts.values() if not os.path.exists(c)]
    if missing:
        sys.exit(f"finetune_dev_curve: error: {missing[0]} is missing: run sample_efficiency.py with these arms first")

    def one(arm):
        se.finetune(arm, ckpts[arm], se.model_args_of(arm, ckpts[arm], preset), args.task, 300, args.seed, args.lr,
                    args, binarized, folder=folder, validate_interval=1)
        return dev_curve(os.path.join(se.finetune_dir(args, folder, arm, args.task, 300, args.seed, args.lr), "train.log"))

    curves = dict(zip(args.arms, concurrent.futures.ThreadPoolExecutor(args.jobs).map(one, args.arms)))
    report(args, curves)


def report(args, curves):
    updates = sorted(next(iter(curves.values())))
    shown = [u for u in updates if u % 30 == 0]
    print(f"\n### Dev accuracy during fine-tuning ({TASK_NAMES[args.task]}, n = 300, subset {args.seed}, "
          f"lr {args.lr}, {args.threads} thread{'s' if args.threads > 1 else ''} per run)\n")
    print("| arm | " + " | ".join(f"{u}" for u in shown) + " | best (update) | last |")
    print("|---" * (len(shown) + 3) + "|")
    for arm, curve in curves.items():
        best = max(curve, key=curve.get)
        print(f"| {LABELS[arm]} | " + " | ".join(f"{curve[u]:.1f}" for u in shown)
              + f" | {curve[best]:.1f} ({best}) | **{curve[updates[-1]]:.1f}** |")
    fig, ax = harness.subplots(figsize=(7, 4))
    for arm, curve in curves.items():
        ax.plot(sorted(curve), [curve[u] for u in sorted(curve)], marker=".", label=LABELS[arm])
    ax.set(xlabel="fine-tuning update (one dev evaluation per epoch)", ylabel="dev accuracy (%)",
           title=f"{TASK_NAMES[args.task]}, n = 300 (subset {args.seed}), lr {args.lr}")
    ax.grid(alpha=0.3)
    ax.legend()
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
