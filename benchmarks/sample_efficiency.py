#!/usr/bin/env python
"""Sample efficiency: METRO against RoBERTa masked-LM pretraining of the same main-model size, at
equal wall-clock budget and at an equal number of updates, judged by fine-tuning on the review
sentiment data (3 seeds each, plus random initialisation).

    python benchmarks/sample_efficiency.py [--minutes 15] [--out outputs/bench/sample_efficiency]

1. METRO (generator + RTD) pretrains for --minutes of training time: N updates.
2. RoBERTa (fairseq's roberta + masked_lm, same main size and batch) pretrains for N updates (equal
   updates), then continues in the same run to --minutes of cumulative training time (equal time:
   fairseq's --stop-time-hours counts time across restarts).
3. Each of the three checkpoints and a random initialisation fine-tune with fairseq's
   sentence_prediction, the same recipe for all, at each --finetune-lr with every seed; an arm's
   score is the median over seeds at its best learning rate (GLUE practice).
Also reported: the mean cosine similarity between the token states of each pretrained main model on
held-out corpus text (~1 means collapsed representations; METRO logs it during training as token_cos).
Pretraining runs alone (nothing else should use the CPU meanwhile: the budget is wall clock);
fine-tuning runs --jobs at a time. Finished steps are reused when the command is run again.
Prints a Markdown table, writes a PNG.
"""
import argparse
import concurrent.futures
import logging
import os
import re
import shutil
import statistics
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REPO = harness.REPO
ENV = dict(os.environ, PYTHONWARNINGS="ignore")


def fairseq_train(args, log, threads=None):
    os.makedirs(os.path.dirname(log), exist_ok=True)
    cmd = [sys.executable, "-m", "fairseq_cli.train"] + [str(a) for a in args] + ["--log-file", log]
    env = dict(ENV, OMP_NUM_THREADS=str(threads)) if threads else ENV
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"sample_efficiency: fairseq-train failed:\n{result.stderr[-3000:]}")


def done(log):
    return os.path.exists(log) and "done training" in open(log).read()


def log_points(log):
    """(num_updates, masked-LM loss in bits, wall seconds) of every training-interval line
    (``key=value`` fields) of a fairseq --log-file."""
    points = []
    for line in open(log):
        fields = dict(re.findall(r"(\w+)=([\d.]+)", line))
        if "num_updates" in fields:
            points.append((int(fields["num_updates"]), float(fields.get("mlm_loss", fields.get("loss", "nan"))),
                           float(fields.get("wall", 0))))
    return points


def token_cos_points(log):
    """(num_updates, token_cos) of every training-interval line that logs the collapse indicator."""
    return [(int(u), float(c)) for c, u in re.findall(r"token_cos=([\d.]+).*?num_updates=(\d+)", open(log).read())]


def token_state_cosine(checkpoint, data, sequences=64, length=128):
    """Mean cosine similarity between the main model's token states on held-out corpus text (the
    first ``sequences`` valid blocks): ~0.01-0.2 for a healthy model, 1.0 for a collapsed one."""
    import torch

    import metro_fairseq  # noqa: F401  (safe globals for the weights-only loader)
    from fairseq import checkpoint_utils
    from fairseq.data import data_utils
    from metro_fairseq.criterions.token_similarity import token_similarity_terms

    models, _, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={"data": data})
    model, vocab = models[0].eval(), task.source_dictionary
    held_out = data_utils.load_indexed_dataset(os.path.join(data, "valid"), vocab)
    seqs = [torch.cat([held_out[i].new_tensor([vocab.bos()]), held_out[i][: length - 1]])
            for i in range(min(sequences, len(held_out)))]
    tokens = data_utils.collate_tokens(seqs, vocab.pad())
    with torch.no_grad():
        states = model.encode(tokens) if hasattr(model, "encode") else model(tokens, features_only=True)[0]
    return token_similarity_terms(states, tokens.eq(vocab.pad()))["token_cos"].item()


def train_stats(log):
    """(final num_updates, wall-clock seconds of the run, last interval loss in bits) from the log."""
    text = open(log).read()
    updates = max(int(u) for u in re.findall(r"num_updates[= ](\d+)", text))
    points = log_points(log)
    return updates, max(w for _, _, w in points), points[-1][1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=15.0, help="pretraining budget per system")
    p.add_argument("--data", help="binarized corpus (default: the demo corpus, prepared into data/bench-bin)")
    p.add_argument("--out", default=os.path.join(REPO, "outputs", "bench", "sample_efficiency"))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--lr", default="2e-3", help="pretraining peak learning rate (both systems)")
    p.add_argument("--metro-args", default="--generator-layers 1",
                   help="extra fairseq-train options of the METRO run (quoted), e.g. '--generator-layers 2'")
    p.add_argument("--finetune-lr", nargs="+", default=["1e-4", "3e-4", "1e-3"],
                   help="fine-tuning learning rates; each arm is scored at its best")
    p.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at a time (one CPU thread each)")
    p.add_argument("--plot", default=os.path.join(REPO, "docs", "benchmarks", "sample_efficiency.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # importing fairseq sets the root logger to DEBUG
    data = harness.data_bin(args.data)
    os.makedirs(args.out, exist_ok=True)
    hours = args.minutes / 60

    size = ["--encoder-layers", 4, "--encoder-embed-dim", 128, "--encoder-ffn-embed-dim", 512,
            "--encoder-attention-heads", 4, "--max-positions", 512]
    pretrain = [data, "--user-dir", harness.USER_DIR, *size, "--tokens-per-sample", 128,
                "--sample-break-mode", "complete_doc", "--batch-size", 32, "--optimizer", "adam",
                "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--weight-decay", 0.01, "--clip-norm", 2.0,
                "--lr", args.lr, "--lr-scheduler", "polynomial_decay", "--warmup-updates", 200,
                "--total-num-update", 100000, "--disable-validation", "--no-epoch-checkpoints", "--cpu",
                "--num-workers", 1, "--seed", 1, "--log-format", "simple", "--log-interval", 50]
    metro_args = ["--task", "metro_pretraining", "--criterion", "metro", "--arch", "metro",
                  *shlex.split(args.metro_args)]
    roberta_args = ["--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta"]

    metro_dir, rob_dir = os.path.join(args.out, "metro"), os.path.join(args.out, "roberta")
    metro_log, rob_log = os.path.join(metro_dir, "train.log"), os.path.join(rob_dir, "train.log")
    if not done(metro_log):
        print(f"pretraining METRO for {args.minutes} min", flush=True)
        fairseq_train(pretrain + metro_args + ["--stop-time-hours", hours, "--max-update", 100000,
                                               "--save-dir", metro_dir], metro_log)
    n_metro, t_metro, loss_metro = train_stats(metro_log)
    if n_metro <= 0:  # --max-update 0 would mean "no limit" to fairseq
        sys.exit(f"sample_efficiency: no training updates found in {metro_log}")
    equal_updates = os.path.join(args.out, "roberta_equal_updates.pt")
    if not os.path.exists(equal_updates):
        print(f"pretraining RoBERTa for {n_metro} updates", flush=True)
        fairseq_train(pretrain + roberta_args + ["--max-update", n_metro, "--save-dir", rob_dir], rob_log)
        shutil.copy(os.path.join(rob_dir, "checkpoint_last.pt"), equal_updates)
    rob_updates_stats = train_stats(rob_log)
    rob_time_log = os.path.join(rob_dir, "train_time.log")
    if not done(rob_time_log):
        print(f"continuing RoBERTa to {args.minutes} min of training time", flush=True)
        fairseq_train(pretrain + roberta_args + ["--stop-time-hours", hours, "--max-update", 100000,
                                                 "--save-dir", rob_dir], rob_time_log)
    n, _, loss = train_stats(rob_time_log)
    # the equal-updates run is its first part; a resumed run's wall clock restarts at 0, so add
    # the continuation's per-interval training time
    continued = sum(float(t) for t in re.findall(r"train_wall=([\d.]+)", open(rob_time_log).read()))
    rob_time_stats = (n, rob_updates_stats[1] + continued, loss)

    exported = os.path.join(args.out, "metro_main.pt")
    if not os.path.exists(exported):
        subprocess.run([sys.executable, "scripts/export_main_model.py", os.path.join(metro_dir, "checkpoint_last.pt"),
                        exported], cwd=REPO, env=ENV, check=True, capture_output=True)
    reviews = os.path.join(args.out, "reviews-bin", "SST-2")
    if not os.path.exists(os.path.join(reviews, "label", "dict.txt")):
        subprocess.run([sys.executable, "scripts/fetch_review_data.py", "--outdir", os.path.join(args.out, "reviews"),
                        "--cache-dir", os.path.join(REPO, "data", "download")], cwd=REPO, env=ENV, check=True)
        subprocess.run([sys.executable, "scripts/prepare_glue.py", "--glue-dir", os.path.join(args.out, "reviews"),
                        "--tasks", "SST-2", "--spm-model", os.path.join(data, "spm.model"), "--dict",
                        os.path.join(data, "dict.txt"), "--destdir", os.path.join(args.out, "reviews-bin")],
                       cwd=REPO, env=ENV, check=True)
    with open(os.path.join(reviews, "..", "..", "reviews", "SST-2", "dev.tsv")) as f:
        labels = [ln.rstrip("\n").rsplit("\t", 1)[-1] for ln in f][1:]
    majority = 100 * max(labels.count("0"), labels.count("1")) / len(labels)
    train_size = sum(1 for _ in open(os.path.join(args.out, "reviews", "SST-2", "train.tsv"))) - 1
    updates = -(-train_size // 32)

    arms = {
        "METRO (equal time and updates)": (["--arch", "metro"], exported, os.path.join(metro_dir, "checkpoint_last.pt")),
        "RoBERTa, equal updates": (["--arch", "roberta"], equal_updates, equal_updates),
        "RoBERTa, equal time": (["--arch", "roberta"], *[os.path.join(rob_dir, "checkpoint_last.pt")] * 2),
        "random initialisation": (["--arch", "metro"], None, None),
    }

    def finetune(arm, lr, seed):
        arch, ckpt, _ = arms[arm]
        run_dir = os.path.join(args.out, "finetune", re.sub(r"\W+", "_", arm).strip("_"), f"lr{lr}_seed{seed}")
        log = os.path.join(run_dir, "train.log")
        if not done(log):
            shutil.rmtree(run_dir, ignore_errors=True)
            os.makedirs(run_dir)
            print(f"fine-tuning {arm}, lr {lr}, seed {seed}", flush=True)
            fairseq_train([
                reviews, "--user-dir", harness.USER_DIR, "--task", "sentence_prediction", "--criterion",
                "sentence_prediction", "--num-classes", 2, "--init-token", 0, "--separator-token", 2, *arch, *size,
                *(["--finetune-from-model", ckpt] if ckpt else []), "--batch-size", 32,
                "--required-batch-size-multiple", 1, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
                "--adam-eps", "1e-6", "--weight-decay", 0.01, "--lr", lr, "--lr-scheduler",
                "polynomial_decay", "--warmup-updates", updates // 16, "--total-num-update", updates,
                "--max-epoch", 1, "--best-checkpoint-metric", "accuracy", "--maximize-best-checkpoint-metric",
                "--no-save", "--seed", seed, "--cpu", "--num-workers", 0, "--log-format", "simple",
                "--log-interval", 100, "--save-dir", run_dir,
            ], log, threads=max(1, (os.cpu_count() or 1) // args.jobs))
        return max(float(m) for m in re.findall(r"valid on 'valid' subset.*?\| accuracy ([\d.]+)", open(log).read()))

    runs = [(arm, lr, seed) for arm in arms for lr in args.finetune_lr for seed in args.seeds]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        accuracy = dict(zip(runs, pool.map(lambda run: finetune(*run), runs)))
    medians = {(arm, lr): statistics.median(accuracy[arm, lr, s] for s in args.seeds) for arm in arms
               for lr in args.finetune_lr}
    best_lr = {arm: max(args.finetune_lr, key=lambda lr: medians[arm, lr]) for arm in arms}
    cosine = {arm: token_state_cosine(probe, data) if probe else None for arm, (_, _, probe) in arms.items()}

    pre = {
        "METRO (equal time and updates)": (n_metro, t_metro, loss_metro),
        "RoBERTa, equal updates": rob_updates_stats,
        "RoBERTa, equal time": rob_time_stats,
        "random initialisation": (0, 0.0, None),
    }
    print("## Sample efficiency\n")
    print(f"machine: {harness.machine()}")
    print(f"main model 4 layers x 128 (FFN 512, 4 heads), METRO options `{args.metro_args}`; 32 x 128 tokens per "
          f"update, peak lr {args.lr}; budget {args.minutes} min of training time; fine-tuning: {train_size} reviews, "
          f"1 epoch, batch 32, lr {', '.join(args.finetune_lr)}, seeds {args.seeds}; majority class {majority:.1f}\n")
    lr_columns = " | ".join(f"median at lr {lr}" for lr in args.finetune_lr)
    print(f"| initialisation | pretraining updates | training minutes | final pretraining MLM loss (bits) | "
          f"token-state cosine | {lr_columns} | dev accuracy (best lr) | runs at best lr |")
    print("|---" * (7 + len(args.finetune_lr)) + "|")
    for arm in arms:
        n, t, loss = pre[arm]
        loss_text = f"{loss:.2f}" + (" (generator)" if arm.startswith("METRO") else "") if loss is not None else "-"
        cos_text = f"{cosine[arm]:.3f}" if cosine[arm] is not None else "-"
        per_lr = " | ".join(f"{medians[arm, lr]:.1f}" for lr in args.finetune_lr)
        runs_text = ", ".join(f"{accuracy[arm, best_lr[arm], s]:.1f}" for s in args.seeds)
        print(f"| {arm} | {n} | {t / 60:.1f} | {loss_text} | {cos_text} | {per_lr} | "
              f"**{medians[arm, best_lr[arm]]:.1f}** (lr {best_lr[arm]}) | {runs_text} |")

    fig, axes = harness.subplots(1, 3, figsize=(14, 3.8))
    for label, log in (("METRO generator MLM", metro_log), ("RoBERTa MLM", rob_log), (None, rob_time_log)):
        pts = log_points(log)
        if pts:
            axes[0].plot([u for u, _, _ in pts], [l for _, l, _ in pts], color="C0" if "METRO" in (label or "") else "C1",
                         label=label)
    axes[0].set_xlabel("update")
    axes[0].set_ylabel("masked-LM loss (bits)")
    axes[0].axvline(n_metro, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=8)
    axes[0].set_title("pretraining")
    cos_pts = token_cos_points(metro_log)
    axes[1].plot([u for u, _ in cos_pts], [c for _, c in cos_pts], color="C0", label="METRO main model (training batches)")
    for arm, color, marker in (("METRO (equal time and updates)", "C0", "D"), ("RoBERTa, equal updates", "C1", "o"),
                               ("RoBERTa, equal time", "C1", "s")):
        axes[1].scatter([pre[arm][0]], [cosine[arm]], color=color, marker=marker, label=f"{arm} (held-out)")
    axes[1].set_ylim(0, 1.05)
    axes[1].set_xlabel("update")
    axes[1].set_ylabel("mean cosine between token states")
    axes[1].legend(fontsize=7)
    axes[1].set_title("collapse indicator (1 = all states alike)")
    names = list(arms)
    for i, arm in enumerate(names):
        scores = [accuracy[arm, best_lr[arm], s] for s in args.seeds]
        axes[2].scatter([i] * len(scores), scores, color="grey", s=12)
        axes[2].bar(i, medians[arm, best_lr[arm]], width=0.6, alpha=0.6)
    axes[2].axhline(majority, color="red", lw=0.8, ls="--", label="majority class")
    axes[2].set_xticks(range(len(names)), [n.replace(", ", ",\n").replace(" (", "\n(") + f"\nlr {best_lr[n]}"
                                           for n in names], fontsize=7)
    axes[2].set_ylim(majority - 5, max(accuracy.values()) + 3)
    axes[2].set_ylabel("review sentiment dev accuracy")
    axes[2].legend(fontsize=8)
    axes[2].set_title("fine-tuning (median at best lr, seeds as dots)")
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
