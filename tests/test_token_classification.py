"""Token classification: the Brown part-of-speech data (tag mapping, document split), first-piece label
alignment, the loss against a naive reference, and the task end to end through prepare_token_classification.py
and the real fairseq-train, with its refusals."""
import math
import os
import sys

import pytest
import torch
from fairseq.data import Dictionary, data_utils

from conftest import REPO, run
from test_finetuning import valid_metrics
from metro_fairseq.criterions.token_classification import token_label_terms
from metro_fairseq.data.first_piece_labels import IGNORED, first_piece_labels
from metro_fairseq.data.sentencepiece_file import load_sentencepiece

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import pos_data  # noqa: E402

PREPARE = [sys.executable, "scripts/prepare_token_classification.py"]


# -- the Brown corpus as a POS task ----------------------------------------------------------------

@pytest.mark.parametrize("brown,universal", [
    ("nn", "NOUN"), ("nns$", "NOUN"), ("np-tl", "NOUN"), ("nn$-hl", "NOUN"), ("vbd", "VERB"), ("bedz*", "VERB"),
    ("md", "VERB"), ("do*", "VERB"), ("ppss+bem", "PRON"), ("pp$", "DET"), ("pp$$", "PRON"), ("wp$", "DET"),
    ("at", "DET"), ("in", "ADP"), ("cd", "NUM"), ("od", "ADJ"), ("jjt", "ADJ"), ("*", "ADV"), ("ql", "ADV"),
    ("cs", "ADP"), ("cc", "CONJ"), ("ap", "ADJ"), ("to", "PRT"), ("rp", "PRT"), ("--", "."), ("``", "."), ("''", "."), ("fw-nn", "X"),
    ("fw-in+at-tl", "X"), ("uh", "X"), ("ppss+ber-n", "PRON"), ("wrb+dod*", "ADV"), ("NN-TL", "NOUN"),
])
def test_brown_tags_map_to_universal_tags(brown, universal):
    assert pos_data.universal_tag(brown) == universal
    assert universal in pos_data.UNIVERSAL


def test_unknown_brown_tag_is_refused():
    with pytest.raises(ValueError, match="'zz' has no universal tag"):
        pos_data.universal_tag("zz")


def test_brown_document_reads_words_and_tags():
    text = "\n\n\tThe/at jury/nn said/vbd 1/2/cd ./.\n\n\n\tIt/pps wasn't/bedz* ./.\n"
    assert pos_data.read_document(text) == [
        (["The", "jury", "said", "1/2", "."], ["DET", "NOUN", "VERB", "NUM", "."]),
        (["It", "wasn't", "."], ["PRON", "VERB", "."]),
    ]


def test_document_split_is_fixed_disjoint_and_seeded():
    names = [f"c{g}{i:02d}" for g in "abc" for i in range(1, 41)]
    split = pos_data.split_documents(list(reversed(names)), seed=1, dev_documents=12)
    assert split == pos_data.split_documents(names, seed=1, dev_documents=12)  # input order does not matter
    assert len(split["dev"]) == 12 and not set(split["dev"]) & set(split["train"])
    assert sorted(split["dev"] + split["train"]) == sorted(names)
    assert split["dev"] != pos_data.split_documents(names, seed=2, dev_documents=12)["dev"]
    sentences = [([f"w{i}"], ["NOUN"]) for i in range(50)]
    subset = pos_data.sentence_subset(sentences, 10, seed=3)
    assert len(subset) == 10 and subset == pos_data.sentence_subset(sentences, 10, seed=3)


# -- first-piece alignment -------------------------------------------------------------------------

def test_each_word_label_sits_on_its_first_piece():
    pieces = {"unbelievable": ["▁un", "believ", "able"], "news": ["▁news"], "!": ["▁", "!"]}
    got = first_piece_labels(["unbelievable", "news", "!"], ["ADJ", "NOUN", "."], pieces.__getitem__)
    assert got == (["▁un", "believ", "able", "▁news", "▁", "!"], ["ADJ", IGNORED, IGNORED, "NOUN", ".", IGNORED])
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        first_piece_labels(["a", "b"], ["X"], pieces.get)


def test_word_by_word_pieces_equal_the_sentence_encoding(wiki_bin, wiki_text):
    sp = load_sentencepiece(str(wiki_bin / "spm.model"))
    lines = open(wiki_text["valid"], encoding="utf-8").read().splitlines()[:200]
    for line in lines:
        words = line.split()
        pieces, labels = first_piece_labels(words, ["X"] * len(words), lambda w: sp.encode(w, out_type=str))
        assert pieces == sp.encode(" ".join(words), out_type=str)
        assert sum(label != IGNORED for label in labels) == len(words)


# -- the loss --------------------------------------------------------------------------------------

def test_token_loss_and_accuracy_equal_a_naive_loop():
    torch.manual_seed(0)
    nspecial, classes = 4, 5
    logits = torch.randn(3, 7, classes)
    labels = torch.randint(0, nspecial + classes, (3, 7))
    terms = token_label_terms(logits, labels, nspecial)
    loss, correct = 0.0, 0
    for b in range(3):
        for t in range(7):
            if labels[b, t] >= nspecial:
                target = int(labels[b, t]) - nspecial
                loss -= math.log(torch.softmax(logits[b, t].double(), -1)[target].item())
                correct += int(logits[b, t].argmax().item() == target)
    assert math.isclose(terms["loss"].item(), loss, rel_tol=1e-5)
    assert terms["correct"].item() == correct


# -- end to end ------------------------------------------------------------------------------------

def rule_tag(word):
    """A tag the model can learn from the word itself: the test's stand-in for a tagged corpus."""
    if any(c.isdigit() for c in word):
        return "NUM"
    if not any(c.isalnum() for c in word):
        return "."
    return "CAP" if word[0].isupper() else "LOW"


def write_rule_tagged(lines, path):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            f.writelines(f"{w}\t{rule_tag(w)}\n" for w in line.split()[:40])
            f.write("\n")


@pytest.fixture(scope="module")
def tagged_bin(wiki_bin, wiki_text, tmp_path_factory):
    root = tmp_path_factory.mktemp("tagged")
    lines = [l for l in open(wiki_text["train"], encoding="utf-8").read().splitlines() if l.strip()]
    write_rule_tagged(lines[:600], root / "train.tsv")
    write_rule_tagged(lines[600:700], root / "dev.tsv")
    run(PREPARE + ["--train", str(root / "train.tsv"), "--valid", str(root / "dev.tsv"), "--spm-model",
                   str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"), "--destdir", str(root / "bin")])
    return root


def test_prepared_labels_align_with_the_pieces(tagged_bin, wiki_bin):
    tokens_dict = Dictionary.load(str(tagged_bin / "bin" / "input0" / "dict.txt"))
    label_dict = Dictionary.load(str(tagged_bin / "bin" / "labels" / "dict.txt"))
    assert sorted(label_dict.symbols[label_dict.nspecial:]) == [".", "CAP", "LOW", "NUM"]  # exactly the tags
    tokens = data_utils.load_indexed_dataset(str(tagged_bin / "bin" / "input0" / "valid"), tokens_dict)
    labels = data_utils.load_indexed_dataset(str(tagged_bin / "bin" / "labels" / "valid"), label_dict)
    sp = load_sentencepiece(str(wiki_bin / "spm.model"))
    sentences = open(tagged_bin / "dev.tsv", encoding="utf-8").read().strip().split("\n\n")
    assert len(tokens) == len(labels) == len(sentences)
    for i, block in enumerate(sentences):
        words, tags = zip(*(row.split("\t") for row in block.split("\n")))
        assert len(tokens[i]) == len(labels[i])
        pieces = tokens_dict.string(tokens[i]).split()
        first = [j for j, piece in enumerate(pieces) if labels[i][j] >= label_dict.nspecial]
        assert [label_dict[labels[i][j]] for j in first] == list(tags)
        assert [pieces[j] for j in first] == [sp.encode(w, out_type=str)[0] for w in words]


def token_finetune_cmd(data, checkpoint, save_dir, *extra):
    return [sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", "metro_fairseq",
            "--task", "token_classification", "--criterion", "token_classification", "--arch", "metro_tiny",
            "--finetune-from-model", str(checkpoint), "--batch-size", "16", "--required-batch-size-multiple", "1",
            "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "10",
            "--total-num-update", "80", "--max-update", "80", "--best-checkpoint-metric", "accuracy",
            "--maximize-best-checkpoint-metric", "--no-epoch-checkpoints", "--cpu", "--num-workers", "0",
            "--log-format", "json", "--log-interval", "10", "--save-dir", str(save_dir), *extra]


def test_fine_tuning_learns_the_tags_and_the_export_refuses_the_head(tagged_bin, pretrained, tmp_path):
    _, exported = pretrained
    r = run(token_finetune_cmd(tagged_bin / "bin", exported, tmp_path))
    assert "Loaded checkpoint" in r.stdout + r.stderr
    accuracy = float(valid_metrics(r)["accuracy"])
    tags = [row.split("\t")[1] for row in open(tagged_bin / "dev.tsv", encoding="utf-8").read().split("\n") if row]
    majority = 100.0 * max(tags.count(t) for t in set(tags)) / len(tags)
    assert accuracy > majority + 10, (accuracy, majority)
    out = run([sys.executable, "scripts/export_hf.py", str(tmp_path / "checkpoint_best.pt"), str(tmp_path / "hf")],
              check=False)
    assert out.returncode != 0 and "token classification head 'token_head'" in out.stderr
    assert not (tmp_path / "hf").exists()


def prepare_cmd(tmp_path, wiki_bin, *extra):
    return PREPARE + ["--train", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "dev.tsv"), "--spm-model",
                      str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"), "--destdir",
                      str(tmp_path / "bin"), *extra]


def test_conll_2003_layout_and_a_fixed_label_set(wiki_bin, tmp_path):
    """Space-separated columns (word first, tag last), -DOCSTART- skipped; --labels admits a dev tag training lacks."""
    (tmp_path / "train.tsv").write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n",
                                        encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("Peter NNP B-NP B-PER\nsaid VBD B-VP O\n", encoding="utf-8")
    refused = run(prepare_cmd(tmp_path, wiki_bin), check=False)
    assert refused.returncode != 0 and "has tags the training file lacks (B-PER)" in refused.stderr
    run(prepare_cmd(tmp_path, wiki_bin, "--labels", "O", "B-ORG", "B-PER"))
    labels = Dictionary.load(str(tmp_path / "bin" / "labels" / "dict.txt"))
    assert labels.symbols[labels.nspecial:] == ["O", "B-ORG", "B-PER"]
    train = data_utils.load_indexed_dataset(str(tmp_path / "bin" / "labels" / "train"), labels)
    assert len(train) == 1  # the -DOCSTART- line made no sentence
    assert [labels[i] for i in train[0] if i >= labels.nspecial] == ["B-ORG", "O"]


@pytest.mark.parametrize("case,expected", [
    ("bad_line", "dev.tsv:2 is not WORD<TAB>TAG"),
    ("unseen_tag", "has tags the training file lacks (ODD)"),
    ("outside_labels", "train.tsv has tags outside --labels (NOUN)"),
    ("no_pieces", r"dev.tsv: the sentence at line 1: the word '\u200b' encodes to no pieces"),
])
def test_prepare_refuses_bad_files_in_one_line(case, expected, wiki_bin, tmp_path):
    (tmp_path / "train.tsv").write_text("The\tDET\ncat\tNOUN\n\n", encoding="utf-8")
    dev = {"bad_line": "The\tDET\ncat\n", "unseen_tag": "The\tDET\ncat\tODD\n", "outside_labels": "The\tDET\n",
           "no_pieces": "The\tDET\n\u200b\tNOUN\n"}[case]
    (tmp_path / "dev.tsv").write_text(dev, encoding="utf-8")
    extra = ["--labels", "DET"] if case == "outside_labels" else []
    r = run(prepare_cmd(tmp_path, wiki_bin, *extra), check=False)
    assert r.returncode != 0 and expected in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "bin").exists()


@pytest.mark.parametrize("case,expected", [
    ("not_prepared", "input0/dict.txt is missing: --data must be a prepare_token_classification.py output"),
    ("too_long", "more than --max-positions 16: split long sentences"),
])
def test_task_refuses_in_one_line(case, expected, tagged_bin, pretrained, tmp_path):
    _, exported = pretrained
    data = tagged_bin / "bin" / "input0" if case == "not_prepared" else tagged_bin / "bin"
    extra = ["--max-positions", "16"] if case == "too_long" else []
    r = run(token_finetune_cmd(data, exported, tmp_path, *extra), check=False)
    assert r.returncode != 0 and expected in r.stdout + r.stderr


def test_pos_probe_reads_each_word_at_its_first_piece_of_a_released_tokenizer(tmp_path):
    """benchmarks/pos_tagging.py on an imported model (--hf-tokenizer): the first-piece positions point at the
    first WordPiece of each word, in the import's dict.txt ids."""
    from hf_fixtures import build_released

    import pos_tagging
    from metro_fairseq.hf.vocabulary import load_tokenizer, vocabulary_of

    build_released(tmp_path / "bert", "bert")
    tokenizer = load_tokenizer(str(tmp_path / "bert"))
    vocabulary_of(tokenizer).write_dict(str(tmp_path / "dict.txt"))
    dictionary = Dictionary.load(str(tmp_path / "dict.txt"))
    split = pos_tagging.piece_splitter(None, str(tmp_path / "bert"))
    words = ["The", "teamed", "city", "Zoë"]
    ids, firsts = pos_tagging.encode((words, ["DET", "VERB", "NOUN", "NOUN"]), split, dictionary)
    assert ids[0] == dictionary.bos() and ids[-1] == dictionary.eos() and len(firsts) == len(words)
    first_pieces = [tokenizer.tokenize(w)[0] for w in words]  # lower-cased, accents stripped: "the", "team", ...
    assert [dictionary.symbols[ids[f]] for f in firsts] == [
        p if p != tokenizer.unk_token else "<unk>" for p in first_pieces]
    assert firsts[1] + len(tokenizer.tokenize("teamed")) == firsts[2]
