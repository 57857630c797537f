"""``metro-prepare-squad``: SQuAD 1.1 / 2.0 JSON -> fairseq windows for extractive QA. Example:

    metro-prepare-squad --train train-v1.1.json --valid dev-v1.1.json \
        --spm-model data-bin/x/spm.model --dict data-bin/x/dict.txt --destdir data-bin/squad

writes in DESTDIR, for S in {train, valid}: ``S.input.{bin,idx}`` (one window of token ids
``<s> question </s> </s> context </s>`` per item), ``S.windows.jsonl`` (per window, same order:
qid, target start/end positions, 0 = no answer in it, context_start, character offsets of its
context tokens), ``S.questions.json`` (qid -> context, answer texts, is_impossible), and dict.txt.
"""
import argparse
import json
import os
import shutil

from ..data.sentencepiece_file import load_sentencepiece
from ..data.squad_windows import PieceEncoder, answer_tokens, make_windows
from .messages import fail, log, one_line_errors

TOOL = "prepare_squad"


def load_squad(path: str, what: str):
    """Questions of a SQuAD file as dicts: qid, question, context, answers, start, is_impossible."""
    if not os.path.isfile(path):
        fail(TOOL, f"{what} file {path} does not exist: give a SQuAD JSON file (scripts/fetch_squad.py writes them)")
    if os.path.getsize(path) == 0:
        fail(TOOL, f"{what} file {path} is empty: give a SQuAD JSON file (scripts/fetch_squad.py writes them)")
    try:
        with open(path, encoding="utf-8") as f:
            squad = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        fail(TOOL, f"{what} file {path} is not JSON ({e}): give a SQuAD JSON file")
    layout = f"{what} file {path} is not in SQuAD layout"
    if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
        fail(TOOL, f"{layout}: expected {{\"data\": [articles]}}")
    questions, seen = [], set()
    for a, article in enumerate(squad["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            fail(TOOL, f"{layout}: article {a} has no \"paragraphs\" list")
        for p, par in enumerate(paragraphs):
            if not isinstance(par, dict) or not isinstance(par.get("context"), str) or not isinstance(par.get("qas"), list):
                fail(TOOL, f"{layout}: paragraph {p} of article {a} needs \"context\" (text) and \"qas\" (list)")
            for qa in par["qas"]:
                questions.append(check_question(qa, par["context"], layout, seen))
    if not questions:
        fail(TOOL, f"{what} file {path} holds no questions")
    return questions


def check_question(qa, context: str, layout: str, seen: set):
    if not isinstance(qa, dict) or not isinstance(qa.get("id"), str) or not isinstance(qa.get("question"), str):
        fail(TOOL, f"{layout}: every qas entry needs \"id\" and \"question\" (text)")
    qid, impossible = qa["id"], bool(qa.get("is_impossible", False))
    if qid in seen:
        fail(TOOL, f"question id {qid} occurs twice: ids must be unique")
    seen.add(qid)
    answers = qa.get("answers")
    if not isinstance(answers, list) or not all(
            isinstance(x, dict) and isinstance(x.get("text"), str) and isinstance(x.get("answer_start"), int)
            for x in answers):
        fail(TOOL, f"{layout}: question {qid} needs \"answers\": [{{\"text\": ..., \"answer_start\": int}}, ...]")
    if not answers and not impossible:
        fail(TOOL, f"question {qid} has no answers and is not marked \"is_impossible\": true")
    for x in answers:
        if x["answer_start"] < 0 or x["answer_start"] + len(x["text"]) > len(context):
            fail(TOOL, f"question {qid}: answer_start {x['answer_start']} with a {len(x['text'])}-character answer "
                       f"is out of range for its {len(context)}-character context; fix the answer_start")
    first = {} if impossible else answers[0]  # targets come from the first answer
    return {"qid": qid, "question": qa["question"], "context": context, "answers": [x["text"] for x in answers],
            "start": first.get("answer_start"), "text": first.get("text"), "is_impossible": impossible}


def write_split(questions, encoder, dictionary, prefix: str, args):
    """Windows of ``questions`` to PREFIX.input.{bin,idx} / .windows.jsonl / .questions.json; counts."""
    import torch
    from fairseq.data import indexed_dataset

    builder = indexed_dataset.make_builder(prefix + ".input.bin", impl="mmap", vocab_size=len(dictionary))
    counts = dict(questions=len(questions), windows=0, answers=0, unaligned=0, uncovered=0, impossible=0)
    cached = (None, None)
    with open(prefix + ".windows.jsonl", "w", encoding="utf-8") as out:
        for q in questions:
            if cached[0] != q["context"]:
                cached = (q["context"], encoder.encode(q["context"]))
            ctx_ids, spans = cached[1]
            span = None
            if q["is_impossible"]:
                counts["impossible"] += 1
            else:
                counts["answers"] += 1
                span = answer_tokens(spans, q["start"], q["start"] + len(q["text"]))
                got = span and q["context"][spans[span[0]][0]:spans[span[1]][1]].strip()
                counts["unaligned"] += got != q["text"].strip()
            q_ids = encoder.encode(q["question"])[0][: args.max_query_length]
            windows = make_windows(q["qid"], q_ids, ctx_ids, spans, span, dictionary, args.max_length, args.doc_stride)
            counts["uncovered"] += span is not None and all(w.start == 0 for w in windows)
            for w in windows:
                builder.add_item(torch.IntTensor(w.ids))
                out.write(json.dumps({"qid": w.qid, "start": w.start, "end": w.end, "context_start": w.context_start,
                                      "offsets": [list(o) for o in w.offsets]}, separators=(",", ":")) + "\n")
            counts["windows"] += len(windows)
    builder.finalize(prefix + ".input.idx")
    with open(prefix + ".questions.json", "w", encoding="utf-8") as f:
        json.dump({q["qid"]: {"context": q["context"], "answers": q["answers"], "is_impossible": q["is_impossible"]}
                   for q in questions}, f, ensure_ascii=False)
    return counts


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", required=True, help="SQuAD JSON for training")
    p.add_argument("--valid", required=True, help="SQuAD JSON for validation (e.g. dev-v1.1.json)")
    p.add_argument("--spm-model", required=True, help="SentencePiece model of the pretrained checkpoint")
    p.add_argument("--dict", required=True, help="fairseq dict.txt of the pretrained checkpoint")
    p.add_argument("--destdir", required=True)
    p.add_argument("--max-length", type=int, default=384, help="tokens per window, specials included")
    p.add_argument("--doc-stride", type=int, default=128, help="context tokens between window starts")
    p.add_argument("--max-query-length", type=int, default=64, help="question pieces kept")
    args = p.parse_args(argv)
    for flag, path in (("--spm-model", args.spm_model), ("--dict", args.dict)):
        if not os.path.isfile(path):
            fail(TOOL, f"{flag} {path} does not exist: give the files of the pretrained model's data-bin")
    if args.max_query_length < 1 or args.doc_stride < 1 or args.max_length < args.max_query_length + 5:
        fail(TOOL, "need --max-query-length >= 1, --doc-stride >= 1 and --max-length >= --max-query-length + 5")
    splits = {"train": load_squad(args.train, "--train"), "valid": load_squad(args.valid, "--valid")}

    sp = load_sentencepiece(args.spm_model)
    from fairseq.data import Dictionary

    try:
        dictionary = Dictionary.load(args.dict)
    except (ValueError, RuntimeError) as e:
        fail(TOOL, f"--dict {args.dict} is not a fairseq dict.txt ({e})")
    encoder = PieceEncoder(sp, dictionary)
    os.makedirs(args.destdir, exist_ok=True)
    shutil.copyfile(args.dict, os.path.join(args.destdir, "dict.txt"))
    for split, questions in splits.items():
        c = write_split(questions, encoder, dictionary, os.path.join(args.destdir, split), args)
        pct = 100.0 * c["unaligned"] / max(c["answers"], 1)
        log(TOOL, f"{split}: {c['questions']} questions ({c['impossible']} impossible), {c['windows']} windows; "
            f"{c['answers']} answers, {c['unaligned']} not aligned ({pct:.2f}%), "
            f"{c['uncovered']} not covered by any window -> {os.path.join(args.destdir, split)}.*")


if __name__ == "__main__":
    main()
