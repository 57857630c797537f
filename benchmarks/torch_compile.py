#!/usr/bin/env python
"""torch.compile of the encoder layers against eager, per update on CPU.

    OMP_NUM_THREADS=2 python benchmarks/torch_compile.py [--data DATA_BIN] [--repeats 5] [--steps 3]

There is no model option for this: measured on CPU (docs/benchmarks.md, 2026-12-07) compiling was not
faster in fp32 or bf16, so by the team's rule it was not kept. This script compiles by itself: after the
Trainer is built (and, for --bf16, has cast the model), every layer of the main model and the generator
gets ``nn.Module.compile(dynamic=True)``, which compiles the layer's call in place (state-dict keys stay)
for any batch size and length.

Two real fairseq Trainers per precision (fp32, ``--bf16``), identical but for the compile, at the shape of
config/pretraining/metro_cpu_small_gdes.yaml (4 layers x 128, FFN 512, 4 heads, 2-layer generator, GDES,
CLM, 32 x 128-token blocks; vocabulary 8000 from the demo corpus), timed in turns (interleaved repeats).
The compile time is the compiled Trainer's first update less the eager one's, with inductor's cache in a
fresh temporary directory, so it is what a first run pays. Prints a Markdown table and writes a PNG.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

from metro_fairseq import plugin  # noqa: E402

plugin.install()  # --bf16 without fairseq's forced --tpu, before any parse

PRECISIONS = {"fp32": [], "bf16": ["--bf16"]}
SYSTEMS = ("eager", "compiled")
# metro_cpu_small_gdes.yaml's model and task options beyond harness.common_flags
PRESET = ["--embedding-sharing", "gdes", "--clm", "--relative-position-buckets", "32",
          "--relative-position-max-distance", "128", "--sampling-temperature-start", "3.0",
          "--sampling-temperature-release-bits", "0.5", "--sampling-temperature-anneal-updates", "500"]


def compile_layers(model):
    for layer in [*model.encoder.layers, *model.generator.layers]:
        layer.compile(dynamic=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="binarized corpus (default: the demo corpus, prepared into data/bench-bin)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    p.add_argument("--steps", type=int, default=3, help="updates per system per round")
    p.add_argument("--threads", type=int, default=2, help="torch (and inductor kernel) threads")
    p.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS))
    p.add_argument("--plot", default=os.path.join(harness.REPO, "docs", "benchmarks", "torch_compile.png"))
    args = p.parse_args()

    harness.torch.set_num_threads(args.threads)
    size = harness.Size(layers=4, dim=128, ffn=512, heads=4, generator_layers=2, tokens_per_sample=128, batch=32)
    data = harness.data_bin(args.data)
    base = harness.common_flags(data, size, "cpu") + harness.variants(size)["metro: generator + RTD"] + PRESET

    results = {}
    load_before = os.getloadavg()[0]  # anything else running on the machine shows in the timings
    with tempfile.TemporaryDirectory() as cache, harness.quiet():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        for precision in args.precisions:
            benches = {name: harness.Bench(base + PRECISIONS[precision], num_batches=4) for name in SYSTEMS}
            compile_layers(benches["compiled"].trainer.model)
            first, loss = {}, {}
            for name, bench in benches.items():  # same seed, weights and batch: the losses must agree
                start = harness.time.perf_counter()
                loss[name] = bench.trainer.train_step([bench.batches[0]])["loss"]
                first[name] = harness.time.perf_counter() - start
                bench.step = 1
            times = harness.interleaved_timings(benches, args.repeats, args.steps)
            results[precision] = (first["compiled"] - first["eager"], (loss["eager"], loss["compiled"]), times)
            print(f"{precision}: done", file=sys.stderr, flush=True)
            del benches
    graph_breaks = sum(counters["graph_break"].values())

    print("## torch.compile of the encoder layers (cpu)\n")
    print(f"machine: {harness.machine()}; 1-minute load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print(f"metro_cpu_small_gdes shape: {size.layers} layers x {size.dim}, FFN {size.ffn}, {size.heads} heads, "
          f"{size.generator_layers}-layer generator, {size.batch} x {size.tokens_per_sample} tokens per update; "
          f"{args.repeats} interleaved rounds of {args.steps} updates; dynamo compiled "
          f"{counters['frames']['ok']} frames with {graph_breaks} graph breaks\n")
    print("| precision | compile time (s, first update less eager's) | first-update loss, eager / compiled (as logged) | "
          "eager s / update, median (min-max) | compiled s / update, median (min-max) | compiled / eager | "
          "rounds compiled was faster |")
    print("|---|---|---|---|---|---|---|")
    for precision, (compile_s, losses, times) in results.items():
        eager, compiled = times["eager"], times["compiled"]
        # paired by round: both ran back to back, under the same load from anything else on the machine
        wins = sum(c < e for c, e in zip(compiled, eager))
        print(f"| {precision} | {compile_s:.0f} | {losses[0]:.3f} / {losses[1]:.3f} | "
              f"{harness.median(eager):.3f} ({min(eager):.3f}-{max(eager):.3f}) | "
              f"{harness.median(compiled):.3f} ({min(compiled):.3f}-{max(compiled):.3f}) | "
              f"{harness.median(compiled) / harness.median(eager):.2f} | {wins} of {len(eager)} |")

    # one panel per precision: bf16 updates take several times as long as fp32 ones on CPUs without bf16 units
    fig, axes = harness.subplots(1, len(results), figsize=(3 * len(results) + 1, 3.4), squeeze=False)
    for ax, (precision, (_, _, times)) in zip(axes[0], results.items()):
        medians = [harness.median(times[name]) for name in SYSTEMS]
        spread = [[m - min(times[n]) for m, n in zip(medians, SYSTEMS)],
                  [max(times[n]) - m for m, n in zip(medians, SYSTEMS)]]
        ax.bar(SYSTEMS, medians, yerr=spread, capsize=4, color=["tab:blue", "tab:orange"])
        ax.set_title(precision)
        ax.set_ylabel("seconds per update (median, min-max)")
    fig.suptitle(f"torch.compile of the encoder layers, CPU, {harness.torch.get_num_threads()} threads", fontsize=10)
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
