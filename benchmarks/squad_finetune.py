#!/usr/bin/env python
"""SQuAD 1.1 on CPU: pretrained main models against random initialisation, fine-tuned with the
task ``squad`` and config/finetuning/squad_v1.yaml on a subset of the real training questions,
scored with the official EM/F1 on a fixed dev subset.

    python benchmarks/squad_finetune.py [--arms random=outputs/.../main.pt metro=outputs/.../main.pt]
        [--train-questions 5000] [--dev-questions 1000] [--max-length 128] [--doc-stride 64] [--lr 3e-4] [--epochs 2]

Every arm is a metro main model (pretraining checkpoint or export) sharing one tokenizer: the data
directory of its pretraining (--data, default the demo corpus data/bench-bin). ``random=CKPT``
fine-tunes CKPT's architecture from scratch. Windows default to 128 tokens, the block length these
CPU models were pretrained on (their position embeddings beyond it are untrained). The config's ELECTRA recipe (layer-wise lr decay 0.8,
10% warmup, batch 32) runs as is, with the lr of ELECTRA-Small (3e-4) for these small models.
Resumable: finished arms are skipped. Prints a Markdown table, writes results.json and a PNG.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from metro_fairseq.fairseq_log import read_log  # noqa: E402

REPO = harness.REPO
SE = os.path.join(REPO, "outputs", "bench", "sample_efficiency", "pretrain")
DEFAULT_ARMS = [f"random={SE}/metro/main.pt", f"metro={SE}/metro/main.pt"]


def run(cmd, log=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"squad_finetune: {' '.join(map(str, cmd[:4]))} ... failed:\n{result.stderr[-3000:]}")
    return result.stdout


def model_overrides(checkpoint):
    """The checkpoint's architecture as hydra overrides (export_main_model.py --show-args); the
    config's layer-wise lr decay stays."""
    shown = run([sys.executable, "scripts/export_main_model.py", "--show-args", "--format", "hydra", checkpoint])
    return [o for o in shown.split() if not o.startswith("model.layer_lr_decay=")]


def finetune(name, checkpoint, data, windows, args):
    save = os.path.join(args.out, "finetune", f"{name}_{args.max_length}_{args.lr}")
    train_log = os.path.join(save, "train.log")
    if not (os.path.exists(train_log) and "done training" in open(train_log).read()):
        os.makedirs(save, exist_ok=True)
        updates = args.epochs * -(-windows // 32)
        print(f"[finetune] {name}: {updates} updates", flush=True)
        random_init = name.startswith("random")
        run([sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", "metro_fairseq/config/finetuning",
             "--config-name", "squad_v1", f"task.data={data}",
             "checkpoint.finetune_from_model=" + ("null" if random_init else checkpoint),
             f"checkpoint.save_dir={save}", f"common.log_file={train_log}", "common.log_format=json",
             "common.cpu=true", "common.fp16=false",
             "dataset.num_workers=0", f"optimization.max_update={updates}",
             f"optimization.max_epoch={args.epochs}", f"optimizer.groups.default.lr_float={args.lr}",
             f"optimization.lr=[{args.lr}]", f"optimizer.groups.default.lr_scheduler.warmup_updates={updates // 10}",
             f"optimizer.groups.default.lr_scheduler.total_num_update={updates}", "checkpoint.no_save=true",
             *model_overrides(checkpoint)])
    log = read_log(train_log, require=True)
    stats, inner = log.valid()[-1], log.train_inner()
    return {"exact": stats["exact"], "f1": stats["f1"], "updates": stats.num_updates,
            "minutes": inner[-1]["wall"] / 60 if inner else None, "checkpoint": checkpoint}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, help="NAME=CHECKPOINT; a name starting with "
                   "'random' fine-tunes the checkpoint's architecture untrained")
    p.add_argument("--data", help="pretraining data directory (spm.model, dict.txt; default data/bench-bin)")
    p.add_argument("--train-questions", type=int, default=5000)
    p.add_argument("--dev-questions", type=int, default=1000)
    p.add_argument("--max-length", type=int, default=128, help="window length (prepare_squad.py)")
    p.add_argument("--doc-stride", type=int, default=64, help="window stride (prepare_squad.py)")
    p.add_argument("--lr", default="3e-4")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--out", default=os.path.join(REPO, "outputs", "bench", "squad"))
    p.add_argument("--plot", default=os.path.join(REPO, "docs", "benchmarks", "squad_finetune.png"))
    args = p.parse_args()
    arms = dict(a.split("=", 1) for a in args.arms)
    for name, ckpt in arms.items():
        if not os.path.isfile(ckpt):
            sys.exit(f"squad_finetune: error: {name}'s checkpoint {ckpt} does not exist "
                     "(run benchmarks/sample_efficiency.py first, or pass --arms NAME=CHECKPOINT)")
    data = harness.data_bin(args.data)
    raw = os.path.join(args.out, "raw")
    run([sys.executable, "scripts/fetch_squad.py", "--outdir", raw, "--cache-dir", os.path.join(REPO, "data", "download"),
         "--train-questions", args.train_questions, "--dev-questions", args.dev_questions])
    dev_json = os.path.join(raw, f"dev-v1.1.{args.dev_questions}.json")
    squad_bin = os.path.join(args.out, f"bin{args.max_length}_{args.doc_stride}")
    if not os.path.exists(os.path.join(squad_bin, "valid.windows.jsonl")):
        print(run([sys.executable, "scripts/prepare_squad.py", "--train",
                   os.path.join(raw, f"train-v1.1.{args.train_questions}.json"), "--valid", dev_json,
                   "--spm-model", os.path.join(data, "spm.model"), "--dict", os.path.join(data, "dict.txt"),
                   "--destdir", squad_bin, "--max-length", args.max_length, "--doc-stride", args.doc_stride]),
              flush=True)
    windows = sum(1 for _ in open(os.path.join(squad_bin, "train.windows.jsonl")))
    results = {name: finetune(name, ckpt, squad_bin, windows, args) for name, ckpt in arms.items()}

    print(f"\n## SQuAD 1.1, {args.train_questions} training questions ({windows} windows), "
          f"first {args.dev_questions} dev questions\n")
    print(f"machine: {harness.machine()}; config squad_v1.yaml, windows {args.max_length} / stride {args.doc_stride}, "
          f"lr {args.lr}, {args.epochs} epochs\n")
    print("| arm | updates | minutes | EM | F1 |\n|---|---|---|---|---|")
    for name, r in results.items():
        minutes = f"{r['minutes']:.1f}" if r["minutes"] is not None else "-"
        print(f"| {name} | {r['updates']} | {minutes} | {r['exact']:.2f} | {r['f1']:.2f} |")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "windows": windows, "results": results}, f, indent=1)
    fig, ax = harness.subplots(figsize=(5, 3))
    names = list(results)
    ax.bar([i - 0.2 for i in range(len(names))], [results[n]["exact"] for n in names], 0.4, label="EM")
    ax.bar([i + 0.2 for i in range(len(names))], [results[n]["f1"] for n in names], 0.4, label="F1")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("dev score (%)")
    ax.set_title(f"SQuAD 1.1, {args.train_questions} train questions")
    ax.legend()
    harness.save_plot(fig, args.plot)


if __name__ == "__main__":
    main()
