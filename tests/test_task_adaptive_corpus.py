"""The benchmark's task-adaptive corpus: the tasks' train text joins the pretraining text, dev never does."""
import os
import sys

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from task_adaptive_corpus import task_adaptive_corpus  # noqa: E402


def write_tsv(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in rows))


def test_train_text_joins_the_corpus_in_packed_documents_and_dev_text_never(tmp_path):
    corpus = tmp_path / "wiki"
    corpus.mkdir()
    (corpus / "train.txt").write_text("Wiki one.\nWiki two.\n\nWiki three.\n")
    (corpus / "valid.txt").write_text("Held out wiki.\n")
    reviews = [(f"Review {i} is short. It has two sentences!", i % 2) for i in range(6)]  # 7 words each
    write_tsv(str(tmp_path / "SST-2" / "train.tsv"), reviews)
    write_tsv(str(tmp_path / "SST-2" / "dev.tsv"), [("A dev review nobody may pretrain on.", 1)])
    write_tsv(str(tmp_path / "BBC" / "train.tsv"), [("Long article " + "word " * 30 + "ends.", "tech")])
    write_tsv(str(tmp_path / "BBC" / "dev.tsv"), [("Dev article.", "sport")])

    dest = task_adaptive_corpus(str(corpus), [str(tmp_path / "SST-2"), str(tmp_path / "BBC")],
                                        str(tmp_path / "out"), doc_words=20)
    text = open(os.path.join(dest, "train.txt")).read()
    docs = [d.splitlines() for d in text.strip("\n").split("\n\n")]
    assert docs[0] == ["Wiki one.", "Wiki two."] and docs[1] == ["Wiki three."]
    # 7-word reviews: 3 per 20-word document, each split into its two sentences
    assert docs[2] == ["Review 0 is short.", "It has two sentences!", "Review 1 is short.", "It has two sentences!",
                       "Review 2 is short.", "It has two sentences!"]
    assert len(docs[3]) == 6 and docs[4] == ["Long article " + "word " * 30 + "ends."] and len(docs) == 5
    assert "dev" not in text.lower() and "Dev" not in text
    assert open(os.path.join(dest, "valid.txt")).read() == "Held out wiki.\n"
    assert "\n\n\n" not in text  # no empty documents
