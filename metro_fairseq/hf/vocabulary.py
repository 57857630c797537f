"""A released tokenizer's vocabulary as a fairseq dictionary, and back.

fairseq fixes its specials at ids 0-3 (``<s>``, ``<pad>``, ``</s>``, ``<unk>``) and the tasks add
``<mask>`` last; a released vocabulary puts them anywhere (BERT: ``[PAD]`` 0, ``[UNK]`` 100,
``[CLS]`` 101, ``[SEP]`` 102, ``[MASK]`` 103). So the dictionary is the tokenizer's vocabulary in its
own order with the five specials moved, and ``hf_ids[i]`` is the tokenizer id of dictionary index i:
the embedding rows are permuted by it on import and back on export.

- ``<s>`` is the tokenizer's ``cls_token`` (else ``bos_token``), ``</s>`` its ``sep_token`` (else
  ``eos_token``): the pair fairseq's tasks put around every sequence.
- dict.txt holds every other token by its own string, so text split into the tokenizer's pieces
  (``tokenizer.tokenize``) binarizes to the same ids with ``fairseq-preprocess --srcdict``; a token that
  is a fairseq special's string or holds whitespace keeps its row as ``<hf:ID>``.
"""
import functools
import os
from dataclasses import dataclass
from typing import List, Optional

from ..errors import MetroError

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
# fairseq name -> the tokenizer attributes that may hold it, in order of preference
SPECIAL_SOURCES = {"<s>": ("cls_token", "bos_token"), "<pad>": ("pad_token",), "</s>": ("sep_token", "eos_token"),
                   "<unk>": ("unk_token",), "<mask>": ("mask_token",)}


class HFImportError(MetroError):
    """A released model or tokenizer the import cannot take as it is: one line, naming why."""


@dataclass
class Vocabulary:
    symbols: List[str]  # dict.txt's symbols: every token but the five specials, in tokenizer order
    hf_ids: List[int]  # tokenizer id of each dictionary index, <mask> (the last) included
    specials: dict  # fairseq special -> the tokenizer's token

    def id_map(self):
        """``hf_ids`` as a tensor: indexing it with fairseq ids gives the tokenizer's."""
        import torch

        return torch.tensor(self.hf_ids)

    def write_dict(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for i, symbol in enumerate(self.symbols):
                f.write(f"{symbol} {len(self.symbols) - i}\n")  # counts only order; the tokenizer's is kept

    @functools.cached_property
    def index(self) -> dict:
        """dict.txt symbol -> dictionary index."""
        return {s: i + len(FAIRSEQ_SPECIALS) for i, s in enumerate(self.symbols)}

    def fairseq_ids(self, tokenizer, line: str) -> List[int]:
        """What fairseq trains on for ``line``: ``<s>`` + the pieces through dict.txt + ``</s>``."""
        return [0] + [self.index.get(p, 3) for p in tokenizer.tokenize(line)] + [2]


def load_tokenizer(hf_dir: str, option: str = "--hf-tokenizer"):
    """The tokenizer of a transformers folder (from disk, never the hub), refused in one line."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    if not os.path.isdir(hf_dir):
        raise HFImportError(f"{option} {hf_dir} is not a folder: give the transformers folder metro-import-hf read")
    try:
        return transformers.AutoTokenizer.from_pretrained(hf_dir)
    except (OSError, ValueError, TypeError) as e:
        raise HFImportError(f"{option} {hf_dir}: transformers cannot load a tokenizer from it ({type(e).__name__}); "
                            "it needs vocab.txt, tokenizer.json or a SentencePiece model")


def special_tokens(tokenizer) -> dict:
    found = {}
    for name, attributes in SPECIAL_SOURCES.items():
        token = next((getattr(tokenizer, a) for a in attributes if getattr(tokenizer, a, None)), None)
        if token is None:
            raise HFImportError(f"the tokenizer has no {' or '.join(attributes)}, which fairseq's {name} needs: "
                                "set it in the folder's tokenizer_config.json / special_tokens_map.json")
        found[name] = str(token)
    return found


def vocabulary_of(tokenizer, vocab_size: Optional[int] = None) -> Vocabulary:
    """The fairseq dictionary of ``tokenizer``; ``vocab_size``: the embedding table's rows, checked to hold
    every token when given."""
    vocab = tokenizer.get_vocab()
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    if vocab_size is not None and by_id[-1][1] >= vocab_size:
        raise HFImportError(f"the tokenizer's token {by_id[-1][0]!r} has id {by_id[-1][1]}, beyond the model's "
                            f"{vocab_size} embedding rows: the tokenizer does not belong to this model")
    specials = special_tokens(tokenizer)
    special_ids = {vocab[t] for t in specials.values()}
    if len(special_ids) != len(specials):
        raise HFImportError(f"the tokenizer's specials {specials} share ids: fairseq needs five distinct tokens")
    others = [(t, i) for t, i in by_id if i not in special_ids]
    # a token dict.txt cannot carry under its own string (MPNet's vocabulary has a plain "<unk>" beside its
    # unk_token "[UNK]") keeps its row under a placeholder no text splits into
    symbols = [f"<hf:{i}>" if t in FAIRSEQ_SPECIALS + ("<mask>",) or not t or any(c.isspace() for c in t) else t
               for t, i in others]
    hf_ids = [vocab[specials[n]] for n in FAIRSEQ_SPECIALS] + [i for _, i in others] + [vocab[specials["<mask>"]]]
    return Vocabulary(symbols, hf_ids, specials)
