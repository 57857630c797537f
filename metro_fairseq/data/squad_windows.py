"""SQuAD examples -> fixed-length windows of fairseq token ids for extractive QA.

A window is ``<s> question </s> </s> context-slice </s>`` (RoBERTa's pair layout). Context slices
follow the doc-stride scheme of Google BERT / HF ``run_squad``. Every context piece keeps its
character span in the original context, so a predicted token span maps back to answer text.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

Span = Tuple[int, int]


@dataclass
class Window:
    qid: str
    ids: List[int]  # fairseq token ids, specials included
    start: int  # answer start position in ``ids``; 0 (``<s>``) when the window lacks the answer
    end: int
    context_start: int  # position in ``ids`` of the first context token
    offsets: List[Span]  # [begin, end) character span in the context of each context token


def char_spans(text: str, byte_spans) -> List[Span]:
    """UTF-8 byte spans -> character spans of ``text``, leading whitespace dropped (the blank a
    "▁" stands for), so a lone "▁" piece gets an empty span at the next character."""
    data = text.encode("utf-8")
    if len(data) == len(text):  # ASCII: bytes are characters
        char_of = range(len(text) + 1)
    else:
        char_of = [0] * (len(data) + 1)
        pos = 0
        for i, ch in enumerate(text):
            n = len(ch.encode("utf-8"))
            char_of[pos:pos + n] = [i] * n
            pos += n
        char_of[len(data)] = len(text)
    spans = []
    for b, e in byte_spans:
        begin = char_of[b]
        end = char_of[e - 1] + 1 if e > b else begin
        while begin < end and text[begin].isspace():
            begin += 1
        spans.append((begin, end))
    return spans


class PieceEncoder:
    """SentencePiece pieces with character spans, mapped to ids of a fairseq dictionary."""

    def __init__(self, sp, dictionary):
        self.sp, self.dictionary = sp, dictionary
        try:  # sentencepiece >= 0.2.1
            sp.encode("a b", out_type="offset_mapping", return_bytes=True)
            self._new_api = True
        except (TypeError, ValueError, RuntimeError):
            self._new_api = False  # older: immutable_proto, whose begin/end are byte offsets too

    def pieces(self, text: str) -> Tuple[List[str], List[Span]]:
        if self._new_api:
            r = self.sp.encode(text, out_type="offset_mapping", return_bytes=True)
            pieces = [p.decode("utf-8") for p in r["pieces"]]
            byte_spans = r["offsets"]
        else:
            proto = self.sp.encode(text, out_type="immutable_proto")
            pieces = [p.piece for p in proto.pieces]
            byte_spans = [(p.begin, p.end) for p in proto.pieces]
        return pieces, char_spans(text, byte_spans)

    def encode(self, text: str) -> Tuple[List[int], List[Span]]:
        pieces, spans = self.pieces(text)
        return [self.dictionary.index(p) for p in pieces], spans  # unknown pieces -> <unk>


def answer_tokens(spans: List[Span], start: int, end: int) -> Optional[Span]:
    """(first, last) token of the characters [start, end): the first non-empty token ending after
    ``start`` and the last one beginning before ``end``; None if there is none."""
    first = next((i for i, (b, e) in enumerate(spans) if e > b and e > start), None)
    last = next((i for i in range(len(spans) - 1, -1, -1) if spans[i][1] > spans[i][0] and spans[i][0] < end), None)
    if first is None or last is None or first > last:
        return None
    return first, last


def doc_windows(n_tokens: int, max_tokens: int, doc_stride: int) -> List[Span]:
    """[first, stop) context-token ranges: at most ``max_tokens`` each, starting ``doc_stride``
    apart, the last one ending at the context end (one empty window for an empty context)."""
    out, first = [], 0
    while True:
        stop = min(first + max_tokens, n_tokens)
        out.append((first, stop))
        if stop >= n_tokens:
            return out
        first += min(stop - first, doc_stride)


def make_windows(qid: str, question_ids: List[int], context_ids: List[int], context_spans: List[Span],
                 answer: Optional[Span], dictionary, max_length: int, doc_stride: int) -> List[Window]:
    """Windows of one question; ``answer`` is its (first, last) context token or None."""
    head = [dictionary.bos()] + question_ids + [dictionary.eos(), dictionary.eos()]
    max_tokens = max_length - len(head) - 1
    if max_tokens < 1:
        raise ValueError(f"max_length {max_length} leaves no room for context after a {len(question_ids)}-token question")
    cs = len(head)
    windows = []
    for first, stop in doc_windows(len(context_ids), max_tokens, doc_stride):
        start = end = 0
        if answer is not None and first <= answer[0] and answer[1] < stop:
            start, end = cs + answer[0] - first, cs + answer[1] - first
        ids = head + context_ids[first:stop] + [dictionary.eos()]
        windows.append(Window(qid, ids, start, end, cs, context_spans[first:stop]))
    return windows
