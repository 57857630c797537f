"""Tiny hand-written files in the official GLUE layouts (column positions as in the real files)."""
import os

SENTENCES = [
    "the film is a delight from start to finish",
    "a dull and lifeless script",
    "the cast is wonderful",
    "nothing in it works",
]


def _write(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(row) + "\n")


def write_glue(root):
    s = SENTENCES
    pairs = [(s[i], s[(i + 1) % 4], str(i % 2)) for i in range(4)]
    for split in ("train", "dev"):
        _write(f"{root}/CoLA/{split}.tsv", None, [("gj04", str(i % 2), "*" if i % 2 == 0 else "", x) for i, x in enumerate(s)])
        _write(f"{root}/SST-2/{split}.tsv", ["sentence", "label"], [(x, str(i % 2)) for i, x in enumerate(s)])
        _write(f"{root}/MRPC/{split}.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
               [(y, "1", "2", a, b) for a, b, y in pairs])
        _write(f"{root}/QQP/{split}.tsv", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
               [(str(i), "1", "2", a, b, y) for i, (a, b, y) in enumerate(pairs)])
        _write(f"{root}/STS-B/{split}.tsv",
               ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2", "score"],
               [(str(i), "g", "f", "2012", "0", "x", "y", a, b, f"{i * 1.25:.2f}") for i, (a, b, _) in enumerate(pairs)])
        for name in ("QNLI", "RTE", "WNLI"):
            labels = ["entailment", "not_entailment"]
            _write(f"{root}/{name}/{split}.tsv", ["index", "sentence1", "sentence2", "label"],
                   [(str(i), a, b, labels[int(y)]) for i, (a, b, y) in enumerate(pairs)])
    mnli_header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                   "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]
    labels = ["entailment", "neutral", "contradiction"]
    _write(f"{root}/MNLI/train.tsv", mnli_header + ["label1", "gold_label"],
           [(str(i), "0", "0", "g", "", "", "", "", a, b, labels[i % 3], labels[i % 3]) for i, (a, b, _) in enumerate(pairs)])
    for dev in ("dev_matched", "dev_mismatched"):
        _write(f"{root}/MNLI/{dev}.tsv", mnli_header + ["label1", "label2", "label3", "label4", "label5", "gold_label"],
               [(str(i), "0", "0", "g", "", "", "", "", a, b, *[labels[i % 3]] * 6) for i, (a, b, _) in enumerate(pairs)])
