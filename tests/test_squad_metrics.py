"""SQuAD EM/F1 (official v2.0 definitions), the HasAns/NoAns breakdown and best no-answer threshold,
span decoding against a brute-force search, and scripts/squad_eval.py."""
import json
import random
import sys

import pytest
import torch

from conftest import run
from metro_fairseq.evaluation.squad_metrics import (
    best_span, decode_question, evaluate, evaluate_predictions, exact_match, f1, normalize_answer,
)


def squad(questions, context="The Broncos beat the Panthers in Denver."):
    """A one-paragraph SQuAD file from (qid, [gold answers]); no answers = unanswerable (v2.0 style)."""
    qas = []
    for qid, golds in questions:
        qa = {"id": qid, "question": f"question {qid}?", "answers": [{"text": g, "answer_start": 0} for g in golds]}
        if not golds:
            qa.update(is_impossible=True, plausible_answers=[{"text": "1990", "answer_start": 0}])
        qas.append(qa)
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


# q1..q3, q5 answerable, q3/q4 not: one exact hit, one partial (F1 2/3), one correct abstention, one
# answer where there is none, one question without a prediction
DATASET = squad([("q1", ["Denver Broncos", "the Broncos"]), ("q2", ["red dog barked"]), ("q3", []),
                 ("q4", []), ("q5", ["Paris"])])
PREDS = {"q1": "Broncos", "q2": "the big red dog", "q3": "", "q4": "1990", "unknown": "ignored"}
NA_PROBS = {"q1": 0.1, "q2": 0.6, "q3": 0.9, "q4": 0.7, "q5": 0.2}


def test_normalize_answer():
    assert normalize_answer("  The  Cat,\tsat!\n ") == "cat sat"
    assert normalize_answer("An apple a day") == "apple day"
    assert normalize_answer("theater anthem") == "theater anthem"  # articles only as whole words
    assert normalize_answer("Don't (stop)") == "dont stop"
    assert normalize_answer("A.B.") == "ab"
    assert normalize_answer("") == ""


def test_exact_match():
    assert exact_match("The cat", "a cat") == 1.0
    assert exact_match("cat.", "  Cat ") == 1.0
    assert exact_match("cats", "cat") == 0.0
    assert exact_match("red dog", ["blue cat", "red dog!"]) == 1.0  # max over references
    assert exact_match("", "the") == 1.0  # both normalise to nothing


def test_f1_by_hand():
    # {big, red, dog} vs {red, dog, barked}: 2 shared, precision = recall = 2/3
    assert f1("the big red dog", "red dog barked") == pytest.approx(2 / 3)
    # precision 1/2, recall 1/4: 2 * 1/8 / (3/4) = 1/3
    assert f1("big red", "red dog barked loudly") == pytest.approx(1 / 3)
    # repeated tokens count once per occurrence in both: 1 shared, precision 1/3, recall 1
    assert f1("dog dog dog", "dog") == pytest.approx(0.5)
    assert f1("The cat!", "a  cat") == 1.0
    assert f1("blue", "red") == 0.0
    # empty sides: 1 only when both are empty
    assert f1("", "") == 1.0 and f1("an", "") == 1.0 and f1("cat", "") == 0.0 and f1("", "cat") == 0.0
    # max over references: vs "red" 2*(1/3)/(4/3) = 0.5, vs "big red" 2*(2/3)/(5/3) = 0.8
    assert f1("big red dog", ["red", "big red"]) == pytest.approx(0.8)


def test_squad1_without_breakdown_of_no_answer():
    data = squad([("a", ["The cat"]), ("b", ["red dog barked"]), ("c", ["x"])])
    with pytest.warns(UserWarning, match="1 of 3 questions have no prediction"):
        out = evaluate(data, {"a": "a cat", "b": "the big red dog"})
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total"]
    assert out["total"] == 3 and out["HasAns_total"] == 3
    assert out["exact"] == pytest.approx(100 / 3)
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_no_answer_question():
    data = squad([("n", [])])
    assert evaluate(data, {"n": ""}) == {"exact": 100.0, "f1": 100.0, "total": 1,
                                         "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1}
    assert evaluate(data, {"n": "1990"})["f1"] == 0.0  # plausible answers are not gold
    # is_impossible alone also makes the question unanswerable
    data["data"][0]["paragraphs"][0]["qas"][0]["answers"] = [{"text": "1990", "answer_start": 0}]
    assert evaluate(data, {"n": ""})["NoAns_exact"] == 100.0


def test_has_ans_no_ans_breakdown():
    out = evaluate(DATASET, PREDS)
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                         "NoAns_exact", "NoAns_f1", "NoAns_total"]
    assert out["total"] == 5 and out["HasAns_total"] == 3 and out["NoAns_total"] == 2
    assert out["exact"] == pytest.approx(40.0)  # q1, q3
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1) / 5)
    assert out["HasAns_exact"] == pytest.approx(100 / 3)
    assert out["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
    assert out["NoAns_exact"] == out["NoAns_f1"] == pytest.approx(50.0)


def test_na_prob_thresh_and_best_thresh():
    out = evaluate(DATASET, PREDS, NA_PROBS, na_prob_thresh=0.5)
    # above 0.5: q2 (loses its partial answer), q4 and q3 (both now correct abstentions)
    assert out["exact"] == out["f1"] == pytest.approx(60.0)
    assert out["HasAns_exact"] == out["HasAns_f1"] == pytest.approx(100 / 3)
    assert out["NoAns_exact"] == out["NoAns_f1"] == 100.0
    # scan by no-answer probability, starting from "abstain everywhere" = 2 (q3, q4); q5 stays 0:
    # EM: q1 +1 -> 3 (thresh 0.1), q2 +0, q4 -1, q3 +0; F1: q1 +1, q2 +2/3 -> 11/3 (thresh 0.6), q4 -1, q3 +0
    assert out["best_exact"] == pytest.approx(60.0) and out["best_exact_thresh"] == 0.1
    assert out["best_f1"] == pytest.approx(100 * 11 / 3 / 5) and out["best_f1_thresh"] == 0.6
    assert evaluate(DATASET, PREDS, NA_PROBS, na_prob_thresh=0.6)["f1"] == pytest.approx(out["best_f1"])
    assert "best_f1" not in evaluate(DATASET, PREDS)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_best_thresh_is_best_over_all_thresholds(seed):
    rng = random.Random(seed)
    words = ["red", "dog", "the", "cat", "sat", "big"]
    phrase = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))  # noqa: E731
    questions = [(f"q{i}", [phrase() for _ in range(rng.randint(1, 2))] if rng.random() < 0.6 else [])
                 for i in range(30)]
    preds = {q: phrase() if rng.random() < 0.7 else "" for q, _ in questions}
    preds = {q: p for q, p in preds.items() if not p or normalize_answer(p)}
    na = {q: rng.random() for q in preds}
    data = squad(questions)
    best = evaluate(data, preds, na)
    for key in ("exact", "f1"):
        by_thresh = [evaluate(data, preds, na, t)[key] for t in [0.0] + list(na.values())]
        assert best[f"best_{key}"] == pytest.approx(max(by_thresh))
        assert evaluate(data, preds, na, best[f"best_{key}_thresh"])[key] == pytest.approx(max(by_thresh))


def test_evaluate_predictions_on_flat_questions():
    questions = {q["id"]: {"context": "c", "answers": [a["text"] for a in q["answers"]],
                           "is_impossible": q.get("is_impossible", False)}
                 for q in DATASET["data"][0]["paragraphs"][0]["qas"]}
    assert evaluate_predictions(questions, PREDS, NA_PROBS) == evaluate(DATASET, PREDS, NA_PROBS, float("inf"))
    assert evaluate_predictions(questions, PREDS, NA_PROBS, 0.5) == evaluate(DATASET, PREDS, NA_PROBS, 0.5)


def test_bad_layout_and_predictions():
    for bad in ({"version": "1.1"}, {"data": [{"title": "t"}]}, {"data": [{"paragraphs": [{"context": "c"}]}]},
                {"data": [{"paragraphs": [{"qas": [{"question": "no id"}]}]}]}, {"data": []}):
        with pytest.raises(ValueError, match="SQuAD file"):
            evaluate(bad, {})
    with pytest.raises(ValueError, match="answer text"):
        evaluate(DATASET, {"q1": ["Broncos"]})
    with pytest.raises(ValueError, match="na_probs has no entry"):
        evaluate(DATASET, PREDS, {"q1": 0.5})


def brute_force(starts, ends, masks, max_len):
    best = (None, None, None, float("-inf"))
    for w, (start, end, mask) in enumerate(zip(starts, ends, masks)):
        for s in range(len(start)):
            for e in range(s, min(len(start), s + max_len)):
                score = float(start[s]) + float(end[e])
                if mask[s] and mask[e] and score > best[3]:
                    best = (w, s, e, score)
    return best


@pytest.mark.parametrize("seed", range(6))
def test_decoding_matches_brute_force(seed):
    gen = torch.Generator().manual_seed(seed)
    for max_len in (1, 3, 30):
        lengths = torch.randint(8, 48, (int(torch.randint(1, 5, (1,), generator=gen)),), generator=gen).tolist()
        starts = [torch.randn(n, generator=gen) * 3 for n in lengths]
        ends = [torch.randn(n, generator=gen) * 3 for n in lengths]
        masks = []
        for n in lengths:
            mask = torch.rand(n, generator=gen) < 0.6
            mask[0] = False  # <s> is never part of an answer
            masks.append(mask)
        if seed == 0:
            masks[0][:] = False  # a window without any context token
        want = brute_force(starts, ends, masks, max_len)
        got = decode_question(starts, ends, masks, max_len)
        assert got[:3] == want[:3] and got.score == pytest.approx(want[3], abs=1e-12)
        assert got.null_score == pytest.approx(min(float(s[0]) + float(e[0]) for s, e in zip(starts, ends)))
        for start, end, mask in zip(starts, ends, masks):
            assert best_span(start, end, max_len, mask) == brute_force([start], [end], [mask], max_len)[1:]
        # lists of floats work the same
        lists = decode_question([s.tolist() for s in starts], [e.tolist() for e in ends],
                                [m.tolist() for m in masks], max_len)
        assert lists[:3] == got[:3] and lists.score == pytest.approx(got.score)


def test_decoding_rules():
    start = [0.0, 5.0, 0.0, 0.0, 0.0, 1.0]
    end = [0.0, 0.0, 0.0, 0.0, 0.0, 5.0]
    assert best_span(start, end) == (1, 5, 10.0)
    assert best_span(start, end, max_answer_length=5) == (1, 5, 10.0)
    assert best_span(start, end, max_answer_length=4) == (5, 5, 6.0)  # 1..5 is 5 tokens long
    # the end logit peaks before the start logit: end < start is never chosen
    assert best_span([0.0, 1.0, 9.0], [0.0, 9.0, 0.0]) == (1, 1, 10.0)
    mask = [False, False, True, True, True, False]
    assert best_span(start, end, context_mask=mask) == (2, 2, 0.0)
    assert best_span(start, end, context_mask=[False] * 6) == (None, None, float("-inf"))
    # null score: the minimum <s> score over windows; the span may come from another window
    got = decode_question([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]], [[1.0, 0.0, 2.0], [-2.0, 4.0, 0.0]],
                          [[False, True, True]] * 2)
    assert got == (1, 1, 1, 8.0, 1.0)
    none = decode_question([[1.0, 2.0]], [[1.0, 2.0]], [[False, False]])
    assert none.window is None and none.score == float("-inf") and none.null_score == 2.0


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return str(path)


def test_script(tmp_path):
    data, preds = write(tmp_path / "dev.json", DATASET), write(tmp_path / "preds.json", PREDS)
    na = write(tmp_path / "na.json", NA_PROBS)
    out_file = tmp_path / "out" / "eval.json"
    result = run([sys.executable, "scripts/squad_eval.py", data, preds, "--na-prob-file", na,
                  "--na-prob-thresh", "0.5", "--out-file", str(out_file)], timeout=300)
    out = json.loads(result.stdout)
    assert result.stdout.startswith('{\n  "exact": ')  # indent=2, like the official script
    assert out == json.loads(out_file.read_text()) == evaluate(DATASET, PREDS, NA_PROBS, 0.5)
    assert out["exact"] == pytest.approx(60.0) and out["NoAns_total"] == 2
    assert out["best_f1"] == pytest.approx(100 * 11 / 3 / 5) and out["best_f1_thresh"] == 0.6
    assert "squad_eval: warning: 1 of 5 questions have no prediction" in result.stderr


@pytest.mark.parametrize("case", ["missing", "not_json", "list", "not_string"])
def test_script_bad_input(tmp_path, case):
    data = write(tmp_path / "dev.json", DATASET)
    preds = {"missing": str(tmp_path / "nope.json"), "not_json": write(tmp_path / "p.json", "{'q1': 'x'"),
             "list": write(tmp_path / "p.json", ["Broncos"]), "not_string": write(tmp_path / "p.json", {"q1": 3})}[case]
    result = run([sys.executable, "scripts/squad_eval.py", data, preds], check=False, timeout=120)
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("squad_eval: error: PREDICTIONS "), result.stderr
