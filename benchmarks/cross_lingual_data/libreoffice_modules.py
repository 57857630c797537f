"""Zero-shot module classification on LibreOffice Help: which application a help page belongs to.

The label is the page's module directory (``text/<module>/...``: scalc, swriter, sbasic, ...), the
same in every language because translations keep the English page paths. A unit is one page: its
first paragraphs joined, with the untranslated product names masked (product_names.py), since
"Calc" or "Writer" on a page would give the label away in any language.
"""
from typing import Dict, List, Sequence, Tuple

from .product_names import mask_product_names

# the modules with the most pages (English: shared 842, scalc 424, sbasic 420, swriter 406,
# simpress 198; the others have fewer than 100 pages, 2-6 of them in the test split)
DEFAULT_MODULES = ("sbasic", "scalc", "shared", "simpress", "swriter")


def module_of(page: str) -> str:
    """``scalc/01/func_sum.html`` or ``text/scalc/01/func_sum.html`` -> ``scalc``."""
    parts = [p for p in page.replace("\\", "/").split("/") if p]
    if parts and parts[0] == "text":
        parts = parts[1:]
    if len(parts) < 2:
        raise ValueError(f"page path {page!r} has no module directory: expected <module>/.../<page>.html "
                         "as scripts/fetch_libreoffice_help.py writes it")
    return parts[0]


def page_examples(pages: Dict[str, List[Tuple[str, str]]], modules: Sequence[str], paragraphs: int = 8,
                  placeholder: str = "PRODUCT") -> Tuple[List[str], List[str], List[str]]:
    """(page paths, texts, labels) of the pages whose module is in ``modules``: the first
    ``paragraphs`` paragraphs of each page joined by spaces, product names masked."""
    if paragraphs < 1:
        raise ValueError(f"paragraphs per page {paragraphs} must be at least 1")
    wanted = set(modules)
    paths, texts, labels = [], [], []
    for page, rows in pages.items():
        module = module_of(page)
        if module not in wanted:
            continue
        paths.append(page)
        texts.append(mask_product_names(" ".join(text for _, text in rows[:paragraphs]), placeholder))
        labels.append(module)
    return paths, texts, labels
