"""The XLM-R tokenizer of a unigram SentencePiece model, checked against fairseq's encoding.

``prepare_corpus.py`` writes XLM-R's dictionary layout (``<s>``=0, ``<pad>``=1, ``</s>``=2,
``<unk>``=3, SentencePiece id i at i + 1, ``<mask>`` last), so ``XLMRobertaTokenizer`` loaded from a
folder holding the model as ``sentencepiece.bpe.model`` reproduces it. (Built with ``vocab_file=``
it silently has a 5-token vocabulary; for ``--model-type bpe`` it builds a Unigram model and splits
most lines differently, so bpe models are refused.)
"""
import os
import shutil
from typing import List, Optional

# a few lines of other kinds than the corpus, for the check (digits, punctuation, accents, case, CJK)
SAMPLE_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "In 1998, 3.5% of the 1,024 samples (n=17) were \"unusual\" - see Table 2!",
    "Zoë's café in São Paulo serves crème brûlée; naïve coöperation.",
    "ALL CAPS, MiXeD cAsE and   extra   spaces\tand a tab",
    "東京 is written with two characters; emoji 🙂 are rare.",
]


def spm_model_type(spm_path: str) -> str:
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    with open(spm_path, "rb") as f:
        proto.ParseFromString(f.read())
    return sentencepiece_model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type).lower()


def fairseq_ids(sp, dictionary, line: str) -> List[int]:
    """What fairseq trains on: SentencePiece pieces through dict.txt, between ``<s>`` and ``</s>``."""
    pieces = sp.encode(line.strip(), out_type=str)
    return [dictionary.bos()] + [dictionary.index(p) for p in pieces] + [dictionary.eos()]


def layout_problem(sp, dictionary) -> Optional[str]:
    specials = [dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk()]
    if specials != [0, 1, 2, 3]:
        return f"dictionary specials are at {specials}, not XLM-R's [0, 1, 2, 3]"
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i)) and dictionary.index(sp.id_to_piece(i)) != i + 1:
            return f"piece {sp.id_to_piece(i)!r} (SentencePiece id {i}) is not at index {i + 1} of the dictionary"
    if dictionary.index("<mask>") != len(dictionary) - 1 or len(dictionary) != sp.get_piece_size() + 2:
        return "the dictionary is not the SentencePiece vocabulary plus <mask> (was it made by prepare_corpus.py?)"
    return None


def build_tokenizer(transformers, spm_path: str, workdir: str, max_length: int):
    os.makedirs(workdir, exist_ok=True)
    shutil.copy(spm_path, os.path.join(workdir, "sentencepiece.bpe.model"))
    return transformers.XLMRobertaTokenizer.from_pretrained(workdir, model_max_length=max_length)


def fairseq_pair_ids(sp, dictionary, first: str, second: str) -> List[int]:
    """sentence_prediction's pair (``--init-token 0 --separator-token 2``): <s> A </s> </s> B </s>, as XLM-R."""
    return fairseq_ids(sp, dictionary, first) + [dictionary.eos()] + fairseq_ids(sp, dictionary, second)[1:]


def id_mismatch(tokenizer, sp, dictionary, lines) -> Optional[str]:
    """The first line (or pair of neighbouring lines) the tokenizer encodes differently from fairseq,
    described; None when all agree."""
    cases = [((line,), fairseq_ids(sp, dictionary, line)) for line in lines]
    cases += [((a, b), fairseq_pair_ids(sp, dictionary, a, b)) for a, b in zip(lines[::2], lines[1::2])]
    for text, ours in cases:
        theirs = tokenizer(*[t.strip() for t in text])["input_ids"]
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            kind = "line" if len(text) == 1 else "pair starting"
            return f"{kind} {text[0].strip()[:40]!r}: fairseq and the tokenizer differ from token {at} on"
    return None
