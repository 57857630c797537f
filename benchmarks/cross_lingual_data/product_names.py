"""Masking of LibreOffice's product names, which the translations leave in English.

A capitalised name (``Calc``, ``Writer``, ``Draw``) is masked as a word, in CamelCase compounds
(``StarBasic``, ``LibreOfficeImpress``, ``BasicLibraries``) and in capitals (``BASIC``); its
lower-case form is an ordinary English word (draw, math, base, basic, chart, writer) that the
other languages translate, so it stays. ``LibreOffice``, its predecessors (``OpenOffice``,
``StarOffice``, still named in the help) and ``Calc`` are no English words: masked in any case.
A name inside a longer lower-case word (``Calculate``, ``Drawing``, ``Basics``, ``scalc``) is not a
name and stays.
"""
import re

PRODUCT_NAMES = ("LibreOffice", "OpenOffice", "StarOffice", "Calc", "Writer", "Impress", "Draw", "Math", "Base",
                 "Basic", "Chart")
ANY_CASE = ("LibreOffice", "OpenOffice", "StarOffice", "Calc")


def _pattern() -> "re.Pattern":
    # capitalised and capital forms: a word of their own or a CamelCase part (after a lower-case
    # letter, before an upper-case one); longest names first so LibreOffice wins over Office-less parts
    names = sorted(PRODUCT_NAMES, key=len, reverse=True)
    forms = sorted({form for n in names for form in (n, n.upper())}, key=len, reverse=True)
    camel = r"(?:(?<![^\W\d_])|(?<=[a-z]))(?:%s)(?=[^a-z]|$)" % "|".join(map(re.escape, forms))
    # any-case names as whole words only ("scalc" is a module directory, not a name)
    whole = r"\b(?i:%s)\b" % "|".join(map(re.escape, sorted(ANY_CASE, key=len, reverse=True)))
    return re.compile(f"{whole}|{camel}")


_PRODUCT = _pattern()


def mask_product_names(text: str, placeholder: str = "PRODUCT") -> str:
    """``text`` with every product name replaced by ``placeholder``."""
    return _PRODUCT.sub(placeholder, text)
