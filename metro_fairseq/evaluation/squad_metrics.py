"""SQuAD 1.1 / 2.0 scoring with the official v2.0 evaluation script's EM/F1 definitions, and span
decoding from start/end logits over the windows of a question (scripts/squad_eval.py).

A question is unanswerable when it has no reference answers or ``is_impossible`` is set; its only
gold answer is then the empty string. A question missing from the predictions scores 0.
"""
import collections
import re
import string
import warnings
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import torch

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _golds(gold: Union[str, Sequence[str]]) -> List[str]:
    if isinstance(gold, str):
        return [gold]
    # as the official script: references that normalise to nothing are dropped; none left = no answer
    return [g for g in gold if normalize_answer(g)] or [""]


def _exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: Union[str, Sequence[str]]) -> float:
    """1.0 if the normalised prediction equals a (the best) normalised gold answer, else 0.0."""
    return max(_exact(prediction, g) for g in _golds(gold))


def f1(prediction: str, gold: Union[str, Sequence[str]]) -> float:
    """Token-overlap F1 against a gold answer, or the max over a list of them."""
    return max(_f1(prediction, g) for g in _golds(gold))


def _questions(dataset_json) -> Dict[str, Tuple[List[str], bool]]:
    """qid -> (gold answers, has answer), checking the SQuAD layout on the way."""
    layout = 'expected {"data": [{"paragraphs": [{"context": ..., "qas": [{"id": ..., "answers": [...]}]}]}]}'
    if not isinstance(dataset_json, dict) or not isinstance(dataset_json.get("data"), list):
        raise ValueError(f"not a SQuAD file: no top-level \"data\" list ({layout})")
    questions = {}
    for article in dataset_json["data"]:
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise ValueError(f"not a SQuAD file: an article has no \"paragraphs\" list ({layout})")
        for paragraph in paragraphs:
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                raise ValueError(f"not a SQuAD file: a paragraph has no \"qas\" list ({layout})")
            for qa in qas:
                if not isinstance(qa, dict) or "id" not in qa or not isinstance(qa.get("answers", []), list):
                    raise ValueError(f"not a SQuAD file: a question lacks \"id\" or a list of \"answers\" ({layout})")
                answers = [a["text"] for a in qa.get("answers", []) if isinstance(a, dict) and "text" in a]
                has_ans = bool(answers) and not qa.get("is_impossible", False)
                questions[str(qa["id"])] = (_golds(answers) if has_ans else [""], has_ans)
    if not questions:
        raise ValueError(f"the SQuAD file holds no questions ({layout})")
    return questions


def _summary(exact: Dict[str, float], f1s: Dict[str, float], qids: List[str]) -> List[Tuple[str, object]]:
    return [("exact", 100.0 * sum(exact[q] for q in qids) / len(qids)),
            ("f1", 100.0 * sum(f1s[q] for q in qids) / len(qids)), ("total", len(qids))]


def _best_thresh(predictions, scores, na_probs, has_ans) -> Tuple[float, float]:
    # the official find_best_thresh, except that questions without a prediction stay wrong at every threshold
    cur = best = sum(1 for q, h in has_ans.items() if not h and q in predictions)
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores or qid not in predictions:
            continue
        if has_ans[qid]:
            cur += scores[qid]
        elif predictions[qid]:
            cur -= 1
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def evaluate(dataset_json, predictions: Mapping[str, str], na_probs: Optional[Mapping[str, float]] = None,
             na_prob_thresh: float = 1.0) -> "collections.OrderedDict[str, object]":
    """The official SQuAD v2.0 evaluation: overall, HasAns_* / NoAns_* and, given na_probs, best_* keys."""
    questions = _questions(dataset_json)
    bad = [q for q, p in predictions.items() if not isinstance(p, str)]
    if bad:
        raise ValueError(f"predictions must map question id -> answer text, not {bad[0]!r} -> {predictions[bad[0]]!r}")
    missing = [q for q in questions if q not in predictions]
    if missing:
        warnings.warn(f"{len(missing)} of {len(questions)} questions have no prediction and count as wrong, "
                      f"e.g. {missing[0]!r}")
    probs = na_probs if na_probs is not None else {q: 0.0 for q in predictions}
    unscored = [q for q in questions if q in predictions and q not in probs]
    if unscored:
        raise ValueError(f"na_probs has no entry for {len(unscored)} predicted questions, e.g. {unscored[0]!r}")

    has_ans = {q: h for q, (_, h) in questions.items()}
    raw_exact, raw_f1, exact, f1s = {}, {}, {}, {}
    for qid, (golds, h) in questions.items():
        if qid not in predictions:
            raw_exact[qid] = raw_f1[qid] = exact[qid] = f1s[qid] = 0.0
            continue
        raw_exact[qid] = max(_exact(predictions[qid], g) for g in golds)
        raw_f1[qid] = max(_f1(predictions[qid], g) for g in golds)
        if probs[qid] > na_prob_thresh:
            exact[qid] = f1s[qid] = float(not h)
        else:
            exact[qid], f1s[qid] = raw_exact[qid], raw_f1[qid]

    out = collections.OrderedDict(_summary(exact, f1s, list(questions)))
    for prefix, want in (("HasAns", True), ("NoAns", False)):
        qids = [q for q, h in has_ans.items() if h == want]
        if qids:
            out.update((f"{prefix}_{k}", v) for k, v in _summary(exact, f1s, qids))
    if na_probs is not None:
        out["best_exact"], out["best_exact_thresh"] = _best_thresh(predictions, raw_exact, na_probs, has_ans)
        out["best_f1"], out["best_f1_thresh"] = _best_thresh(predictions, raw_f1, na_probs, has_ans)
    return out


def evaluate_predictions(questions: Mapping[str, Mapping], predictions: Mapping[str, str],
                         na_probs: Optional[Mapping[str, float]] = None,
                         na_prob_thresh: float = float("inf")) -> "collections.OrderedDict[str, object]":
    """evaluate() on a flat {qid: {"answers": [text, ...], "is_impossible": bool}} mapping (the
    S.questions.json of scripts/prepare_squad.py). By default na_probs only feed the best_* search:
    the predictions are taken to be thresholded already."""
    qas = [{"id": qid, "answers": [a if isinstance(a, dict) else {"text": a} for a in q.get("answers", [])],
            "is_impossible": q.get("is_impossible", False)} for qid, q in questions.items()]
    return evaluate({"data": [{"paragraphs": [{"qas": qas}]}]}, predictions, na_probs, na_prob_thresh)


def best_span(start_logits, end_logits, max_answer_length: int = 30,
              context_mask=None) -> Tuple[Optional[int], Optional[int], float]:
    """(start, end, start_logit + end_logit) of the best span with start <= end, at most
    max_answer_length tokens, both ends where context_mask is true; (None, None, -inf) if none is legal."""
    start = torch.as_tensor(start_logits).double().flatten()
    end = torch.as_tensor(end_logits, device=start.device).double().flatten()
    if start.numel() != end.numel():
        raise ValueError(f"start and end logits differ in length: {start.numel()} vs {end.numel()}")
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length must be at least 1, got {max_answer_length}")
    n = start.numel()
    ones = torch.ones(n, n, dtype=torch.bool, device=start.device)
    legal = ones.triu(0) & ~ones.triu(max_answer_length)  # 0 <= end - start < max_answer_length
    if context_mask is not None:
        mask = torch.as_tensor(context_mask, device=start.device).bool().flatten()
        if mask.numel() != n:
            raise ValueError(f"context_mask has {mask.numel()} positions, the logits {n}")
        legal &= mask[:, None] & mask[None, :]
    if not bool(legal.any()):
        return None, None, float("-inf")
    scores = (start[:, None] + end[None, :]).masked_fill(~legal, float("-inf"))
    flat = int(scores.argmax())  # the first maximum, i.e. the smallest start, then the smallest end
    return flat // n, flat % n, float(scores.view(-1)[flat])


class QuestionSpan(NamedTuple):
    window: Optional[int]
    start: Optional[int]
    end: Optional[int]
    score: float
    null_score: float


def decode_question(start_logits: Sequence, end_logits: Sequence, context_masks: Sequence,
                    max_answer_length: int = 30) -> QuestionSpan:
    """Best legal span over all windows of one question, plus the SQuAD 2.0 null score: the minimum
    over windows of start_logits[0] + end_logits[0] (position 0 is <s>). Predict no answer when
    null_score - score > threshold; window/start/end are None when no window has a legal span."""
    if not (len(start_logits) == len(end_logits) == len(context_masks)) or not len(start_logits):
        raise ValueError("give start logits, end logits and a context mask for each of at least one window")
    best, null = (None, None, None, float("-inf")), float("inf")
    for w, (s_logits, e_logits, mask) in enumerate(zip(start_logits, end_logits, context_masks)):
        s, e, score = best_span(s_logits, e_logits, max_answer_length, mask)
        if score > best[3]:
            best = (w, s, e, score)
        null = min(null, float(s_logits[0]) + float(e_logits[0]))
    return QuestionSpan(*best, null)
