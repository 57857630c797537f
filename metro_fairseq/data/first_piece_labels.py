"""Word-level tags onto SentencePiece pieces: a word's tag goes to its first piece, its other pieces
get ``IGNORED`` (the label dictionary's padding symbol, which the token classification loss skips).

Pieces never cross a word boundary (SentencePiece splits on whitespace first), so encoding each word
alone gives exactly the pieces of the whole sentence.
"""
from typing import Callable, List, Sequence, Tuple

IGNORED = "<pad>"


def first_piece_labels(words: Sequence[str], tags: Sequence[str],
                       encode_word: Callable[[str], List[str]]) -> Tuple[List[str], List[str]]:
    """(pieces, labels) of one sentence, one label per piece."""
    if len(words) != len(tags):
        raise ValueError(f"{len(words)} words but {len(tags)} tags")
    pieces, labels = [], []
    for word, tag in zip(words, tags):
        word_pieces = encode_word(word)
        if not word_pieces:
            raise ValueError(f"the word {word!r} encodes to no pieces")
        pieces += word_pieces
        labels += [tag] + [IGNORED] * (len(word_pieces) - 1)
    return pieces, labels
