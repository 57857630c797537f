#!/usr/bin/env python
"""Where in the main model does pretraining show? The frozen-feature probe of every layer of the
arms that benchmarks/sample_efficiency.py pretrained, beside the lexical reference (a bag of
SentencePiece pieces), on both tasks at n <= 1000 labels (the issue's target-1 range).

    python benchmarks/probe_layers.py [--out outputs/bench/sample_efficiency] [--arms random roberta metro_gdes]

Reads OUT/pretrain/ARM (run sample_efficiency.py --pretrain-only first) and OUT/tasks. Each probe is
``scripts/probe_checkpoint.py --layer K`` (or ``--bag-of-pieces``) with 5 fixed stratified subsets per
n, written to OUT/probe_layers/*.json and skipped when it exists (resumable). Prints a Markdown table
of the area under the learning curve per arm and layer and writes a PNG.
"""
import argparse
import concurrent.futures
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from sample_efficiency import REPO, TASKS, log, run  # noqa: E402
from sample_efficiency_report import LABELS, TASK_NAMES  # noqa: E402

SIZES = ["100", "300", "1000"]


def checkpoint(arm, out):
    """The file the probe loads: RoBERTa's own checkpoint, a metro arm's export, and for random init
    the export of any metro arm (its architecture, untrained)."""
    pretrain = os.path.join(out, "pretrain")
    if arm == "roberta":
        return os.path.join(pretrain, "roberta", "checkpoint_last.pt")
    if arm != "random":
        return os.path.join(pretrain, arm, "main.pt")
    exports = sorted(os.path.join(pretrain, a, "main.pt") for a in os.listdir(pretrain)
                     if os.path.exists(os.path.join(pretrain, a, "main.pt")))
    if not exports:
        sys.exit(f"probe_layers: error: no metro export under {pretrain}: run sample_efficiency.py first")
    return exports[0]


def probe(arm, task, layer, args):
    """Probe results of one arm's layer (``None``: the bag of pieces) on one task."""
    name = f"{arm}_{task}_layer{layer}" if layer is not None else f"bag_of_pieces_{task}"
    path = os.path.join(args.out, "probe_layers", name + ".json")
    if not os.path.exists(path):
        log(f"[probe] {name}")
        features = ["--layer", layer] if layer is not None else ["--bag-of-pieces"]
        run([sys.executable, "scripts/probe_checkpoint.py", checkpoint(arm, args.out), "--task-dir",
             os.path.join(args.out, "tasks", TASKS[task]), "--data", args.data, "--sizes", *SIZES, "--seeds", 5,
             "--out-json", path, *features, *(["--random-init"] if arm == "random" else [])], threads=1)
    return json.load(open(path))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(REPO, "outputs", "bench", "sample_efficiency"),
                   help="a sample_efficiency.py results folder")
    p.add_argument("--data", default=os.path.join(REPO, "data", "bench-bin"), help="the arms' binarized corpus")
    p.add_argument("--arms", nargs="+", default=["random", "roberta", "metro_gdes"], choices=list(LABELS))
    p.add_argument("--layers", type=int, default=4, help="the main model's depth")
    p.add_argument("--jobs", type=int, default=2, help="probes at a time (one thread each)")
    p.add_argument("--plot", default=os.path.join(REPO, "docs", "benchmarks", "probe_layers.png"))
    args = p.parse_args()
    for arm in args.arms:
        if not os.path.exists(checkpoint(arm, args.out)):
            sys.exit(f"probe_layers: error: {checkpoint(arm, args.out)} is missing: run "
                     f"benchmarks/sample_efficiency.py --arms {arm} --pretrain-only first")
    jobs = [(a, t, k) for t in TASKS for a in args.arms for k in range(args.layers + 1)] + [
        ("random", t, None) for t in TASKS]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda j: probe(*j, args), jobs)))

    print(f"## Frozen-feature probe per layer (area over n = {', '.join(SIZES)}, 5 subsets each)\n")
    print(f"machine: {harness.machine()}; results folder {args.out}\n")
    for task in TASKS:
        bag = results["random", task, None]
        print(f"\n### {TASK_NAMES[task]} (majority {bag['majority']:.1f}; bag of pieces **{bag['area']:.2f}**: "
              + " / ".join(f"{bag['by_n'][n]['median']:.1f}" for n in SIZES) + ")\n")
        print("| arm | " + " | ".join(f"layer {k}" for k in range(args.layers + 1)) + " |")
        print("|---" * (args.layers + 2) + "|")
        for arm in args.arms:
            cells = [results[arm, task, k]["area"] for k in range(args.layers + 1)]
            best = max(cells)
            print(f"| {LABELS[arm]} | " + " | ".join(f"**{c:.2f}**" if c == best else f"{c:.2f}" for c in cells) + " |")
    plot(args, results)


def plot(args, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(5.5 * len(TASKS), 4))
    for ax, task in zip(axes, TASKS):
        for arm in args.arms:
            ax.plot(range(args.layers + 1), [results[arm, task, k]["area"] for k in range(args.layers + 1)],
                    marker="o", label=LABELS[arm])
        ax.axhline(results["random", task, None]["area"], color="grey", linestyle="--", label="bag of pieces")
        ax.set(title=TASK_NAMES[task], xlabel="layer (0: input embeddings)", ylabel="probe area (accuracy %)",
               xticks=range(args.layers + 1))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
