#!/usr/bin/env python
"""Fetch a real multilingual corpus: LibreOffice Help (MPL-2.0) from Debian's
``libreoffice-help-<lang>`` packages (``apt-get download`` + ``dpkg-deb -x``, no root install).

Block-level text (headings, paragraphs, list items, table cells) is extracted from every page under
``help/<LANG>/text/``; code (``pre``, ``code``, Basic listings) is skipped, and a non-English paragraph
identical to one on the English page of the same path is dropped (untranslated). Pages are split into
train/valid/test **by page path**, the same way in every language, so evaluation pages stay out of
pretraining. Writes ``OUTDIR/<lang>.<split>.txt`` (one paragraph per line, a blank line between pages)
and ``OUTDIR/<lang>.<split>.tsv`` (page path, paragraph id, text: aligned across languages by path and id).
"""
import argparse
import glob
import hashlib
import os
import subprocess
import sys
from html.parser import HTMLParser

# package suffix and help directory per language code; en is US English
PACKAGES = {"en": ("en-us", "en-US")}
BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th"}
SKIPPED = {"pre", "code", "script", "style", "footer"}


def fail(message: str):
    sys.exit(f"fetch_libreoffice_help: error: {message}")


class HelpPageText(HTMLParser):
    """(paragraph id, text) of each innermost block element inside the page's DisplayArea."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.paragraphs = []
        self.in_display = False
        self.skip_depth = 0
        self.blocks = []  # open block elements: [tag, id, text parts]

    def flush(self):
        if self.blocks:
            text = " ".join("".join(self.blocks[-1][2]).split())
            if text:
                self.paragraphs.append((self.blocks[-1][1], text))
            self.blocks[-1][2] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "DisplayArea":
            self.in_display = True
        if not self.in_display:
            return
        if self.skip_depth or tag in SKIPPED or "bascode" in (attrs.get("class") or ""):
            self.skip_depth += tag not in ("br", "img", "meta", "input")
        elif tag in BLOCKS:
            self.flush()
            self.blocks.append([tag, attrs.get("id") or f"{tag}{len(self.paragraphs)}", []])

    def handle_endtag(self, tag):
        if self.skip_depth:
            self.skip_depth -= 1
            if tag == "footer":
                self.in_display = False
            return
        if self.blocks and tag == self.blocks[-1][0]:
            self.flush()
            self.blocks.pop()

    def handle_data(self, data):
        if self.in_display and not self.skip_depth and self.blocks:
            self.blocks[-1][2].append(data)


def page_paragraphs(path: str):
    parser = HelpPageText()
    with open(path, encoding="utf-8") as f:
        parser.feed(f.read())
    return parser.paragraphs


def fetch_package(lang: str, cache: str) -> str:
    """The extracted help/<LANG>/text directory of one language, downloaded once into ``cache``."""
    suffix, help_dir = PACKAGES.get(lang, (lang.lower(), lang))
    root = os.path.join(cache, "libreoffice-help", lang)
    text_dir = os.path.join(root, "usr", "share", "libreoffice", "help", help_dir, "text")
    if os.path.isdir(text_dir):
        return text_dir
    os.makedirs(root, exist_ok=True)
    package = f"libreoffice-help-{suffix}"
    r = subprocess.run(["apt-get", "download", package], cwd=root, capture_output=True, text=True)
    debs = glob.glob(os.path.join(root, f"{package}_*.deb"))
    if r.returncode != 0 or not debs:
        fail(f"apt-get download {package} failed ({r.stderr.strip()[-200:]}): check the language code "
             "(apt-cache search libreoffice-help) and that apt sources are reachable")
    subprocess.run(["dpkg-deb", "-x", debs[0], root], check=True)
    os.remove(debs[0])
    if not os.path.isdir(text_dir):
        fail(f"{package} holds no {text_dir}")
    return text_dir


def split_of(page: str, valid_pct: int, test_pct: int) -> str:
    bucket = int(hashlib.md5(page.encode()).hexdigest(), 16) % 100
    return "test" if bucket < test_pct else "valid" if bucket < test_pct + valid_pct else "train"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--langs", default="en,de,fr,es,el,ru,hi", help="comma-separated language codes (en first or not)")
    p.add_argument("--outdir", required=True)
    p.add_argument("--cache-dir", default="data/download", help="where packages are extracted and kept")
    p.add_argument("--valid-pct", type=int, default=5, help="percent of pages (by path) held out for validation")
    p.add_argument("--test-pct", type=int, default=10, help="percent of pages (by path) held out for testing")
    args = p.parse_args(argv)
    langs = [lang.strip() for lang in args.langs.split(",") if lang.strip()]
    os.makedirs(args.outdir, exist_ok=True)
    english = {}
    en_dir = fetch_package("en", args.cache_dir)
    for path in sorted(glob.glob(os.path.join(en_dir, "**", "*.html"), recursive=True)):
        english[os.path.relpath(path, en_dir)] = {text for _, text in page_paragraphs(path)}
    for lang in langs:
        text_dir = fetch_package(lang, args.cache_dir)
        out = {s: (open(os.path.join(args.outdir, f"{lang}.{s}.txt"), "w", encoding="utf-8"),
                   open(os.path.join(args.outdir, f"{lang}.{s}.tsv"), "w", encoding="utf-8"))
               for s in ("train", "valid", "test")}
        words, dropped, pages = 0, 0, 0
        for path in sorted(glob.glob(os.path.join(text_dir, "**", "*.html"), recursive=True)):
            page = os.path.relpath(path, text_dir)
            kept = []
            for pid, text in page_paragraphs(path):
                if lang != "en" and text in english.get(page, ()):
                    dropped += 1
                    continue
                kept.append((pid, text))
            if not kept:
                continue
            txt, tsv = out[split_of(page, args.valid_pct, args.test_pct)]
            txt.write("\n".join(t for _, t in kept) + "\n\n")
            tsv.writelines(f"{page}\t{pid}\t{t}\n" for pid, t in kept)
            words += sum(len(t.split()) for _, t in kept)
            pages += 1
        for files in out.values():
            for f in files:
                f.close()
        print(f"[fetch_libreoffice_help] {lang}: {pages} pages, {words:,} words "
              f"({dropped:,} untranslated paragraphs dropped) -> {args.outdir}/{lang}.{{train,valid,test}}.txt", flush=True)


if __name__ == "__main__":
    main()
