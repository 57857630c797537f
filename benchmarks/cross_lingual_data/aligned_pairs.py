"""Translation pairs for retrieval without fine-tuning: the paragraphs of held-out LibreOffice Help
pages that exist in both English and another language, paired by (page path, paragraph id).

Only the test split is read (its pages never reach pretraining or the probe). A pair is kept when
both sides are unique among the candidates (a repeated "Example:" has no single right neighbour)
and the English side has at least ``min_words`` words; then ``n`` pairs are drawn, seeded.
"""
import random
from collections import Counter
from typing import List, Tuple

from .help_pages import paragraphs_by_id, read_pages


def aligned_pairs(help_dir: str, lang: str, n: int = 1000, seed: int = 1, min_words: int = 3,
                  pivot: str = "en", split: str = "test") -> List[Tuple[Tuple[str, str], str, str]]:
    """[((page, paragraph id), pivot text, ``lang`` text), ...], at most ``n``, sorted by key."""
    if n < 1:
        raise ValueError(f"number of pairs {n} must be at least 1")
    if lang == pivot:
        raise ValueError(f"language {lang} is the pivot language itself: pair another language with {pivot}")
    ours = paragraphs_by_id(read_pages(help_dir, pivot, split))
    theirs = paragraphs_by_id(read_pages(help_dir, lang, split))
    keys = [k for k in ours if k in theirs]
    ours_count = Counter(ours[k] for k in keys)
    theirs_count = Counter(theirs[k] for k in keys)
    keys = [k for k in keys if ours_count[ours[k]] == 1 and theirs_count[theirs[k]] == 1
            and len(ours[k].split()) >= min_words]
    if len(keys) > n:
        keys = random.Random(f"{seed}:{lang}").sample(keys, n)
    return [(k, ours[k], theirs[k]) for k in sorted(keys)]
