"""Best validation score of every fine-tuning run under a folder, the median over seeds per task,
and the GLUE-style average, as a Markdown table.

    python scripts/glue_results.py runs/

A run is a folder holding a fairseq log in ``--log-format json`` (``common.log_format=json`` for
fairseq-hydra-train; ``train.log`` from ``--log-file``, ``hydra_train.log`` or any ``*.log``). Its task is the first path component naming a GLUE task (CoLA, SST-2, ... or the
config names cola, sst_2, ...); runs that differ only in a ``seed<N>`` / ``seed_<N>`` component form one group, so
``scripts/sweep.py`` run folders (``task_rte.lr_2e-5.seed_3``) work as they are. Per
task the table shows the group with the best median. Metrics: Matthews correlation for CoLA,
Spearman for STS-B, accuracy otherwise (all x100, as fairseq logs them), as COCO-LM reports them.
"""
import argparse
import os
import re
import statistics
import sys

from .. import fairseq_log

TASKS = ["MNLI", "QQP", "QNLI", "SST-2", "CoLA", "RTE", "MRPC", "STS-B", "WNLI"]
METRIC = {"CoLA": "mcc", "STS-B": "spearman"}


def task_of(path):
    # folder names (runs/SST-2/seed1) or sweep run names (glue/task_sst_2.lr_1e-5.seed_1)
    for part in re.split(r"[/.]", path.replace(os.sep, "/")):
        candidates = {part, part.split("_", 1)[-1]}
        for task in TASKS:
            if task.lower().replace("-", "_") in {c.lower().replace("-", "_") for c in candidates}:
                return task
    return None


def best_score(log, metric):
    """Best value of ``metric`` over the validations (subset ``valid``) of a fairseq_log.FairseqLog."""
    scores = [r[metric] for r in log.valid() if metric in r]  # fairseq logs all of them x100
    return max(scores) if scores else None


def collect(root):
    """{(task, group): [best score of each run]}, and the logs without a JSON line (skipped)."""
    groups, without_json = {}, []
    for folder, _, files in os.walk(root):
        logs = [fairseq_log.read_log(os.path.join(folder, f)) for f in sorted(files) if f.endswith(".log")]
        task = task_of(os.path.relpath(folder, root))
        if not logs or task is None:
            continue
        without_json += [log.source for log in logs if not log.records]
        metric = METRIC.get(task, "accuracy")
        scores = [s for s in (best_score(log, metric) for log in logs) if s is not None]
        if not scores:
            continue
        group = re.sub(r"seed_?\d+", "seed*", os.path.relpath(folder, root))
        groups.setdefault((task, group), []).append(max(scores))
    return groups, without_json


def table(groups):
    best = {}
    for (task, group), scores in groups.items():
        median = statistics.median(scores)
        if task not in best or median > best[task][0]:
            best[task] = (median, group, scores)
    rows = ["| task | metric | median | seeds | runs |", "|---|---|---|---|---|"]
    for task in TASKS:
        if task in best:
            median, group, scores = best[task]
            runs = ", ".join(f"{s:.1f}" for s in sorted(scores))
            rows.append(f"| {task} | {METRIC.get(task, 'accuracy')} | {median:.1f} | {len(scores)} | {group}: {runs} |")
    if best:
        rows.append(f"| **average** | | **{statistics.mean(v[0] for v in best.values()):.1f}** | | {len(best)} tasks |")
    return "\n".join(rows)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="folder with one sub-folder (and log) per fine-tuning run")
    args = p.parse_args(argv)
    if not os.path.isdir(args.root):
        sys.exit(f"glue_results: error: {args.root} does not exist")
    groups, without_json = collect(args.root)
    if not groups and without_json:
        sys.exit(f"glue_results: error: {fairseq_log.NoJsonLines.of(without_json[0])}")
    for path in without_json:
        print(f"glue_results: skipped {path}: no fairseq JSON log lines", file=sys.stderr)
    if not groups:
        sys.exit(f"glue_results: error: no fairseq logs with validation scores under {args.root} "
                 "(run folders must name a GLUE task, e.g. runs/SST-2/seed1/train.log)")
    print(table(groups))


if __name__ == "__main__":
    main()
