"""The pieces of the cross-lingual evaluation (benchmarks/cross_lingual.py), on synthetic input:
module labels from page paths, product-name masking, aligned translation pairs, retrieval
accuracy@1 against a naive loop, and the probe whose C is chosen on a dev set."""
import os
import sys

import pytest
import torch

from conftest import REPO
from metro_fairseq.evaluation.linear_probe import fit_selecting_C_on_dev

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from cross_lingual_data.aligned_pairs import aligned_pairs  # noqa: E402
from cross_lingual_data.help_pages import paragraphs_by_id, read_pages  # noqa: E402
from cross_lingual_data.libreoffice_modules import module_of, page_examples  # noqa: E402
from cross_lingual_data.product_names import mask_product_names  # noqa: E402
from cross_lingual_data.retrieval import retrieval_accuracy  # noqa: E402

# ---------------------------------------------------------------- module labels


@pytest.mark.parametrize("page,module", [
    ("scalc/01/04060101.html", "scalc"),
    ("text/swriter/guide/main.html", "swriter"),
    ("sbasic/python/main0000.html", "sbasic"),
    ("shared/01/01010000.html", "shared"),
])
def test_module_is_the_first_directory(page, module):
    assert module_of(page) == module


@pytest.mark.parametrize("page", ["main.html", "text/main.html", ""])
def test_page_without_module_is_one_clear_error(page):
    with pytest.raises(ValueError, match="has no module directory"):
        module_of(page)


def test_page_examples_keep_chosen_modules_first_paragraphs_masked():
    pages = {
        "scalc/01/sum.html": [("h1", "SUM in LibreOffice Calc"), ("p1", "Adds numbers."), ("p2", "Third.")],
        "smath/01/x.html": [("h1", "Math formulas")],
        "swriter/guide/y.html": [("h1", "Writer tables")],
    }
    paths, texts, labels = page_examples(pages, ["scalc", "swriter"], paragraphs=2)
    assert paths == ["scalc/01/sum.html", "swriter/guide/y.html"]
    assert labels == ["scalc", "swriter"]
    assert texts == ["SUM in PRODUCT PRODUCT Adds numbers.", "PRODUCT tables"]


# ---------------------------------------------------------------- product names


@pytest.mark.parametrize("text,masked", [
    ("LibreOffice Calc opens", "PRODUCT PRODUCT opens"),
    ("libreoffice, LIBREOFFICE and calc", "PRODUCT, PRODUCT and PRODUCT"),  # no English words: any case
    ("BASIC in CAPITALS", "PRODUCT in CAPITALS"),
    ("StarBasic, BasicLibraries, LibreOfficeImpress", "StarPRODUCT, PRODUCTLibraries, PRODUCTPRODUCT"),  # CamelCase
    ("Calc-Tabelle in LibreOffice's Writer.", "PRODUCT-Tabelle in PRODUCT's PRODUCT."),
    ("Откройте LibreOffice Impress", "Откройте PRODUCT PRODUCT"),
    # lower-case English words the translations translate: kept
    ("draw a chart with basic math on a base writer", "draw a chart with basic math on a base writer"),
    # names inside longer words: kept
    ("Calculate Drawing Basics Database Mathematics scalc swriter", "Calculate Drawing Basics Database Mathematics scalc swriter"),
])
def test_product_names_masked_by_case_and_word_boundaries(text, masked):
    assert mask_product_names(text) == masked


def test_every_listed_name_is_masked():
    for name in ("LibreOffice", "Calc", "Writer", "Impress", "Draw", "Math", "Base", "Basic", "Chart"):
        assert mask_product_names(f"({name})", "_") == "(_)", name


# ---------------------------------------------------------------- aligned pairs


def write_help(root, lang, split, rows):
    (root / f"{lang}.{split}.tsv").write_text("".join(f"{p}\t{i}\t{t}\n" for p, i, t in rows), encoding="utf-8")


@pytest.fixture
def help_dir(tmp_path):
    write_help(tmp_path, "en", "train", [("scalc/a.html", "p1", "a training page paragraph")])
    write_help(tmp_path, "de", "train", [("scalc/a.html", "p1", "ein Absatz einer Trainingsseite")])
    for split in ("valid",):
        write_help(tmp_path, "en", split, [("scalc/v.html", "p1", "a validation page paragraph")])
        write_help(tmp_path, "de", split, [("scalc/v.html", "p1", "ein Absatz der Validierung")])
    write_help(tmp_path, "en", "test", [
        ("scalc/t.html", "p1", "the sum of two cells"),
        ("scalc/t.html", "p2", "only in English here"),  # no German row
        ("scalc/t.html", "p3", "Example:"),  # too short
        ("scalc/t.html", "p4", "repeated text on two pages"),
        ("swriter/u.html", "p4", "repeated text on two pages"),  # the English side twice: ambiguous
        ("swriter/u.html", "p5", "insert a table here"),
        ("swriter/u.html", "p6", "an id used twice"),
        ("swriter/u.html", "p6", "on one page"),
    ])
    write_help(tmp_path, "de", "test", [
        ("scalc/t.html", "p1", "die Summe zweier Zellen"),
        ("scalc/t.html", "p3", "Beispiel:"),
        ("scalc/t.html", "p4", "wiederholter Text"),
        ("swriter/u.html", "p4", "wiederholter Text, anders"),
        ("swriter/u.html", "p5", "hier eine Tabelle einfügen"),
        ("swriter/u.html", "p6", "eine doppelte Kennung"),
        ("swriter/new.html", "p1", "only in German"),
    ])
    return tmp_path


def test_pairs_exist_in_both_languages_test_split_only(help_dir):
    pairs = aligned_pairs(str(help_dir), "de")
    assert pairs == [
        (("scalc/t.html", "p1"), "the sum of two cells", "die Summe zweier Zellen"),
        (("swriter/u.html", "p5"), "insert a table here", "hier eine Tabelle einfügen"),
    ]


def test_pairs_are_a_seeded_sample(help_dir):
    rows = [("shared/p%d.html" % i, "p", f"English paragraph number {i}") for i in range(50)]
    write_help(help_dir, "en", "test", rows)
    write_help(help_dir, "de", "test", [(p, i, f"deutscher Absatz {k}") for k, (p, i, _) in enumerate(rows)])
    a, b = aligned_pairs(str(help_dir), "de", n=10, seed=1), aligned_pairs(str(help_dir), "de", n=10, seed=1)
    assert a == b and len(a) == 10 and a != aligned_pairs(str(help_dir), "de", n=10, seed=2)
    assert all(en.split()[-1] == de.split()[-1] for _, en, de in a)  # still paired


def test_pairs_need_the_other_language(help_dir):
    with pytest.raises(FileNotFoundError, match=r"fr.test.tsv is missing: run scripts/fetch_libreoffice_help.py --langs fr"):
        aligned_pairs(str(help_dir), "fr")
    with pytest.raises(ValueError, match="is the pivot language itself"):
        aligned_pairs(str(help_dir), "en")


def test_duplicate_ids_on_a_page_are_dropped(help_dir):
    by_id = paragraphs_by_id(read_pages(str(help_dir), "en", "test"))
    assert ("swriter/u.html", "p6") not in by_id and ("swriter/u.html", "p5") in by_id


def test_malformed_table_is_one_clear_error(tmp_path):
    (tmp_path / "en.test.tsv").write_text("page\tonly two\n")
    with pytest.raises(ValueError, match=r"en.test.tsv:1: expected 'page<TAB>paragraph id<TAB>text', got 2"):
        read_pages(str(tmp_path), "en", "test")


# ---------------------------------------------------------------- retrieval accuracy


def naive_accuracy(q, k):
    hits = 0
    for i in range(len(q)):
        sims = [float(torch.dot(q[i], k[j]) / (q[i].norm() * k[j].norm())) for j in range(len(k))]
        hits += max(range(len(sims)), key=lambda j: (sims[j], -j)) == i
    return 100.0 * hits / len(q)


def test_retrieval_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(60, 8, generator=g)
    queries = keys + 0.9 * torch.randn(60, 8, generator=g)  # noisy translations: some found, some not
    acc = retrieval_accuracy(queries, keys)
    assert acc == pytest.approx(naive_accuracy(queries, keys))
    assert 0 < acc < 100


def test_identical_vectors_are_all_found_and_random_ones_at_chance():
    g = torch.Generator().manual_seed(1)
    keys = torch.randn(500, 32, generator=g)
    assert retrieval_accuracy(keys.clone(), keys) == 100.0
    assert retrieval_accuracy(3 * keys, keys) == 100.0  # cosine: the scale does not matter
    chance = [retrieval_accuracy(torch.randn(500, 32, generator=g), keys) for _ in range(5)]
    assert sum(chance) / 5 < 1.5  # chance is 1/500 = 0.2%


def test_retrieval_rejects_unpaired_shapes():
    with pytest.raises(ValueError, match="must be the same"):
        retrieval_accuracy(torch.zeros(3, 4), torch.zeros(4, 4))


# ---------------------------------------------------------------- probe selected on dev


def test_probe_chooses_C_on_dev_and_fits_on_train_only():
    g = torch.Generator().manual_seed(2)
    centres = 3 * torch.randn(3, 6, generator=g)
    def draw(n):
        y = torch.arange(n) % 3
        return centres[y] + torch.randn(n, 6, generator=g), y
    (x, y), (dx, dy) = draw(90), draw(30)
    probe = fit_selecting_C_on_dev(x, y, dx, dy, 3, grid=(1e-3, 1.0))
    assert probe.selected_C in (1e-3, 1.0) and probe.dev_accuracy > 90
    tx, ty = draw(60)
    assert (probe.predict(tx) == ty).double().mean() > 0.9
    with pytest.raises(ValueError, match="dev set is empty"):
        fit_selecting_C_on_dev(x, y, dx[:0], dy[:0], 3)
