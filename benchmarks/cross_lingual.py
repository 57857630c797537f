#!/usr/bin/env python
"""Cross-lingual transfer of multilingual METRO pretraining (XLM-R's recipe) on real LibreOffice Help.

    python benchmarks/cross_lingual.py [--max-update 1250] [--langs en,de,fr,es,el,ru,hi] [--jobs 2]
    python benchmarks/cross_lingual.py --tiny        # en,de,ru, 20 updates, few pages: checks the pipeline

Data: LibreOffice Help in every language (scripts/fetch_libreoffice_help.py: Debian's
libreoffice-help-<lang> packages, split into train/valid/test by page path, the same in every
language). One shared SentencePiece vocabulary (sampled with alpha 0.3) is trained on the train pages
of all languages (scripts/prepare_multilingual_corpus.py); valid and test pages never reach pretraining.

Arms, all the CPU-scale METRO recipe (config/pretraining/metro_cpu_small.yaml: 4 x 128 main model,
2-layer generator, RTD + corrective LM) for the same --max-update updates of 32 blocks:
- alpha0.3: all languages, sampled with p_i ~ n_i^0.3 (XLM-R);
- alpha1.0: all languages in their natural shares;
- english: English only (task.languages=en), same vocabulary, so it can read every language;
- random: the same main model untrained (the floor).

Evaluations, on frozen mean-pooled last-layer states (no fine-tuning):
- zero-shot module classification: which application (scalc, swriter, sbasic, simpress, shared) a
  help page belongs to, from the page's first --paragraphs paragraphs with the untranslated product
  names (LibreOffice, Calc, Writer, ...) masked. An L2 logistic regression is trained on English train
  pages, its C chosen on English valid pages, and tested on every language's test pages;
- retrieval: --pairs held-out (test-page) paragraphs per language paired with their English original
  by (page path, paragraph id); accuracy@1 of the cosine nearest neighbour among the English
  paragraphs of those pairs (and English -> language in results.json).
Resumable: fetched languages, the corpus, finished arms and evaluations are skipped when the command
runs again, and an interrupted arm continues from its checkpoint_last.pt. Progress goes to stdout;
results to OUT/results.json; Markdown tables; a PNG (docs/benchmarks/cross_lingual.png).
"""
import argparse
import concurrent.futures
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REPO = harness.REPO
sys.path.insert(0, REPO)
from cross_lingual_data.libreoffice_modules import DEFAULT_MODULES  # noqa: E402
from metro_fairseq.fairseq_log import VALID, read_log  # noqa: E402
PRESET_DIR = os.path.join(REPO, "metro_fairseq", "config", "pretraining")
ARMS = ("alpha0.3", "alpha1.0", "english", "random")
# ++: set whether or not the preset names the option (metro_cpu_small is monolingual and does not)
ARM_OVERRIDES = {
    "alpha0.3": ["++task.multilang_sampling_alpha=0.3"],
    "alpha1.0": ["++task.multilang_sampling_alpha=1.0"],
    "english": ["++task.languages=en"],
}
SPLITS = ("train", "valid", "test")
# 16k pieces for 7 languages: about XLM-R's pieces per language (250k for 100); 1,250 updates: about
# 30 min per arm at two arms at a time on 2 cores (estimated from sample_efficiency.py's METRO arm)
FULL = {"langs": "en,de,fr,es,el,ru,hi", "max_update": 1250, "vocab_size": 16000, "max_pages": None,
        "pairs": 1000, "out": os.path.join(REPO, "outputs", "bench", "cross_lingual"),
        "plot": os.path.join(REPO, "docs", "benchmarks", "cross_lingual.png")}
TINY = {"langs": "en,de,ru", "max_update": 20, "vocab_size": 1000, "max_pages": 150, "pairs": 200,
        "out": os.path.join(REPO, "outputs", "bench", "cross_lingual_tiny"), "plot": None}


def log(message):
    print(message, flush=True)


def fail(message):
    sys.exit(f"cross_lingual: error: {message}")


def run(cmd, threads=1):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = subprocess.run([str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{' '.join(map(str, cmd[:4]))} ... failed:\n{result.stdout[-1500:]}\n{result.stderr[-3000:]}")
    return result.stdout


# ---------------------------------------------------------------- data


def fetch(args):
    """OUT/help/<lang>.<split>.{txt,tsv}; a language is fetched into a scratch folder and moved in
    when complete, so an interrupted fetch is redone rather than half used."""
    help_dir = os.path.join(args.out, "help")
    missing = [lang for lang in args.langs
               if not all(os.path.exists(os.path.join(help_dir, f"{lang}.{s}.tsv")) for s in SPLITS)]
    if missing:
        log(f"[fetch] LibreOffice Help for {','.join(missing)} (Debian packages, cached in data/download)")
        scratch = os.path.join(args.out, "help.partial")
        shutil.rmtree(scratch, ignore_errors=True)
        log(run([sys.executable, "scripts/fetch_libreoffice_help.py", "--langs", ",".join(missing), "--outdir",
                 scratch, "--cache-dir", os.path.join(REPO, "data", "download")]).rstrip())
        os.makedirs(help_dir, exist_ok=True)
        for name in os.listdir(scratch):
            os.replace(os.path.join(scratch, name), os.path.join(help_dir, name))
        os.rmdir(scratch)
    return help_dir


def capped(pages, max_pages, seed=1):
    """At most ``max_pages`` pages, a seeded sample across all modules, in page order (--tiny)."""
    if max_pages is None or len(pages) <= max_pages:
        return pages
    keep = set(random.Random(seed).sample(list(pages), max_pages))
    return {p: rows for p, rows in pages.items() if p in keep}


def prepare(args, help_dir):
    """The train pages (never valid/test) of every language -> OUT/data-bin, one shared vocabulary."""
    from cross_lingual_data.help_pages import read_pages

    dest = os.path.join(args.out, "data-bin")
    stamp = os.path.join(dest, "prepared.json")
    wanted = {"langs": args.langs, "vocab_size": args.vocab_size, "max_pages": args.max_pages, "spm_alpha": 0.3}
    if os.path.exists(stamp):
        had = json.load(open(stamp))
        if had != wanted:
            fail(f"{dest} was prepared with {had}, not {wanted}: pass another --out or delete {dest}")
        return dest
    log(f"[corpus] train pages of {','.join(args.langs)} -> shared SentencePiece ({args.vocab_size} pieces) -> {dest}")
    text_dir = os.path.join(args.out, "corpus")
    os.makedirs(text_dir, exist_ok=True)
    files = {}
    for lang in args.langs:
        for split in ("train", "valid"):  # valid only as prepare's held-out split: validation is off
            pages = capped(read_pages(help_dir, lang, split), args.max_pages)
            files[lang, split] = os.path.join(text_dir, f"{lang}.{split}.txt")
            with open(files[lang, split], "w", encoding="utf-8") as f:
                f.writelines("\n".join(t for _, t in rows) + "\n\n" for rows in pages.values())
    scratch = dest + ".partial"
    shutil.rmtree(scratch, ignore_errors=True)
    out = run([sys.executable, "scripts/prepare_multilingual_corpus.py",
               "--train", *[f"{lang}={files[lang, 'train']}" for lang in args.langs],
               "--valid", *[f"{lang}={files[lang, 'valid']}" for lang in args.langs],
               "--alpha", "0.3", "--vocab-size", args.vocab_size, "--workers", args.jobs * args.threads,
               "--destdir", scratch])
    log("\n".join(ln for ln in out.splitlines() if "| " in ln))  # the sample and fertility tables
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(scratch, dest)
    with open(stamp, "w") as f:
        json.dump(wanted, f)
    return dest


# ---------------------------------------------------------------- pretraining


def train_log_done(path):
    return os.path.exists(path) and "done training" in open(path, encoding="utf-8").read()


def pretrain(arm, args, data):
    preset = harness.composed_preset(PRESET_DIR, args.preset)
    run_dir = os.path.join(args.out, "pretrain", arm)
    train_log = os.path.join(run_dir, "train.log")
    updates = args.max_update
    # a short run (--tiny) keeps a tenth of its updates for warmup, and still logs and saves a few times
    warmup = min(int(preset.lr_scheduler.warmup_updates), max(1, updates // 10))
    log_interval = min(int(preset.common.log_interval), max(1, updates // 10))
    save_interval = min(int(preset.checkpoint.save_interval_updates), max(1, updates // 4))
    marker = os.path.join(run_dir, "resumed")  # fairseq's hydra log file does not say it loaded a checkpoint
    if not train_log_done(train_log):
        resumed = os.path.exists(os.path.join(run_dir, "checkpoint_last.pt"))
        if resumed:
            open(marker, "a").close()
        log(f"[pretrain] {arm}: {updates} updates ({args.preset}, {' '.join(ARM_OVERRIDES[arm])})"
            + (" - resuming from checkpoint_last.pt" if resumed else "") + f"; progress: {train_log}")
        os.makedirs(run_dir, exist_ok=True)
        start = time.time()
        run([sys.executable, "-m", "fairseq_cli.hydra_train", "--config-dir", PRESET_DIR, "--config-name",
             args.preset, f"task.data={data}", f"checkpoint.save_dir={run_dir}", f"common.log_file={train_log}",
             "common.log_format=json",
             f"optimization.max_update={updates}", f"lr_scheduler.total_num_update={updates}",
             f"lr_scheduler.warmup_updates={warmup}", f"common.log_interval={log_interval}",
             f"checkpoint.save_interval_updates={save_interval}", "dataset.num_workers=0", *ARM_OVERRIDES[arm]],
            threads=args.threads)
        log(f"[pretrain] {arm}: done in {(time.time() - start) / 60:.1f} min")
    logged = read_log(train_log, require=True)
    if updates not in {r.num_updates for r in logged}:
        fail(f"{run_dir} holds a run that did not end at {updates} updates (another --max-update): "
             f"pass another --out or delete {run_dir}")
    # fairseq's wall clock restarts with each (resumed) start: add up the parts
    walls = [r["wall"] for r in logged if r.kind != VALID and "wall" in r]
    minutes = sum(w for w, after in zip(walls, walls[1:] + [0.0]) if after < w) / 60
    last = logged.last_training().stats
    main = os.path.join(run_dir, "main.pt")
    if not os.path.exists(main):
        run([sys.executable, "scripts/export_main_model.py", os.path.join(run_dir, "checkpoint_last.pt"), main])
    return {"updates": updates, "train_minutes": minutes,
            "resumed": os.path.exists(marker), "main_model": main, "log": train_log, "last": last}


# ---------------------------------------------------------------- evaluation


def evaluate(arm, checkpoint, args, help_dir, data):
    """Transfer accuracy per language and retrieval acc@1 per language of one arm, cached in OUT/eval."""
    import torch

    from cross_lingual_data.aligned_pairs import aligned_pairs
    from metro_fairseq.evaluation.checkpoint_features import encode_texts, load_main_model, mean_pooled_states
    from cross_lingual_data.help_pages import read_pages
    from cross_lingual_data.libreoffice_modules import page_examples
    from metro_fairseq.evaluation.linear_probe import accuracy, fit_selecting_C_on_dev
    from cross_lingual_data.retrieval import retrieval_accuracy

    out = os.path.join(args.out, "eval", f"{arm}.json")
    settings = {"langs": args.langs, "modules": args.modules, "paragraphs": args.paragraphs,
                "max_tokens": args.max_tokens, "pairs": args.pairs, "max_pages": args.max_pages,
                "updates": None if arm == "random" else args.max_update,
                "checkpoint_mtime": os.path.getmtime(checkpoint)}
    if os.path.exists(out):
        cached = json.load(open(out))
        if cached.get("settings") == settings:
            return cached
    log(f"[eval] {arm}: module classification and retrieval")
    start = time.time()
    model, vocab, spm_path, kind = load_main_model(checkpoint, data, random_init=(arm == "random"))

    def features(texts):
        return mean_pooled_states(model, kind, encode_texts(texts, vocab, spm_path, args.max_tokens), vocab.pad())

    def examples(lang, split, cap=None):
        _, texts, labels = page_examples(capped(read_pages(help_dir, lang, split), cap), args.modules,
                                         args.paragraphs)
        return texts, labels

    index = {m: i for i, m in enumerate(args.modules)}
    train_x, train_y = examples("en", "train", args.max_pages)
    dev_x, dev_y = examples("en", "valid")
    for split, labels in (("train", train_y), ("valid", dev_y)):
        missing = sorted(set(args.modules) - set(labels))
        if missing:
            fail(f"no English {split} page of module(s) {','.join(missing)}: choose --modules among the modules "
                 f"with pages (a page's module is its first directory in {help_dir}/en.{split}.tsv)")
    probe = fit_selecting_C_on_dev(features(train_x), torch.tensor([index[y] for y in train_y]),
                                   features(dev_x), torch.tensor([index[y] for y in dev_y]), len(args.modules))
    transfer, sizes = {}, {}
    for lang in args.langs:
        test_x, test_y = examples(lang, "test")
        transfer[lang] = accuracy(probe.predict(features(test_x)), torch.tensor([index[y] for y in test_y]))
        sizes[lang] = len(test_y)
    retrieval = {}
    for lang in args.langs:
        if lang == "en":
            continue
        pairs = aligned_pairs(help_dir, lang, n=args.pairs)
        en = features([p[1] for p in pairs])
        other = features([p[2] for p in pairs])
        retrieval[lang] = {"to_en": retrieval_accuracy(other, en), "from_en": retrieval_accuracy(en, other),
                           "pairs": len(pairs)}
    result = {"settings": settings, "transfer": transfer, "test_pages": sizes, "train_pages": len(train_y),
              "dev_pages": len(dev_y), "dev_accuracy": probe.dev_accuracy, "C": probe.selected_C,
              "retrieval": retrieval, "seconds": time.time() - start}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    log(f"[eval] {arm}: done in {result['seconds']:.0f} s")
    return result


def floors(args, help_dir):
    """What needs no model: the English-train majority class on each test set, retrieval chance."""
    from collections import Counter

    from cross_lingual_data.help_pages import read_pages
    from cross_lingual_data.libreoffice_modules import page_examples

    _, _, train_y = page_examples(capped(read_pages(help_dir, "en", "train"), args.max_pages), args.modules)
    majority = Counter(train_y).most_common(1)[0][0]
    out = {"majority_class": majority, "transfer": {}}
    for lang in args.langs:
        _, _, test_y = page_examples(read_pages(help_dir, lang, "test"), args.modules)
        out["transfer"][lang] = 100.0 * test_y.count(majority) / max(len(test_y), 1)
    return out


# ---------------------------------------------------------------- report


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def report(args, pre, evals, floor):
    others = [lang for lang in args.langs if lang != "en"]
    log(f"\n## Pretraining: {args.preset}, {args.max_update} updates per arm\n")
    log("| arm | languages | updates | minutes | resumed | last loss | last MLM loss |")
    log("|---|---|---|---|---|---|---|")
    for arm, p in pre.items():
        langs = "en" if arm == "english" else ",".join(args.langs)
        log(f"| {arm} | {langs} | {p['updates']} | {p['train_minutes']:.1f} | {'yes' if p['resumed'] else 'no'} | "
            f"{p['last'].get('loss', '-')} | {p['last'].get('mlm_loss', '-')} |")
    first = next(iter(evals.values()))
    log("\n## Zero-shot module classification: accuracy (%) on each language's test pages\n")
    log(f"Probe on frozen mean-pooled states, trained on {first['train_pages']} English train pages, C chosen on "
        f"{first['dev_pages']} English valid pages; {len(args.modules)} classes ({', '.join(args.modules)}); "
        f"test pages: {', '.join(f'{k} {v}' for k, v in first['test_pages'].items())}.\n")
    log("| arm | " + " | ".join(args.langs) + " | mean (non-en) |")
    log("|---|" + "---|" * (len(args.langs) + 1))
    for arm, e in evals.items():
        log(f"| {arm} | " + " | ".join(f"{e['transfer'][lang]:.1f}" for lang in args.langs)
            + f" | {mean(e['transfer'][lang] for lang in others):.1f} |")
    log(f"| majority class ({floor['majority_class']}) | "
        + " | ".join(f"{floor['transfer'][lang]:.1f}" for lang in args.langs)
        + f" | {mean(floor['transfer'][lang] for lang in others):.1f} |")
    pairs = {lang: first["retrieval"][lang]["pairs"] for lang in others}
    log("\n## Retrieval: acc@1 (%) language -> English among held-out aligned paragraphs\n")
    log("Pairs per language: " + ", ".join(f"{k} {v}" for k, v in pairs.items()) + ".\n")
    log("| arm | " + " | ".join(others) + " | mean |")
    log("|---|" + "---|" * (len(others) + 1))
    for arm, e in evals.items():
        log(f"| {arm} | " + " | ".join(f"{e['retrieval'][lang]['to_en']:.1f}" for lang in others)
            + f" | {mean(e['retrieval'][lang]['to_en'] for lang in others):.1f} |")
    log("| chance | " + " | ".join(f"{100.0 / pairs[lang]:.1f}" for lang in others)
        + f" | {mean(100.0 / pairs[lang] for lang in others):.1f} |")
    return {"args": {k: v for k, v in vars(args).items()}, "machine": harness.machine(), "pretraining": pre,
            "evaluation": evals, "floors": floor,
            "retrieval_chance": {lang: 100.0 / pairs[lang] for lang in others}}


def plot(results, args):
    import numpy as np

    evals, floor, chance = results["evaluation"], results["floors"], results["retrieval_chance"]
    others = [lang for lang in args.langs if lang != "en"]
    fig, axes = harness.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [len(args.langs), len(others)]})
    width = 0.8 / len(evals)
    for ax, langs, value, floor_values, title in (
        (axes[0], args.langs, lambda e, lang: e["transfer"][lang], floor["transfer"],
         "zero-shot module classification (probe on English)"),
        (axes[1], others, lambda e, lang: e["retrieval"][lang]["to_en"], chance, "retrieval acc@1, language -> en"),
    ):
        x = np.arange(len(langs))
        for i, (arm, e) in enumerate(evals.items()):
            ax.bar(x + (i - (len(evals) - 1) / 2) * width, [value(e, lang) for lang in langs], width, label=arm)
        ax.scatter(x, [floor_values[lang] for lang in langs], marker="_", s=600, color="black",
                   label="floor: majority class (left), chance (right)", zorder=3)
        ax.set_xticks(x)
        ax.set_xticklabels(langs)
        ax.set_ylabel("%")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"LibreOffice Help, {args.preset}, {args.max_update} updates per arm", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))  # the legend below the panels
    os.makedirs(os.path.dirname(os.path.abspath(args.plot)), exist_ok=True)
    fig.savefig(args.plot, dpi=120)
    log(f"\nplot: {os.path.relpath(args.plot, REPO)}")


# ---------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true",
                   help="check the pipeline end to end: en,de,ru, 20 updates, 150 pages per language, 200 pairs "
                        "(into outputs/bench/cross_lingual_tiny; explicit options still win)")
    p.add_argument("--langs", help=f"comma-separated languages, en among them (default {FULL['langs']})")
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    p.add_argument("--max-update", type=int,
                   help=f"pretraining updates per arm, the equal budget (default {FULL['max_update']}: "
                        "about 30 min per arm, two arms at a time on 2 cores)")
    p.add_argument("--preset", default="metro_cpu_small", help="METRO recipe under config/pretraining/")
    p.add_argument("--vocab-size", type=int, help=f"shared SentencePiece vocabulary (default {FULL['vocab_size']})")
    p.add_argument("--max-pages", type=int, help="pages per language and split for pretraining and the probe's "
                                                 "English training set (default: all)")
    p.add_argument("--modules", default=",".join(DEFAULT_MODULES),
                   help="module directories to classify (each needs English train, valid and test pages)")
    p.add_argument("--paragraphs", type=int, default=8, help="first paragraphs of a page that make its text")
    p.add_argument("--max-tokens", type=int, default=128,
                   help="tokens per page or paragraph, <s> included (longer ones are cut; 128 = the preset's blocks)")
    p.add_argument("--pairs", type=int, help=f"aligned paragraph pairs per language (default {FULL['pairs']})")
    p.add_argument("--out", help="results folder (default outputs/bench/cross_lingual[_tiny])")
    p.add_argument("--plot", help="PNG (default docs/benchmarks/cross_lingual.png; --tiny: OUT/cross_lingual.png)")
    p.add_argument("--jobs", type=int, default=2, help="pretraining runs at a time")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    args = p.parse_args(argv)
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.plot = args.plot or os.path.join(args.out, "cross_lingual.png")
    args.langs = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    args.modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    if "en" not in args.langs or len(args.langs) < 2:
        p.error(f"--langs {','.join(args.langs)} must hold en (the probe's training language) and another language")
    if len(set(args.langs)) != len(args.langs):
        p.error(f"--langs {','.join(args.langs)} names a language twice")
    if len(args.modules) < 2:
        p.error("--modules needs at least two modules to classify between")
    if args.max_update < 1 or args.paragraphs < 1 or args.pairs < 1 or args.max_tokens < 2 or args.jobs < 1:
        p.error("--max-update, --paragraphs, --pairs and --jobs must be positive and --max-tokens at least 2")
    if args.arms == ["random"]:
        p.error("the random arm takes its architecture from a pretrained arm: add one to --arms")
    return args


def main(argv=None):
    args = parse_args(argv)
    for name in ("metro_fairseq", "fairseq", "matplotlib"):  # the tables, not their logs
        logging.getLogger(name).setLevel(logging.WARNING)
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    help_dir = fetch(args)
    data = prepare(args, help_dir)
    trained = [a for a in args.arms if a != "random"]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        pre = dict(zip(trained, pool.map(lambda a: pretrain(a, args, data), trained)))
    import torch

    torch.set_num_threads(args.jobs * args.threads)
    checkpoints = {a: pre[a]["main_model"] for a in trained}
    if "random" in args.arms:
        checkpoints["random"] = checkpoints[trained[0]]  # its architecture, untrained
    evals = {a: evaluate(a, checkpoints[a], args, help_dir, data) for a in args.arms}
    results = report(args, pre, evals, floors(args, help_dir))
    results["total_minutes"] = (time.time() - start) / 60
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, args)
    log(f"results: {os.path.relpath(os.path.join(args.out, 'results.json'), REPO)}; "
        f"this pass took {results['total_minutes']:.1f} min")


if __name__ == "__main__":
    main()
