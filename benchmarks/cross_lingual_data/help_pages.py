"""The aligned LibreOffice Help tables of scripts/fetch_libreoffice_help.py: ``OUTDIR/<lang>.<split>.tsv``
with one paragraph per row, ``page path<TAB>paragraph id<TAB>text``, the same page paths and ids in
every language (a translation keeps the id of its English paragraph)."""
import os
from collections import OrderedDict
from typing import Dict, List, Tuple

SPLITS = ("train", "valid", "test")


def help_tsv(help_dir: str, lang: str, split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    path = os.path.join(help_dir, f"{lang}.{split}.tsv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: run scripts/fetch_libreoffice_help.py --langs {lang} "
                                f"--outdir {help_dir}")
    return path


def read_pages(help_dir: str, lang: str, split: str) -> "OrderedDict[str, List[Tuple[str, str]]]":
    """page path -> [(paragraph id, text), ...] in page order, for one language and split."""
    pages = OrderedDict()
    path = help_tsv(help_dir, lang, split)
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            cells = line.rstrip("\n").split("\t")
            if len(cells) != 3:
                raise ValueError(f"{path}:{line_no}: expected 'page<TAB>paragraph id<TAB>text', "
                                 f"got {len(cells)} column(s): refetch with scripts/fetch_libreoffice_help.py")
            page, pid, text = cells
            pages.setdefault(page, []).append((pid, text))
    return pages


def paragraphs_by_id(pages: Dict[str, List[Tuple[str, str]]]) -> Dict[Tuple[str, str], str]:
    """(page, paragraph id) -> text; an id that occurs twice on a page is left out (its pairing
    across languages would be ambiguous)."""
    seen, out = set(), {}
    for page, paragraphs in pages.items():
        for pid, text in paragraphs:
            key = (page, pid)
            if key in seen:
                out.pop(key, None)
                continue
            seen.add(key)
            out[key] = text
    return out
