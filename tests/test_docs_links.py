"""Every relative link of README.md and docs/**/*.md reaches a file, and its #anchor a heading there."""
import os
import re

import pytest

from doc_shell import REPO, doc_files

LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchors(path):
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces as '-')."""
    anchors, fenced = set(), False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(("```", "~~~")):
                fenced = not fenced
            elif not fenced and (m := re.match(r"#+\s+(.*)", line)):
                anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return anchors


def broken_links(doc):
    broken = []
    with open(os.path.join(REPO, doc), encoding="utf-8") as f:
        text = f.read()
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(REPO, os.path.dirname(doc), path)) if path else os.path.join(REPO, doc)
        if not os.path.exists(full):
            broken.append(f"{target}: no such file")
        elif anchor and full.endswith(".md") and anchor not in github_anchors(full):
            broken.append(f"{target}: no heading with that anchor")
    return broken


def test_anchor_rule_matches_github():
    assert github_anchors(os.path.join(REPO, "docs", "benchmarks.md")) >= {
        "1-cost-per-update", "12-bf16-against-fp32-on-cpu-and-model-flop-utilisation",
        "26-why-fairseqs-masked-lm-jumped-after-a-resume"}


@pytest.mark.parametrize("doc", doc_files())
def test_links_resolve(doc):
    assert broken_links(doc) == [], doc


def test_readme_stays_a_way_in():
    """The README is the user's way in (at most about 20 kB); the details live in docs/."""
    assert os.path.getsize(os.path.join(REPO, "README.md")) <= 20_000
