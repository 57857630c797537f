#!/usr/bin/env python
"""Cost per update: METRO against fairseq's own RoBERTa masked LM of the same main-model size.

    python benchmarks/cost_per_update.py [--data DATA_BIN] [--repeats 5] [--steps 4] [--precisions fp32 bf16] [--profile]
    python benchmarks/cost_per_update.py --attention [--lengths 128 512] [--tokens-per-update 2048]

Builds three real fairseq Trainers in one process (roberta + masked_lm, metro with generator + RTD,
metro + CLM + SCL), times their train_step in turns (interleaved repeats), measures each one's peak
memory in a fresh process, and compares the time ratio with the FLOP ratio computed from the
configuration: the generator's layers and heads are the cost METRO cannot avoid, so the two ratios
should agree within 10%. Each system runs in every one of ``--precisions`` (fairseq's ``--bf16`` /
``--fp16``: the model cast to half precision, fp32 master weights), all Trainers interleaved. The
same run measures the machine's matmul peak on the model's shapes in fp32 and bf16, so each
system's achieved GFLOP/s is also reported as model FLOP utilisation (MFU) of its precision's peak.
Prints a Markdown table and writes a PNG.

``--attention`` instead compares METRO (generator + RTD) with the shared T5 bias against the same
model with DeBERTa's disentangled attention, at each of ``--lengths`` with the same tokens per update:
time, memory and analytic FLOP ratios (no plot).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DTYPES = {"fp32": harness.torch.float32, "bf16": harness.torch.bfloat16, "fp16": harness.torch.float16}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="binarized corpus (default: the demo corpus, prepared into data/bench-bin)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=4, help="updates per system per round")
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--generator-layers", type=int, default=2)
    p.add_argument("--tokens-per-sample", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if harness.torch.cuda.is_available() else "cpu")
    p.add_argument("--precisions", nargs="+", choices=sorted(harness.PRECISION_FLAGS), default=None,
                   help="default: fp32 bf16 on CPU, fp16 bf16 on CUDA")
    p.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators per system")
    p.add_argument("--plot", default=os.path.join(harness.REPO, "docs", "benchmarks", "cost_per_update.png"))
    p.add_argument("--attention", action="store_true",
                   help="compare T5-bias with disentangled attention (METRO, generator + RTD) instead")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512], help="--attention: sequence lengths")
    p.add_argument("--tokens-per-update", type=int, default=2048, help="--attention: batch = this / length")
    args = p.parse_args()
    if args.attention:
        return attention_cost(args)

    size = harness.Size(layers=args.layers, dim=args.dim, ffn=4 * args.dim, heads=max(1, args.dim // 64),
                        generator_layers=args.generator_layers, tokens_per_sample=args.tokens_per_sample,
                        batch=args.batch)
    precisions = args.precisions or (["fp32", "bf16"] if args.device == "cpu" else ["fp16", "bf16"])
    data = harness.data_bin(args.data)
    systems = harness.variants(size)
    runs = {(name, p): harness.common_flags(data, size, args.device, p) + flags
            for p in precisions for name, flags in systems.items()}
    with harness.quiet():
        benches = {key: harness.Bench(argv) for key, argv in runs.items()}
        vocab = len(next(iter(benches.values())).task.source_dictionary)
        peaks = {p: harness.matmul_peak_gflops(size, DTYPES[p], args.device) for p in precisions}
        times = harness.interleaved_timings(benches, args.repeats, args.steps)
        # measured again after the timings, the best of both: load from elsewhere only lowers a measurement
        peaks = {p: max(peak, harness.matmul_peak_gflops(size, DTYPES[p], args.device)) for p, peak in peaks.items()}
        memory = {key: harness.memory_in_subprocess(argv) for key, argv in runs.items()}
    reference = next(iter(systems))
    flops = {name: harness.training_flops(name, size, vocab) for name in systems}

    print(f"## Cost per update ({args.device})\n")
    print(f"machine: {harness.machine()}")
    print(f"main model {size.layers} layers x {size.dim} (FFN {size.ffn}, {size.heads} heads); generator "
          f"{size.generator_layers} layers; {size.batch} x {size.tokens_per_sample} tokens per update; vocabulary {vocab}; "
          f"{args.repeats} interleaved rounds of {args.steps} updates\n")
    print("matmul peak on the model's shapes: " + ", ".join(f"{p} {peaks[p]:.0f} GFLOP/s" for p in precisions) + "\n")
    print("| system | precision | params | s / update (median) | min - max | time ratio | FLOP ratio | time / FLOP ratio "
          "| GFLOP/s | MFU | peak memory MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for p in precisions:
        for name in systems:
            t = harness.median(times[name, p])
            time_ratio = t / harness.median(times[reference, p])
            flop_ratio = flops[name] / flops[reference]
            achieved = flops[name] / t / 1e9
            rows.append((name, p, t, time_ratio, flop_ratio))
            print(f"| {name} | {p} | {benches[name, p].num_params / 1e6:.2f}M | {t:.3f} | {min(times[name, p]):.3f} - "
                  f"{max(times[name, p]):.3f} | {time_ratio:.3f} | {flop_ratio:.3f} | {time_ratio / flop_ratio:.3f} "
                  f"| {achieved:.0f} | {achieved / peaks[p]:.0%} | {memory[name, p]:.0f} | "
                  f"{memory[name, p] / memory[reference, p]:.2f} |")
    print("\nGFLOP per update (analytic): " + ", ".join(f"{n}: {flops[n] / 1e9:.1f}" for n in systems))
    if len(precisions) > 1:
        first, *others = precisions
        print(f"\n| system | " + " | ".join(f"{p} / {first} time" for p in others) + " |")
        print("|---|" + "---|" * len(others))
        for name in systems:
            ref = harness.median(times[name, first])
            print(f"| {name} | " + " | ".join(f"{harness.median(times[name, p]) / ref:.3f}" for p in others) + " |")

    if args.profile:
        for key, bench in benches.items():
            print(f"\n### profile: {key[0]} ({key[1]})\n```\n{harness.profile_step(bench)}\n```")

    fig, (left, right) = harness.subplots(1, 2, figsize=(11, 3.8))
    xs = range(len(systems))
    labels = [n.replace(": ", ":\n") for n in systems]
    width = 0.8 / len(precisions)
    for i, p in enumerate(precisions):
        shift = (i - (len(precisions) - 1) / 2) * width
        left.bar([x + shift for x in xs], [r[3] for r in rows if r[1] == p], width=width, label=f"time ratio, {p}")
        right.bar([x + shift for x in xs], [r[2] for r in rows if r[1] == p], width=width, label=p)
    left.plot(list(xs), [flops[n] / flops[reference] for n in systems], "k_", markersize=30, mew=2,
              label="analytic FLOP ratio")
    left.set_ylabel(f"relative to {reference.split()[0]}")
    left.axhline(1.0, color="grey", lw=0.8)
    right.set_ylabel("seconds per update")
    right.set_title(", ".join(f"{p} matmul peak {peaks[p]:.0f} GFLOP/s" for p in precisions), fontsize=9)
    for ax in (left, right):
        ax.set_xticks(list(xs), labels, fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(f"Cost per update, {size.layers}x{size.dim} main model, {args.device}", fontsize=10)
    harness.save_plot(fig, args.plot)


def attention_cost(args):
    data = harness.data_bin(args.data)
    metro = ["--task", "metro_pretraining", "--criterion", "metro", "--arch", "metro",
             "--generator-layers", str(args.generator_layers)]
    systems = {"T5 bias (standard)": metro + ["--attention-type", "standard"],
               "disentangled": metro + ["--attention-type", "disentangled"]}
    print(f"## Attention cost per update ({args.device})\n")
    print(f"machine: {harness.machine()}")
    print(f"main model {args.layers} layers x {args.dim}; generator {args.generator_layers} layers; "
          f"{args.tokens_per_update} tokens per update; {args.repeats} interleaved rounds of {args.steps} updates\n")
    print("| length | batch | attention | params | s / update (median) | min - max | time ratio | FLOP ratio "
          "| peak memory MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for length in args.lengths:
        size = harness.Size(layers=args.layers, dim=args.dim, ffn=4 * args.dim, heads=max(1, args.dim // 64),
                            generator_layers=args.generator_layers, tokens_per_sample=length,
                            batch=max(1, args.tokens_per_update // length))
        base = harness.common_flags(data, size, args.device)
        with harness.quiet():
            benches = {name: harness.Bench(base + flags) for name, flags in systems.items()}
            vocab = len(next(iter(benches.values())).task.source_dictionary)
            times = harness.interleaved_timings(benches, args.repeats, args.steps)
            memory = {name: harness.memory_in_subprocess(base + flags) for name, flags in systems.items()}
        t5_flops = harness.training_flops("metro: generator + RTD", size, vocab)
        flops = {"T5 bias (standard)": t5_flops, "disentangled": t5_flops + harness.disentangled_extra_flops(size)}
        reference = next(iter(systems))
        for name in systems:
            t = harness.median(times[name])
            print(f"| {length} | {size.batch} | {name} | {benches[name].num_params / 1e6:.2f}M | {t:.3f} "
                  f"| {min(times[name]):.3f} - {max(times[name]):.3f} | {t / harness.median(times[reference]):.3f} "
                  f"| {flops[name] / flops[reference]:.3f} | {memory[name]:.0f} | {memory[name] / memory[reference]:.2f} |")


if __name__ == "__main__":
    main()
