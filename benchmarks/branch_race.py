#!/usr/bin/env python
"""The branch race: what an extra FLOP buys. One masked-LM checkpoint continued two ways at equal extra
analytic FLOPs, then probed on BBC topics and POS tagging.

    python benchmarks/branch_race.py [--extra 775] [--lr 3e-4] [--jobs 2]

- Start: sample_efficiency.py's RoBERTa arm at budget 6,200 (4 x 128, past the unigram plateau; run
  ``python benchmarks/sample_efficiency.py --arms roberta --no-finetune`` first).
- mlm: fairseq's roberta + masked_lm continued from it.
- metro: the same weights as a metro checkpoint (benchmarks/roberta_to_metro.py: exact main model, GDES,
  a generator of its lower 2 layers starting with its LM head), continued with RTD + CLM (weights 50 / 1)
  at sampling temperature 1.
- metro_release (``--arms``): metro with the self-releasing temperature schedule of metro_cpu_small (T = 3
  until the generator is 0.5 bits under the unigram entropy, then a cosine to 1 over 500 updates): on a
  generator already past the plateau it should release at once, and then match metro.
- Equal extra FLOPs: ``--extra`` RoBERTa updates' worth and twice that (harness.training_flops); METRO
  runs 1 / ratio as many updates. Both arms: the preset's batches (32 x 128) and Adam, ``--lr`` held
  constant after ``--warmup`` updates, so the checkpoint at the first budget is a valid point of the same
  run (a decayed schedule would need a run per budget).
- Probes: BBC (scripts/probe_checkpoint.py: mean-pooled last layer, n = 100 / 300 / 1,000 / all) and POS
  (benchmarks/pos_tagging.py: the last layer's first-piece states, n = 100 / 300 / 1,000 sentences,
  3 seeds). Area: the mean of the curve over log n.
Resumable: finished runs and probes are skipped; an interrupted run continues from its checkpoint_last.pt.
Prints a Markdown table; writes OUT/results.json and docs/benchmarks/branch_race.png.
"""
import argparse
import concurrent.futures
import glob
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pos_tagging  # noqa: E402
import roberta_to_metro  # noqa: E402
import sample_efficiency as se  # noqa: E402

PRESET = "metro_cpu_small_gdes"  # batches, optimizer and METRO's loss weights
ARMS = ("mlm", "metro", "metro_release")


def ratio_of(preset, vocab) -> float:
    size = se.size_of(preset)
    return harness.training_flops("metro: CLM", size, vocab) / harness.training_flops("roberta", size, vocab)


def schedule(args, updates, first):
    """Adam at --lr, constant after --warmup, checkpoints at ``first`` and ``updates`` (kept)."""
    return ["--lr", args.lr, "--lr-scheduler", "polynomial_decay", "--warmup-updates", args.warmup,
            "--end-learning-rate", args.lr, "--total-num-update", updates, "--max-update", updates,
            "--save-interval-updates", first, "--keep-interval-updates", -1]


def mlm_command(args, preset, data, run_dir, updates, first):
    return [sys.executable, *se.roberta_flags(preset, data), "--finetune-from-model", args.start,
            *schedule(args, updates, first), "--save-dir", run_dir, "--log-file", os.path.join(run_dir, "train.log")]


def release_flags(preset):
    """The preset's self-releasing sampling-temperature schedule."""
    m = preset.model
    return ["--sampling-temperature-start", m.sampling_temperature_start, "--sampling-temperature-release-bits",
            m.sampling_temperature_release_bits, "--sampling-temperature-anneal", m.sampling_temperature_anneal,
            "--sampling-temperature-anneal-updates", m.sampling_temperature_anneal_updates]


def metro_command(args, preset, data, run_dir, updates, first, model_flags):
    t, c, o = preset.task, preset.criterion, preset.optimizer
    return [sys.executable, "-m", "fairseq_cli.train", data, "--user-dir", harness.USER_DIR,
            "--task", "metro_pretraining", "--clm", "--mask-prob", t.mask_prob, "--tokens-per-sample",
            t.tokens_per_sample, "--sample-break-mode", t.sample_break_mode,
            "--criterion", "metro", "--rtd-weight", c.rtd_weight, "--clm-weight", c.clm_weight, "--clm-form", c.clm_form,
            *model_flags, "--finetune-from-model", os.path.join(args.out, "start", "metro.pt"),
            "--batch-size", preset.dataset.batch_size, "--optimizer", "adam", "--adam-betas", o.adam_betas,
            "--adam-eps", o.adam_eps, "--weight-decay", o.weight_decay, "--clip-norm", preset.optimization.clip_norm,
            *schedule(args, updates, first), "--disable-validation", "--no-epoch-checkpoints", "--cpu",
            "--num-workers", 0, "--seed", preset.common.seed, "--log-format", "json", "--log-interval",
            preset.common.log_interval, "--save-dir", run_dir, "--log-file", os.path.join(run_dir, "train.log")]


def continue_arm(arm, args, preset, data, updates, model_flags):
    """{updates: checkpoint} at both budgets of ``arm``."""
    run_dir = os.path.join(args.out, arm)
    first = updates // 2
    if not se.done(os.path.join(run_dir, "train.log")):
        resumed = os.path.exists(os.path.join(run_dir, "checkpoint_last.pt"))
        se.log(f"[continue] {arm}: {updates} updates" + (" - resuming" if resumed else ""))
        os.makedirs(run_dir, exist_ok=True)
        if arm == "mlm":
            cmd = mlm_command(args, preset, data, run_dir, updates, first)
        else:
            cmd = metro_command(args, preset, data, run_dir, updates, first,
                                model_flags + (release_flags(preset) if arm == "metro_release" else []))
        se.run(cmd, threads=args.threads)
    return {u: glob.glob(os.path.join(run_dir, f"checkpoint_*_{u}.pt"))[0] for u in (first, updates)}


def main_model(arm, ckpt):
    """What the probes load: fairseq's roberta as it is, a metro checkpoint's exported main model."""
    if arm == "mlm":
        return ckpt
    out = ckpt[: -len(".pt")] + ".main.pt"
    if not os.path.exists(out):
        se.run([sys.executable, "scripts/export_main_model.py", ckpt, out])
    return out


def evaluate(name, ckpt, args, data, raw, splits):
    from metro_fairseq.evaluation.linear_probe import learning_curve_area

    bbc = se.probe(name, ckpt, "bbc", args, raw, data)
    pos = pos_tagging.probe_arm(name, ckpt, args, data, *splits, last_layer_only=True)
    last = max(k[2] for k in pos)
    curve = {n: harness.median([pos[n, s, last]["all"] for s in args.seeds]) for n in args.sizes}
    return {"bbc_area": bbc["area"], "bbc": {n: v["median"] for n, v in bbc["by_n"].items()},
            "pos_area": learning_curve_area(curve), "pos": curve}


def report(results, ratio):
    print(f"\n## Branch race: continued from RoBERTa at budget 6,200, equal extra FLOPs (METRO/MLM FLOPs per update "
          f"{ratio:.2f})\n\nmachine: {harness.machine()}\n")
    print("| arm | extra budget (RoBERTa updates) | updates | BBC probe area | gain | POS probe area (last layer) | gain |")
    print("|---|---|---|---|---|---|---|")
    start = results["start"]
    print(f"| start | 0 | 0 | {start['bbc_area']:.2f} | - | {start['pos_area']:.2f} | - |")
    for key, r in results.items():
        if key != "start":
            print(f"| {r['arm']} | {r['extra']} | {r['updates']} | {r['bbc_area']:.2f} | "
                  f"{r['bbc_area'] - start['bbc_area']:+.2f} | {r['pos_area']:.2f} | {r['pos_area'] - start['pos_area']:+.2f} |")


CURVE = ("mlm_loss", "rtd_gain", "rtd_recall", "token_cos", "sample_temp")


def training_curves(args, arms, start_temperature):
    """Logged training stats of the METRO arms every 100 updates, and the first log interval whose mean
    temperature is below ``start_temperature`` (the release)."""
    from metro_fairseq.fairseq_log import read_log

    curves = {}
    for arm in arms:
        if arm == "mlm":
            continue
        inner = [r.stats for r in read_log(os.path.join(args.out, arm, "train.log"), require=True).train_inner()]
        curves[arm] = {int(r["num_updates"]): {k: r.get(k) for k in CURVE} for r in inner
                       if int(r["num_updates"]) % 100 == 0}
        below = [int(r["num_updates"]) for r in inner if r.get("sample_temp", 1) < start_temperature]
        if arm == "metro_release":
            curves[arm]["first_log_interval_below_start_temperature"] = min(below) if below else None
    print("\n| arm | update | generator MLM (bits) | RTD gain (bits) | RTD recall | token_cos | sample temp |")
    print("|---|---|---|---|---|---|---|")
    for arm, curve in curves.items():
        for u, r in curve.items():
            if isinstance(u, int):
                print(f"| {arm} | {u} | " + " | ".join(f"{r[k]:.3g}" if r[k] is not None else "-" for k in CURVE) + " |")
    return curves


def plot(results, path):
    fig, axes = harness.subplots(1, 2, figsize=(9, 3.6))
    start = results["start"]
    for ax, task, title in zip(axes, ("bbc_area", "pos_area"), ("BBC topics probe", "POS tagging probe (last layer)")):
        for arm, colour, label in (("mlm", "C0", "masked LM"), ("metro", "C3", "METRO (GDES)"),
                                   ("metro_release", "C1", "METRO, self-releasing T")):
            points = sorted((r["extra"], r[task]) for r in results.values() if r.get("arm") == arm)
            ax.plot([0] + [x for x, _ in points], [start[task]] + [y for _, y in points], "o-", color=colour, label=label)
        ax.set_xlabel("extra FLOPs (RoBERTa updates of 32 x 128)")
        ax.set_ylabel("probe area (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    harness.save_plot(fig, path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--start", default=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency", "pretrain",
                                                   "roberta", "checkpoint_last.pt"), help="masked-LM checkpoint")
    p.add_argument("--out", default=os.path.join(se.REPO, "outputs", "bench", "branch_race"))
    p.add_argument("--data", help="the binarized pretraining corpus (default: the benchmarks')")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--extra", type=int, default=775, help="the first extra budget in RoBERTa updates (the second: 2x)")
    p.add_argument("--lr", default="3e-4")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--jobs", type=int, default=2, help="arms at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "branch_race.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if not os.path.exists(args.start):
        sys.exit(f"branch_race: {args.start} is missing: run python benchmarks/sample_efficiency.py --arms roberta "
                 "--no-finetune first, or pass --start")
    args.sizes, args.seeds, args.source = [100, 300, 1000], [1, 2, 3], args.out  # pos_tagging's probe grid
    data = harness.data_bin(args.data)
    preset = se.load_preset(PRESET)
    vocab = sum(1 for _ in open(os.path.join(data, "dict.txt"))) + 5
    ratio = ratio_of(preset, vocab)
    converted = os.path.join(args.out, "start", "metro.pt")
    flags_file = converted + ".flags"
    if not os.path.exists(flags_file):
        flags = roberta_to_metro.convert(args.start, converted, generator_layers=preset.model.generator_layers)
        with open(flags_file, "w") as f:
            f.write(flags)
    model_flags = open(flags_file).read().split()
    updates = {arm: 2 * args.extra if arm == "mlm" else 2 * round(args.extra / ratio) for arm in args.arms}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        ckpts = dict(zip(updates, pool.map(lambda a: continue_arm(a, args, preset, data, updates[a], model_flags),
                                           updates)))
    raw = se.fetch_tasks(args)
    _, dev, subsets = pos_tagging.build_splits(args)
    todo = {"start": ("mlm", args.start)}
    for arm, by_updates in ckpts.items():
        for u, ckpt in by_updates.items():
            todo[f"{arm}_{u}"] = (arm, ckpt)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        scores = dict(zip(todo, pool.map(lambda k: evaluate(k, main_model(*todo[k]), args, data, raw, (dev, subsets)),
                                         todo)))
    results = {"start": scores["start"]}
    for key, (arm, _) in todo.items():
        if key != "start":
            u = int(key.rsplit("_", 1)[1])
            extra = args.extra * (1 if u == updates[arm] // 2 else 2)
            results[key] = {"arm": arm, "updates": u, "extra": extra, **scores[key]}
    report(results, ratio)
    curves = training_curves(args, args.arms, preset.model.sampling_temperature_start)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"machine": harness.machine(), "ratio": ratio, "lr": args.lr, "results": results,
                   "training": curves}, f, indent=1)
    plot(results, args.plot)


if __name__ == "__main__":
    main()
