#!/usr/bin/env python
"""Why does the GDES checkpoint fine-tune below random init at 300 labels? One change at a time.

    python benchmarks/finetune_gap.py [--source outputs/bench/sample_efficiency] [--arm metro_gdes] [--jobs 2]

Runs on the learning-curve harness of benchmarks/sample_efficiency.py (run that first: its exported
checkpoints, its fixed stratified n = 300 BBC subsets, and its plain fine-tuning runs at lr 1e-3, which
are reused: same folder, same command). Each variant changes one thing against plain fine-tuning
(lr 1e-3, 300 updates, 1/16 warm-up), seeds 1-3:

- the T5 relative bias: reset to its initialisation, zeroed, or trained at 30 x the lr
  (``--relative-bias-lr-scale``);
- the token and position tables rescaled to the RMS of a fresh initialisation (they feed a LayerNorm, so
  the function is the same up to its epsilon, and Adam's steps are as large relative to them as for random init);
- the top layer re-initialised (Zhang et al. 2021, arXiv 2006.05987);
- a mean-pooled classification head (``--classifier-pooling mean``) instead of the ``<s>`` state;
- a lower lr with more updates: 1e-4 and 3e-5, 1,000 updates, 10% warm-up;
- inputs truncated to 128 tokens, the pretraining block length (the position table cropped to match).
Recipe variants (pooling, lr, truncation) run for random init (and RoBERTa, where its fairseq model
allows) too, so each arm is compared at its best recipe.

Diagnostics (``--diagnose``, seed 1): the learned bias's attention mass beyond distance 8, the ``<s>``
query's attention entropy per layer on BBC dev, and each tensor group's relative change during plain
fine-tuning, for the arm, RoBERTa and random init.
Resumable: finished runs are skipped. Prints Markdown tables; writes SOURCE/finetune_gap_ARM.json and a PNG.
"""
import argparse
import concurrent.futures
import json
import logging
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import finetune_gap_diagnostics as diagnostics  # noqa: E402
import harness  # noqa: E402
import sample_efficiency as se  # noqa: E402

TASK = "bbc"


@dataclass
class Variant:
    label: str
    surgery: Optional[Callable] = None  # (state, fresh_state) -> None, on the checkpoint's model tensors
    model_flags: Tuple[str, ...] = ()
    lr: str = "1e-3"
    updates: Optional[int] = None  # default: sample_efficiency's --min-finetune-updates (300)
    warmup_fraction: float = 1 / 16
    composite: bool = False
    arms: Tuple[str, ...] = ("pretrained",)  # which arms it applies to: pretrained, random, roberta
    max_positions: Optional[int] = None  # truncate inputs to this length (the checkpoint's table cropped to it)


def reset_bias(state, fresh):
    state["encoder.relative_bias.embedding.weight"] = fresh["encoder.relative_bias.embedding.weight"].clone()


def zero_bias(state, fresh):
    state["encoder.relative_bias.embedding.weight"].zero_()


def rescale_tables(state, fresh):
    for key in ("embeddings.weight", "encoder.embed_positions.weight"):
        rms = lambda t: t.float().pow(2).mean().sqrt()  # noqa: E731
        state[key] = state[key] * (rms(fresh[key]) / rms(state[key]))


def reinit_top_layer(state, fresh):
    top = max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    for key in [k for k in state if k.startswith(f"encoder.layers.{top}.")]:
        state[key] = fresh[key].clone()


def crop_positions(state, fresh, rows=128):
    state["encoder.embed_positions.weight"] = state["encoder.embed_positions.weight"][:rows].clone()


VARIANTS = {
    "plain": Variant("plain (lr 1e-3, 300 updates)", arms=("pretrained", "random", "roberta")),
    "bias_reset": Variant("T5 bias reset to init", surgery=reset_bias),
    "bias_zero": Variant("T5 bias zeroed", surgery=zero_bias),
    "bias_lr30": Variant("T5 bias at 30 x lr", model_flags=("--relative-bias-lr-scale", "30"), composite=True),
    "tables_rms": Variant("token + position tables at fresh RMS", surgery=rescale_tables),
    "top_reinit": Variant("top layer re-initialised", surgery=reinit_top_layer),
    "mean_pool": Variant("mean-pooled head", model_flags=("--classifier-pooling", "mean"), arms=("pretrained", "random")),
    "lr1e-4": Variant("lr 1e-4, 1,000 updates, 10% warm-up", lr="1e-4", updates=1000, warmup_fraction=0.1,
                      arms=("pretrained", "random", "roberta")),
    "lr3e-5": Variant("lr 3e-5, 1,000 updates, 10% warm-up", lr="3e-5", updates=1000, warmup_fraction=0.1,
                      arms=("pretrained", "random", "roberta")),
    "trunc128": Variant("inputs truncated to 128 tokens", surgery=crop_positions, max_positions=128,
                        arms=("pretrained", "random")),
}


def variant_checkpoint(args, name, variant, ckpt, fresh):
    """The arm's exported checkpoint with the variant's surgery applied (written once)."""
    if variant.surgery is None:
        return ckpt
    out = os.path.join(args.source, "finetune_gap", "checkpoints", f"{args.arm}_{name}.pt")
    if not os.path.exists(out):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        variant.surgery(state["model"], fresh)
        if variant.max_positions:
            state["cfg"]["model"]["max_positions"] = variant.max_positions
        os.makedirs(os.path.dirname(out), exist_ok=True)
        torch.save(state, out + ".tmp")
        os.replace(out + ".tmp", out)
    return out


def random_init_checkpoint(args, ckpt, data):
    """The arm's architecture untrained (seed 1), saved like an export: the fresh tensors the surgeries
    copy, and the starting point whose change the diagnostics measure for random init."""
    out = os.path.join(args.source, "finetune_gap", "checkpoints", "random_init.pt")
    if not os.path.exists(out):
        from metro_fairseq.evaluation.checkpoint_features import load_main_model

        model = load_main_model(ckpt, data, random_init=True)[0]
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        state["model"] = model.state_dict()
        os.makedirs(os.path.dirname(out), exist_ok=True)
        torch.save(state, out + ".tmp")
        os.replace(out + ".tmp", out)
    return out


def run_variant(args, name, arm, seed, ckpts, binarized, model_args):
    variant = VARIANTS[name]
    flags = list(variant.model_flags)
    if variant.max_positions:
        flags += ["--max-positions", variant.max_positions, "--shorten-method", "truncate"]
    folder = "finetune" if name == "plain" else f"finetune_gap/{name}"  # plain: sample_efficiency's own runs
    return se.finetune(arm, ckpts[arm, name], model_args[arm, name], TASK, 300, seed, variant.lr, args, binarized,
                       folder=folder, min_updates=variant.updates, warmup_fraction=variant.warmup_fraction,
                       extra_args=flags, composite=variant.composite)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency"),
                   help="results folder of benchmarks/sample_efficiency.py (its --out)")
    p.add_argument("--data", help="the binarized pretraining corpus (its dictionary and SentencePiece model)")
    p.add_argument("--arm", default="metro_gdes", choices=[a for a in se.ARMS if a not in ("random", "roberta")])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--arms", nargs="+", default=["pretrained", "random", "roberta"],
                   choices=["pretrained", "random", "roberta"],
                   help="which arms to run each variant for (where the variant applies to them)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    p.add_argument("--no-diagnose", action="store_true", help="skip the bias / attention / weight-change dumps")
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "finetune_gap.png"))
    args = p.parse_args()
    args.variants = ["plain"] + [v for v in args.variants if v != "plain"]  # the reference every row is read against
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args.out, args.finetune_sizes, args.finetune_seeds, args.min_finetune_updates = args.source, [300], args.seeds, 300
    ckpt = os.path.join(args.source, "pretrain", args.arm, "main.pt")
    roberta = os.path.join(args.source, "pretrain", "roberta", "checkpoint_last.pt")
    for path in (ckpt, roberta):
        if not os.path.exists(path):
            sys.exit(f"finetune_gap: {path} is missing; run benchmarks/sample_efficiency.py --arms random roberta "
                     f"{args.arm} --finetune-sizes 300 first (or pass --source)")
    data = harness.data_bin(args.data)
    raw = se.fetch_tasks(args)
    binarized = se.binarize_subsets(args, data, raw)
    fresh_ckpt = random_init_checkpoint(args, ckpt, data)
    fresh = torch.load(fresh_ckpt, map_location="cpu", weights_only=False)["model"]
    preset = se.load_preset("metro_cpu_small")  # RoBERTa's size (the arms share the main model)
    ckpts, model_args = {}, {}
    for name in args.variants:
        variant = VARIANTS[name]
        for kind in [k for k in variant.arms if k in args.arms]:
            arm = args.arm if kind == "pretrained" else kind
            # random init takes the architecture from the arm's export (as in sample_efficiency.py)
            ckpts[arm, name] = {"pretrained": lambda: variant_checkpoint(args, name, variant, ckpt, fresh),
                                "random": lambda: ckpt, "roberta": lambda: roberta}[kind]()
            model_args[arm, name] = se.model_args_of(arm, ckpts[arm, name], preset)
    # seeds outermost: an interrupted pass has compared every variant on the same seeds so far
    runs = [(name, arm, seed) for seed in args.seeds for arm, name in model_args]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        scores = dict(zip(runs, pool.map(lambda r: run_variant(args, *r, ckpts, binarized, model_args), runs)))
    # earlier invocations' scores (other variants or seeds) join the table: runs accumulate
    results_path = os.path.join(args.source, f"finetune_gap_{args.arm}.json")
    results = {"variants": {}}
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)
    results.update(arm=args.arm, machine=harness.machine())
    for (name, arm, seed), score in scores.items():
        results["variants"].setdefault(name, {}).setdefault(arm, {})[str(seed)] = score
    report(args, results)
    if not args.no_diagnose:
        results["diagnostics"] = diagnostics.run_all(args, data, raw, binarized, ckpt, roberta, fresh_ckpt, preset)
    if "diagnostics" in results:
        diagnostics.report(results["diagnostics"])
    with open(results_path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(results_path + ".tmp", results_path)
    plot(args, results)


def median_of(by_seed):
    return statistics.median(by_seed.values())


def paired_difference(by_seed, reference):
    """Median over the seeds both have of ``by_seed - reference``: a variant run on fewer seeds is read
    against the plain runs of the same seeds."""
    shared = [s for s in by_seed if s in reference]
    return statistics.median(by_seed[s] - reference[s] for s in shared)


def report(args, results):
    """Every variant run so far; medians over the seeds each has (the seed columns show which)."""
    v = results["variants"]
    seeds = sorted({s for by_arm in v.values() for by_seed in by_arm.values() for s in by_seed}, key=int)
    print(f"\n## Fine-tuning gap: {args.arm} at budget 6,200, BBC, n = 300\n")
    print(f"machine: {results['machine']}\n")
    print(f"| variant | arm | seed {' / '.join(seeds)} | median | vs the arm's plain, same seeds | "
          f"vs random init plain, same seeds |")
    print("|---|---|---|---|---|---|")
    for name in [n for n in VARIANTS if n in v]:
        for arm, by_seed in v[name].items():
            cells = " / ".join(f"{by_seed[s]:.1f}" if s in by_seed else "-" for s in seeds)
            print(f"| {VARIANTS[name].label} | {arm} | {cells} | {median_of(by_seed):.1f} | "
                  f"{paired_difference(by_seed, v['plain'][arm]):+.1f} | "
                  f"{paired_difference(by_seed, v['plain']['random']):+.1f} |")
    print("\n(differences: median over the seeds the row shares with the plain run)")


def plot(args, results):
    names = [n for n in VARIANTS if args.arm in results["variants"].get(n, {})]
    fig, ax = harness.subplots(figsize=(9, 0.45 * len(names) + 1.6))
    colors = {args.arm: "C3", "random": "0.4", "roberta": "C0"}
    for row, name in enumerate(names):
        for offset, (arm, by_seed) in zip((-0.2, 0.0, 0.2), results["variants"][name].items()):
            y = row + offset
            ax.scatter(list(by_seed.values()), [y] * len(by_seed), s=12, color=colors[arm], alpha=0.5)
            ax.scatter([median_of(by_seed)], [y], marker="|", s=200, color=colors[arm],
                       label=arm if row == 0 else None)
    ax.axvline(median_of(results["variants"]["plain"]["random"]), color="0.4", ls=":", lw=1)
    ax.set_yticks(range(len(names)), [VARIANTS[n].label for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("BBC dev accuracy (%), n = 300 (dots: seeds, bar: median)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{args.arm} checkpoint at budget 6,200: one change at a time (dotted: random init, plain)")
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
