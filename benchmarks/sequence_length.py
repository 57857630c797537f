#!/usr/bin/env python
"""Scaling with sequence length: time per update and peak memory at tokens_per_sample 128/256/512,
METRO (generator + RTD, relative-bias attention) against fairseq's RoBERTa masked LM.

    python benchmarks/sequence_length.py [--data DATA_BIN] [--lengths 128 256 512] [--tokens 4096]

Every update holds the same number of tokens (--tokens; batch = tokens / length), so growth with
length is the attention's T^2 part; METRO's (relative bias included) should grow no faster than
the baseline's. Prints a Markdown table and writes a PNG.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="binarized corpus (default: the demo corpus, prepared into data/bench-bin)")
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--tokens", type=int, default=4096, help="tokens per update at every length")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--generator-layers", type=int, default=2)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if harness.torch.cuda.is_available() else "cpu")
    p.add_argument("--plot", default=os.path.join(harness.REPO, "docs", "benchmarks", "sequence_length.png"))
    args = p.parse_args()

    data = harness.data_bin(args.data)
    systems = list(harness.variants(harness.Size()))[:2]  # roberta, metro generator + RTD
    results = {}
    with harness.quiet():
        for length in args.lengths:
            size = harness.Size(layers=args.layers, dim=args.dim, ffn=4 * args.dim, heads=max(1, args.dim // 64),
                                generator_layers=args.generator_layers, tokens_per_sample=length,
                                batch=args.tokens // length)
            base = harness.common_flags(data, size, args.device)
            flags = harness.variants(size)
            benches = {name: harness.Bench(base + flags[name], num_batches=4) for name in systems}
            times = harness.interleaved_timings(benches, args.repeats, args.steps)
            for name in systems:
                vocab = len(benches[name].task.source_dictionary)
                results[(name, length)] = (
                    harness.median(times[name]), harness.memory_in_subprocess(base + flags[name]),
                    harness.training_flops(name, size, vocab),
                )
            del benches

    first = args.lengths[0]
    print(f"## Sequence length ({args.device})\n")
    print(f"machine: {harness.machine()}")
    print(f"main model {args.layers} layers x {args.dim}; generator {args.generator_layers} layers; "
          f"{args.tokens} tokens per update at every length; {args.repeats} interleaved rounds of {args.steps} updates\n")
    print("| length | batch | system | s / update | vs. own length " + str(first) + " | FLOP growth | peak memory MB | memory vs. own " + str(first) + " | METRO / RoBERTa time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for length in args.lengths:
        for name in systems:
            t, mem, fl = results[(name, length)]
            t0, mem0, fl0 = results[(name, first)]
            ratio = t / results[(systems[0], length)][0]
            print(f"| {length} | {args.tokens // length} | {name} | {t:.3f} | {t / t0:.2f} | {fl / fl0:.2f} | {mem:.0f} | "
                  f"{mem / mem0:.2f} | {ratio:.2f} |")

    fig, axes = harness.subplots(1, 2, figsize=(9, 3.6))
    for name in systems:
        axes[0].plot(args.lengths, [results[(name, n)][0] for n in args.lengths], "o-", label=name)
        axes[1].plot(args.lengths, [results[(name, n)][1] for n in args.lengths], "o-", label=name)
    axes[0].set_ylabel("seconds per update")
    axes[1].set_ylabel("peak training memory (MB)")
    for ax in axes:
        ax.set_xlabel(f"tokens per sample ({args.tokens} tokens per update)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(args.lengths, [str(n) for n in args.lengths])
        ax.legend(fontsize=8)
    fig.suptitle(f"Scaling with sequence length, {args.layers}x{args.dim} main model, {args.device}")
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
