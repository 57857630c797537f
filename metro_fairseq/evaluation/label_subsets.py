"""Labelled data in the SST-2 layout and the stratified subsets learning curves are measured on.

A subset is a function of (labels, n, seed) only, drawn from the training split alone (dev is
never read here). For one seed the subsets are nested (n=100 lies inside n=300), so the points of
one curve differ only in how many labels they add, not in which.
"""
import csv
import random
from collections import defaultdict
from typing import Dict, List, Sequence, Tuple


def read_labelled_tsv(path: str) -> Tuple[List[str], List[str]]:
    """``sentence<TAB>label`` rows after a header line (SST-2 layout); labels stay strings."""
    sentences, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        for line_no, row in enumerate(reader, start=1):
            if line_no == 1:
                continue
            if len(row) < 2 or not row[-1].strip():
                raise ValueError(f"{path}:{line_no}: expected 'sentence<TAB>label' (SST-2 layout), got {len(row)} column(s)")
            sentences.append(row[0])
            labels.append(row[-1].strip())
    if not sentences:
        raise ValueError(f"{path} holds no examples (SST-2 layout: a header line, then 'sentence<TAB>label' rows)")
    return sentences, labels


def _by_class(labels: Sequence[str]) -> Dict[str, List[int]]:
    groups = defaultdict(list)
    for i, label in enumerate(labels):
        groups[label].append(i)
    return dict(sorted(groups.items()))


def class_quotas(labels: Sequence[str], n: int) -> Dict[str, int]:
    """How many of each class a stratified sample of ``n`` holds: proportional to the class sizes
    by largest remainder, at least one per class while ``n`` allows."""
    groups = _by_class(labels)
    total = len(labels)
    if not 0 < n <= total:
        raise ValueError(f"subset size {n} must lie in 1..{total} (the training set's size)")
    exact = {c: n * len(idx) / total for c, idx in groups.items()}
    quota = {c: min(len(groups[c]), max(1 if n >= len(groups) else 0, int(q))) for c, q in exact.items()}
    # hand out what is left by largest remainder, never beyond a class's size
    order = sorted(groups, key=lambda c: exact[c] - int(exact[c]), reverse=True)
    while sum(quota.values()) < n:
        for c in order:
            if sum(quota.values()) < n and quota[c] < len(groups[c]):
                quota[c] += 1
    while sum(quota.values()) > n:  # the one-per-class floor can overshoot: take back from the largest
        c = max((k for k in quota if quota[k] > 1), key=lambda k: quota[k] - exact[k])
        quota[c] -= 1
    return quota


def stratified_subset(labels: Sequence[str], n: int, seed: int) -> List[int]:
    """Indices of a stratified sample of ``n`` examples, fixed per (n, seed) and nested in n."""
    quota = class_quotas(labels, n)
    chosen = []
    for c, idx in _by_class(labels).items():
        order = list(idx)
        random.Random(f"{seed}:{c}").shuffle(order)  # per class, independent of n: nested subsets
        chosen.extend(order[: quota[c]])
    return sorted(chosen)


def stratified_split(labels: Sequence[str], fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(kept, held_out) indices: ``fraction`` of every class held out (at least one where a class
    has two or more examples), seeded."""
    kept, held = [], []
    for c, idx in _by_class(labels).items():
        order = list(idx)
        random.Random(f"split:{seed}:{c}").shuffle(order)
        k = int(round(fraction * len(order)))
        k = min(max(k, 1 if len(order) > 1 else 0), len(order) - 1 if len(order) > 1 else 0)
        held.extend(order[:k])
        kept.extend(order[k:])
    return sorted(kept), sorted(held)


def parse_sizes(sizes: Sequence[str], train_size: int) -> List[int]:
    """``["100", "300", "all"]`` -> sorted distinct sizes; sizes at or above the training set
    become the full set."""
    out = set()
    for s in sizes:
        if s == "all":
            out.add(train_size)
            continue
        try:
            n = int(s)
        except ValueError:
            raise ValueError(f"size {s!r} is neither a number nor 'all'") from None
        if n <= 0:
            raise ValueError(f"size {n} must be positive")
        out.add(min(n, train_size))
    return sorted(out)
