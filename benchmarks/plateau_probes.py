#!/usr/bin/env python
"""Probes against the unigram plateau: short METRO runs on the demo configuration (4 x 128 main,
2-layer generator, lr 7e-4, 32 x 128 tokens, seed 1), each changing one recipe knob, logged at the
same updates so the table compares like with like.

    python benchmarks/plateau_probes.py [--updates 1200] [--probes demo clm_mixture ...] [--jobs 2]

Per probe and checkpoint update: generator MLM loss (bits), RTD loss against its prior (the binary
entropy of the replace rate: what an RTD head that knows nothing achieves), RTD recall, the
main model's token-state cosine (collapse indicator), CLM accuracy and the sampling temperature.
Runs go --jobs at a time with one CPU thread each (the comparison is per update, so sharing the
CPU does not bias it); finished probes are skipped and interrupted ones resume from
checkpoint_last.pt when the command is run again. Prints a Markdown table, writes a PNG.
"""
import argparse
import concurrent.futures
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metro_fairseq.rtd_signal import binary_entropy_bits  # noqa: E402
from metro_fairseq.fairseq_log import read_log  # noqa: E402

TEMP_RELEASE = ["--sampling-temperature-start", "3", "--sampling-temperature-release-bits", "0.5",
                "--sampling-temperature-anneal-updates", "500"]
# name -> (extra fairseq-train options, what the probe tests)
PROBES = {
    "demo": ([], "the demo as it was: RTD only"),
    "clm_weighted": (["--clm"], "CLM as COCO-LM's code (CE x stopgrad P(replaced))"),
    "clm_mixture": (["--clm", "--clm-form", "mixture"], "CLM as COCO-LM's paper (copy mixture: always a gradient)"),
    "gen_801010": (["--leave-unmasked-prob", "0.1", "--random-token-prob", "0.1"],
                   "generator sees BERT's 80/10/10 inputs"),
    "clm_mixture_801010": (["--clm", "--clm-form", "mixture", "--leave-unmasked-prob", "0.1",
                            "--random-token-prob", "0.1"], "CLM mixture + generator 80/10/10"),
    "temp_release": (TEMP_RELEASE,
                     "T=3 until the generator is 0.5 bits under the unigram entropy, then cosine to 1 in 500"),
    "rtd_warmup": (["--rtd-warmup-updates", "1000"], "RTD weight ramped linearly from 0 over 1000 updates"),
    "clm_mixture_rtd_warmup": (["--clm", "--clm-form", "mixture", "--rtd-warmup-updates", "1000"],
                               "CLM mixture + RTD weight ramped from 0 over 1000 updates"),
    "clm_mixture_temp": (["--clm", "--clm-form", "mixture", *TEMP_RELEASE],
                         "CLM mixture + released temperature"),
    "clm_mixture_temp_801010": (["--clm", "--clm-form", "mixture", *TEMP_RELEASE, "--leave-unmasked-prob", "0.1",
                                 "--random-token-prob", "0.1"], "CLM mixture + released temperature + 80/10/10"),
    "metro_recipe": (["--clm", *TEMP_RELEASE], "metro_cpu_small's objective: weighted CLM + released temperature"),
    "metro_recipe_gdes": (["--clm", *TEMP_RELEASE, "--embedding-sharing", "gdes"],
                          "the same with DeBERTaV3's GDES: RTD's gradient no longer reaches the generator's embeddings"),
}
DEMO = ["--task", "metro_pretraining", "--criterion", "metro", "--arch", "metro", "--encoder-layers", 4,
        "--encoder-embed-dim", 128, "--encoder-ffn-embed-dim", 512, "--encoder-attention-heads", 4,
        "--generator-layers", 2, "--max-positions", 512, "--relative-position-buckets", 32,
        "--tokens-per-sample", 128, "--sample-break-mode", "complete_doc", "--batch-size", 32,
        "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--weight-decay", 0.01,
        "--clip-norm", 2.0, "--lr", "7e-4", "--lr-scheduler", "polynomial_decay", "--warmup-updates", 100,
        "--total-num-update", 6000, "--disable-validation", "--save-interval-updates", 200,
        "--keep-interval-updates", 1, "--no-epoch-checkpoints", "--cpu", "--num-workers", 0, "--seed", 1,
        "--log-format", "json", "--log-interval", 50]
FIELDS = ("mlm_loss", "rtd_loss", "replace_rate", "rtd_recall", "token_cos", "clm_acc", "sample_temp")


def run_probe(name, data, out, updates):
    run_dir = os.path.join(out, name)
    log = os.path.join(run_dir, "train.log")
    if os.path.exists(log) and "done training" in open(log).read():
        return log
    os.makedirs(run_dir, exist_ok=True)
    cmd = [sys.executable, "-m", "fairseq_cli.train", data, "--user-dir", harness.USER_DIR, *map(str, DEMO),
           *PROBES[name][0], "--max-update", str(updates), "--save-dir", run_dir, "--log-file", log]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    print(f"probe {name}: {' '.join(PROBES[name][0]) or '(demo)'}", flush=True)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"plateau_probes: probe {name} failed:\n{result.stderr[-3000:]}")
    return log


def interval_stats(log):
    """{num_updates: {field: value}} of the training-interval lines of a fairseq --log-file."""
    rows = read_log(log, require=True).by_update()
    return {u: {k: v for k, v in stats.items() if k in FIELDS} for u, stats in rows.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    p.add_argument("--updates", type=int, default=1200)
    p.add_argument("--at", type=int, nargs="+", default=[200, 600, 1000], help="updates the table reports")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data", help="binarized corpus (default: the demo corpus in data/bench-bin)")
    p.add_argument("--out", default=os.path.join(harness.REPO, "outputs", "bench", "plateau_probes"))
    p.add_argument("--plot", default=os.path.join(harness.REPO, "docs", "benchmarks", "plateau_probes.png"))
    args = p.parse_args()
    data = harness.data_bin(args.data)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        logs = dict(zip(args.probes, pool.map(lambda n: run_probe(n, data, args.out, args.updates), args.probes)))
    stats = {name: interval_stats(log) for name, log in logs.items()}

    print("\n## Plateau probes\n")
    print(f"machine: {harness.machine()}; demo configuration, seed 1, {args.updates} updates each\n")
    print("| probe | what it changes | update | generator MLM (bits) | RTD loss vs prior (bits) | RTD recall | "
          "token_cos | CLM acc | sample temp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.probes:
        for u in args.at:
            row = stats[name].get(u)
            if row is None:
                continue
            prior = binary_entropy_bits(row.get("replace_rate", 0))
            cell = lambda k, f="{:.3f}": f.format(row[k]) if k in row else "-"  # noqa: E731
            print(f"| {name} | {PROBES[name][1]} | {u} | {cell('mlm_loss', '{:.2f}')} | "
                  f"{row.get('rtd_loss', float('nan')):.3f} vs {prior:.3f} | {cell('rtd_recall')} | "
                  f"{cell('token_cos', '{:.2f}')} | {cell('clm_acc')} | {cell('sample_temp', '{:.2f}')} |")

    fig, axes = harness.subplots(1, 3, figsize=(15, 4))
    for i, name in enumerate(args.probes):
        us = sorted(stats[name])
        color = f"C{i % 10}"
        axes[0].plot(us, [stats[name][u].get("mlm_loss") for u in us], color=color, label=name)
        axes[1].plot(us, [stats[name][u].get("rtd_loss", 0) - binary_entropy_bits(stats[name][u].get("replace_rate", 0))
                          for u in us], color=color, label=name)
        axes[2].plot(us, [stats[name][u].get("token_cos") for u in us], color=color, label=name)
    for ax, title in zip(axes, ("generator MLM loss (bits)", "RTD loss minus its prior (bits; < 0 = signal)",
                                "token_cos (1 = collapsed)")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("update")
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[0].legend(fontsize=7)
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
