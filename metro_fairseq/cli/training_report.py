"""Summarise a metro pretraining run from its fairseq log and plot the training curves.

    python scripts/training_report.py --log outputs/demo/train.log --plot outputs/demo/training_curves.png

The log is what ``fairseq-train --log-format json --log-file LOG`` writes (or its captured output;
fairseq-hydra-train: ``common.log_format=json common.log_file=LOG``).
"""
import argparse
import os
import sys

from .. import fairseq_log
from ..rtd_signal import binary_entropy_bits

# mean cosine between token states above which the main model counts as collapsed (random init ~0.01-0.2)
COLLAPSED = 0.9


def read_log(path):
    """Per-interval training stats and validation stats (subset ``valid``) of a fairseq JSON log, as
    lists of {name: float} in update order; raises fairseq_log.NoJsonLines when it has none."""
    log = fairseq_log.read_log(path, require=True)
    return [r.stats for r in log.train_inner()], [r.stats for r in log.valid()]


def plot(train, valid, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["num_updates"] for r in train]
    vsteps = [r["num_updates"] for r in valid]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(steps, [r["mlm_loss"] for r in train], label="generator MLM (train)")
    ax.plot(vsteps, [r["mlm_loss"] for r in valid], "o--", label="generator MLM (valid)")
    ax.set_title("generator masked-LM loss (bits/token)")
    ax = axes[1]
    ax.plot(steps, [r["rtd_loss"] for r in train], label="RTD (train)")
    ax.plot(vsteps, [r["rtd_loss"] for r in valid], "o--", label="RTD (valid)")
    ax.set_title("replaced-token detection loss (bits/token)")
    ax = axes[2]
    ax.plot(steps, [r["rtd_acc"] for r in train], label="RTD accuracy")
    ax.plot(steps, [1 - r["replace_rate"] for r in train], ":", label="all-original baseline")
    ax.plot(steps, [r["rtd_precision"] for r in train], label="precision (replaced)")
    ax.plot(steps, [r["rtd_recall"] for r in train], label="recall (replaced)")
    ax.plot(steps, [r["mlm_acc"] for r in train], label="generator accuracy")
    if all("token_cos" in r for r in train):
        ax.plot(steps, [r["token_cos"] for r in train], "--", label="token-state cosine (1 = collapsed)")
    ax.set_ylim(0, 1)
    ax.set_title("accuracies (train)")
    for ax in axes:
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", required=True, help="fairseq-train log (--log-format json)")
    p.add_argument("--plot", help="write the training curves to this PNG")
    p.add_argument("--save-dir", help="checkpoint directory to mention in the report")
    args = p.parse_args(argv)
    if not os.path.isfile(args.log):
        sys.exit(f"training_report: error: log {args.log} does not exist")
    try:
        train, valid = read_log(args.log)
    except fairseq_log.NoJsonLines as e:
        sys.exit(f"training_report: error: {e}")
    if not train:
        sys.exit(f"training_report: error: no training interval stats in {args.log}: train longer than --log-interval")
    first, last = train[0], train[-1]
    rows = [
        ("updates", f"{first['num_updates']:.0f}", f"{last['num_updates']:.0f}"),
        ("total loss (MLM + weighted RTD, CLM, SCL)", f"{first['loss']:.3f}", f"{last['loss']:.3f}"),
        ("generator MLM loss (bits)", f"{first['mlm_loss']:.3f}", f"{last['mlm_loss']:.3f}"),
        ("generator accuracy", f"{first['mlm_acc']:.3f}", f"{last['mlm_acc']:.3f}"),
        ("RTD loss (bits)", f"{first['rtd_loss']:.4f}", f"{last['rtd_loss']:.4f}"),
        ("RTD accuracy", f"{first['rtd_acc']:.4f}", f"{last['rtd_acc']:.4f}"),
        ("all-original baseline accuracy", f"{1 - first['replace_rate']:.4f}", f"{1 - last['replace_rate']:.4f}"),
        ("replace rate", f"{first['replace_rate']:.4f}", f"{last['replace_rate']:.4f}"),
        ("RTD precision / recall", f"{first['rtd_precision']:.3f} / {first['rtd_recall']:.3f}",
         f"{last['rtd_precision']:.3f} / {last['rtd_recall']:.3f}"),
    ]
    rows.append(("RTD prior: H(replace rate) (bits)", f"{binary_entropy_bits(first['replace_rate']):.4f}",
                 f"{binary_entropy_bits(last['replace_rate']):.4f}"))
    for key, name in (("token_cos", "token-state cosine (collapse indicator)"), ("clm_loss", "CLM loss (bits)"),
                      ("sample_temp", "generator sampling temperature")):
        if key in first and key in last:
            rows.append((name, f"{first[key]:.3f}", f"{last[key]:.3f}"))
    print("| training interval | first | last |\n|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a} | {b} |")
    if last.get("token_cos", 0.0) > COLLAPSED:
        print(
            f"\nwarning: the main model's token states are nearly parallel (token_cos {last['token_cos']:.3f}): its "
            "representations have collapsed and will not fine-tune well. This happens when RTD has no signal (RTD "
            "accuracy at the all-original baseline, recall ~0), typically while the generator sits at the unigram "
            "plateau: its samples are then as frequent as the originals and undetectable without context. "
            "See docs/benchmarks.md (sample efficiency) for what we measured.\n"
        )
    if valid:
        v = valid[-1]
        margin = v["rtd_acc"] - (1 - v["replace_rate"])
        print(
            f"\nvalidation at update {v['num_updates']:.0f}: MLM loss {v['mlm_loss']:.3f} bits, "
            f"RTD accuracy {v['rtd_acc']:.4f} vs {1 - v['replace_rate']:.4f} for always answering 'original' "
            f"({margin:+.4f}), replace rate {v['replace_rate']:.4f}, RTD precision {v['rtd_precision']:.3f} "
            f"recall {v['rtd_recall']:.3f}"
        )
    if args.plot:
        plot(train, valid, args.plot)
        print(f"plot: {args.plot}")
    print(f"log: {args.log}")
    if args.save_dir:
        print(f"checkpoints: {args.save_dir} (checkpoint_last.pt, checkpoint_best.pt)")


if __name__ == "__main__":
    main()
