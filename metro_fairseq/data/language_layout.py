"""The multilingual data layout DATA/<lang>/<split>.{bin,idx} with one shared DATA/dict.txt.

Unlike fairseq's multilingual_masked_lm, a sub-directory is a language only when listed in
--languages or when it holds a binarized split, so a stray folder (logs, raw text) is never trained on.
"""
import os
from typing import List, Optional, Tuple


def binarized_splits(path: str) -> List[str]:
    """Names X with both X.bin and X.idx in ``path``."""
    if not os.path.isdir(path):
        return []
    names = os.listdir(path)
    return sorted(n[: -len(".idx")] for n in names if n.endswith(".idx") and n[: -len(".idx")] + ".bin" in names)


def is_multilingual(data_path: str, languages: str) -> bool:
    """Multilingual when --languages is given, or when DATA holds no binarized split of its own."""
    return bool(languages.strip()) or not binarized_splits(data_path)


def find_languages(data_path: str, languages: str) -> Tuple[List[str], List[str]]:
    """(languages, ignored sub-directories). Raises with a one-line fix on bad input."""
    subdirs = sorted(d for d in os.listdir(data_path) if os.path.isdir(os.path.join(data_path, d)))
    if languages.strip():
        wanted = [lang.strip() for lang in languages.split(",") if lang.strip()]
        missing = [lang for lang in wanted if lang not in subdirs]
        if missing:
            raise FileNotFoundError(
                f"--languages lists {','.join(missing)} but {data_path} has no such directory "
                f"(it has: {','.join(subdirs) or 'none'}): fix the list or binarize those languages into {data_path}/<lang>/"
            )
        if len(set(wanted)) != len(wanted):
            raise ValueError(f"--languages {languages} names a language twice")
        return wanted, [d for d in subdirs if d not in wanted]
    found = [d for d in subdirs if binarized_splits(os.path.join(data_path, d))]
    if not found:
        raise FileNotFoundError(
            f"{data_path} holds neither a binarized split nor language directories <lang>/<split>.bin/.idx: "
            "binarize your corpus with scripts/prepare_corpus.py or scripts/prepare_multilingual_corpus.py"
        )
    return found, [d for d in subdirs if d not in found]


def split_language(split: str, languages: List[str]) -> Tuple[str, Optional[str]]:
    """``valid_de`` -> (``valid``, ``de``); a split without a language suffix -> (split, None)."""
    matches = [lang for lang in languages if split.endswith("_" + lang) and len(split) > len(lang) + 1]
    if not matches:
        return split, None
    lang = max(matches, key=len)
    return split[: -len(lang) - 1], lang


def _symbols(path):
    with open(path, encoding="utf-8") as f:
        return [line.split(" ")[0] for line in f if line.strip()]


def check_language_dictionary(data_path: str, lang: str, shared_dir: Optional[str] = None):
    """A per-language dict.txt (fairseq-preprocess copies --srcdict there) must equal the shared one,
    ``shared_dir/dict.txt`` (default: ``data_path``'s)."""
    own = os.path.join(data_path, lang, "dict.txt")
    if not os.path.isfile(own):
        return
    shared_dir = shared_dir or data_path
    if _symbols(own) != _symbols(os.path.join(shared_dir, "dict.txt")):
        raise ValueError(
            f"{own} differs from {shared_dir}/dict.txt: every language must share one vocabulary; "
            f"binarize {lang} with fairseq-preprocess --srcdict {shared_dir}/dict.txt (or scripts/prepare_multilingual_corpus.py)"
        )


def check_shards(paths: List[str], languages: List[str]):
    """Every shard ``DATA1:DATA2:...`` (one per epoch, as fairseq's masked_lm reads them) must hold
    every language of the first, which fixes the languages and the dictionary, binarized with that
    dictionary where its dict.txt copy says so; found at setup, not when an epoch reaches the shard."""
    for path in paths[1:]:
        missing = [lang for lang in languages if not os.path.isdir(os.path.join(path, lang))]
        if missing:
            raise FileNotFoundError(
                f"shard {path} lacks language(s) {','.join(missing)} of the first shard {paths[0]}: binarize them "
                f"into {path}/<lang>/ with --srcdict {paths[0]}/dict.txt, or leave them out with --languages"
            )
        for lang in languages:
            check_language_dictionary(path, lang, shared_dir=paths[0])
