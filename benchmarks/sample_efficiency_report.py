"""Tables and plot of benchmarks/sample_efficiency.py."""
import statistics

import harness

LABELS = {"random": "random init", "roberta": "RoBERTa masked LM", "electra": "ELECTRA-style (RTD)",
          "metro": "METRO (RTD + CLM)", "metro_scl": "METRO + SCL", "metro_genlr": "METRO, generator lr x3",
          "metro_gdes": "METRO, GDES sharing", "metro_gdes_scl": "METRO, GDES + SCL"}
TASK_NAMES = {"sentiment": "review sentiment", "bbc": "BBC News topics"}


def finetune_summary(scores, runs, lrs):
    """{(arm, task, n): (median at the best lr, best lr, runs at that lr)}: GLUE practice, one grid for all."""
    out = {}
    for arm, task, n in sorted({(a, t, n) for a, t, n, _, _ in runs}, key=str):
        by_lr = {lr: [scores[r] for r in runs if r[:3] == (arm, task, n) and r[4] == lr] for lr in lrs}
        best = max(lrs, key=lambda lr: statistics.median(by_lr[lr]))
        out[arm, task, n] = (statistics.median(by_lr[best]), best, by_lr[best])
    return out


def report(args, pre, probes, scores, cosine, runs):
    arms, tasks = list(args.arms), list(TASK_NAMES)
    ft = finetune_summary(scores, runs, args.finetune_lr)
    print("## Sample efficiency at equal pretraining FLOPs\n")
    presets = ", ".join(f"{a} `{args.arm_presets[a]}`" for a in arms if a in args.arm_presets)
    print(f"machine: {harness.machine()}; presets: {presets or '-'}; budget {args.budget} RoBERTa updates of FLOPs "
          f"per arm; runs {args.jobs} at a time, {args.threads} thread(s) each\n")
    print("| arm | updates | FLOPs / update vs RoBERTa | analytic training PFLOP | training minutes | resumed | "
          "last MLM loss (bits) | last RTD recall | last sample temp | held-out token-state cosine |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arm in arms:
        p = pre.get(arm)
        if p is None:
            print(f"| {LABELS[arm]} | 0 | - | 0 | - | - | - | - | - | {cosine[arm]:.3f} |")
            continue
        last = p["last"]
        print(f"| {LABELS[arm]} | {p['updates']} | {p['flop_ratio']:.2f} | {p['pflops']:.2f} | {p['train_minutes']:.1f} | "
              f"{'yes' if p['resumed'] else 'no'} | {float(last.get('mlm_loss', last.get('loss', 'nan'))):.2f} | "
              f"{last.get('rtd_recall', '-')} | {last.get('sample_temp', '-')} | {cosine[arm]:.3f} |")
    for task in tasks:
        sizes = list(probes[arms[0], task]["by_n"])
        print(f"\n### Frozen-feature probe, {TASK_NAMES[task]} (dev accuracy %, median over seeds [min - max])\n")
        print("| arm | " + " | ".join(f"n = {n}" for n in sizes) + " | area (mean over log n) |")
        print("|---" * (len(sizes) + 2) + "|")
        for arm in arms:
            by_n = probes[arm, task]["by_n"]
            cells = " | ".join(f"{by_n[n]['median']:.1f} [{by_n[n]['min']:.1f} - {by_n[n]['max']:.1f}]" for n in sizes)
            print(f"| {LABELS[arm]} | {cells} | **{probes[arm, task]['area']:.2f}** |")
    if not runs:
        print("\n(fine-tuning not run: --no-finetune)")
    else:
        lp, decay = getattr(args, "head_only_updates", 0), getattr(args, "layer_lr_decay", 1.0)
        recipe = (f"LP-FT: {lp} head-only updates, then " if lp else "") + (
            f"layer-wise lr decay {decay:g}, " if decay != 1 else "") + "stock"
        print_finetune_table(arms, tasks, ft, recipe)
    plot(args, arms, tasks, probes, ft)
    return {"pretraining": pre, "cosine": cosine,
            "probe": {f"{a}/{t}": probes[a, t] for a in arms for t in tasks},
            "finetune": {f"{a}/{t}/n{n}": {"median": m, "lr": lr, "runs": v} for (a, t, n), (m, lr, v) in ft.items()}}


def finetune_sizes(ft):
    return [n for n in (300, "all") if any(k[2] == n for k in ft)]


def print_finetune_table(arms, tasks, ft, recipe="stock"):
    sizes = finetune_sizes(ft)
    print(f"\n### Fine-tuning ({recipe} sentence_prediction; median at the arm's best lr; runs at that lr)\n")
    print("| arm | " + " | ".join(f"{TASK_NAMES[t]} n = {n}" for t in tasks for n in sizes) + " |")
    print("|---" * (1 + len(sizes) * len(tasks)) + "|")
    for arm in arms:
        cells = []
        for t in tasks:
            for n in sizes:
                med, lr, vals = ft[arm, t, n]
                cells.append(f"**{med:.1f}** (lr {lr}; {', '.join(f'{v:.1f}' for v in vals)})")
        print(f"| {LABELS[arm]} | " + " | ".join(cells) + " |")


def plot(args, arms, tasks, probes, ft):
    rows = 2 if ft else 1
    fig, axes = harness.subplots(rows, len(tasks), figsize=(6 * len(tasks), 4 * rows), squeeze=False)
    for col, task in enumerate(tasks):
        ax = axes[0][col]
        for i, arm in enumerate(arms):
            by_n = probes[arm, task]["by_n"]
            ns = sorted(by_n, key=int)
            x = [int(n) for n in ns]
            ax.plot(x, [by_n[n]["median"] for n in ns], marker="o", color=f"C{i}",
                    label=f"{LABELS[arm]} (area {probes[arm, task]['area']:.1f})")
            ax.fill_between(x, [by_n[n]["min"] for n in ns], [by_n[n]["max"] for n in ns], color=f"C{i}", alpha=0.15)
        ax.axhline(probes[arms[0], task]["majority"], color="grey", lw=0.8, ls="--", label="majority class")
        ax.set_xscale("log")
        ax.set_xlabel("training labels n")
        ax.set_ylabel("dev accuracy (%)")
        ax.set_title(f"frozen-feature probe: {TASK_NAMES[task]}", fontsize=10)
        ax.legend(fontsize=7)
        if not ft:
            continue
        ax = axes[1][col]
        width = 0.8 / len(arms)
        for i, arm in enumerate(arms):
            for j, n in enumerate(finetune_sizes(ft)):
                med, _, vals = ft[arm, task, n]
                ax.bar(j + i * width, med, width, color=f"C{i}", alpha=0.7, label=LABELS[arm] if j == 0 else None)
                ax.scatter([j + i * width] * len(vals), vals, color="k", s=8)
        sizes = finetune_sizes(ft)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))],
                      ["n = 300" if n == 300 else "all labels" for n in sizes])
        low = min(min(v[2]) for k, v in ft.items() if k[1] == task)
        ax.set_ylim(max(0, low - 5), 100)
        ax.set_ylabel("dev accuracy (%)")
        ax.set_title(f"fine-tuning: {TASK_NAMES[task]} (median at best lr, runs as dots)", fontsize=10)
        ax.legend(fontsize=7)
    harness.save_plot(fig, args.plot)
