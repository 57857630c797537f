"""Load the SentencePiece model given to a data preparation tool, refusing a corrupt or cut one.

SentencePiece parses a file cut at a boundary between pieces without complaint: the model then
has fewer pieces and no trainer or normalizer spec, and would silently tokenize differently from
the model the data was meant for. A model file is a protobuf ``ModelProto`` serialized in field
order: pieces (1), trainer_spec (2), normalizer_spec (3), then optional fields; a whole file has 2
and 3 (a cut inside either fails to parse), so their presence is the completeness check.
"""
import os

from ..errors import MetroError


class SentencePieceModelError(MetroError, ValueError):
    """A ``--spm-model`` that is missing, not a SentencePiece model, or cut short."""


def _varint(data: bytes, pos: int):
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    raise ValueError("cut inside a field")


def top_level_fields(data: bytes) -> set:
    """The field numbers of a protobuf message (wire format), ValueError if it ends mid-field."""
    numbers, pos = set(), 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"unknown wire type {wire}")
        if pos > len(data):
            raise ValueError("cut inside a field")
        numbers.add(key >> 3)
    return numbers


def load_sentencepiece(path: str):
    """The SentencePiece processor for ``path``; SentencePieceModelError if it is not a whole model."""
    import sentencepiece as spm

    fix = "give the spm.model that scripts/prepare_corpus.py wrote next to the pretraining data"
    if not os.path.isfile(path):
        raise SentencePieceModelError(f"--spm-model {path} does not exist: {fix}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        sp = spm.SentencePieceProcessor(model_proto=data)
        missing = {2, 3} - top_level_fields(data)
    except (OSError, RuntimeError, ValueError) as e:
        raise SentencePieceModelError(f"--spm-model {path} is not a SentencePiece model ({e}): {fix}") from None
    if missing:
        specs = " or ".join({2: "trainer", 3: "normalizer"}[n] for n in sorted(missing))
        raise SentencePieceModelError(f"--spm-model {path} is not a SentencePiece model (cut short: "
                                      f"{sp.get_piece_size()} pieces and no {specs} spec): {fix}")
    return sp
