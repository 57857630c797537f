"""Refuse a truncated or mismatched fairseq-preprocess shard (``PREFIX.bin`` + ``PREFIX.idx``) up front.

fairseq memory-maps both files and trusts the index: a ``.bin`` cut short fails only when training
first reads past its end (hours in, after the last checkpoint), and a cut ``.idx`` fails with an
assertion that names no file. The mmap index (fairseq 0.12) is a 26-byte header (magic, version,
dtype code, N) then N int32 sizes and N int64 pointers, so both lengths are known from the header.
Other dataset formats (cached, raw, huffman) are left to fairseq.
"""
import os
import struct

import numpy as np
from fairseq.data.huffman import HuffmanMMapIndex
from fairseq.data.indexed_dataset import IndexedDataset, MMapIndexedDataset, _code_to_dtype

MAGIC = MMapIndexedDataset.Index._HDR_MAGIC
OTHER_FORMATS = (IndexedDataset._HDR_MAGIC[:8], HuffmanMMapIndex._HDR_MAGIC[:8])
HEADER = struct.Struct("<QBQ")  # version, dtype code, number of sequences (after the magic)
REBINARIZE = "re-create it with fairseq-preprocess (scripts/prepare_corpus.py, prepare_glue.py and prepare_squad.py run it)"


def check_binarized(prefix: str) -> bool:
    """False if neither file exists; raises ValueError naming the file if the pair is not whole."""
    idx, bin_ = prefix + ".idx", prefix + ".bin"
    has_idx, has_bin = os.path.isfile(idx), os.path.isfile(bin_)
    if not has_idx and not has_bin:
        return False
    if has_idx != has_bin:
        present, missing = (idx, bin_) if has_idx else (bin_, idx)
        raise ValueError(f"{missing} is missing next to {present}: the split is incomplete; {REBINARIZE}")
    with open(idx, "rb") as f:
        head = f.read(len(MAGIC) + HEADER.size)
    full = len(MAGIC) + HEADER.size
    if not head.startswith(MAGIC) or len(head) < full:
        if head[:8] in OTHER_FORMATS:
            return True  # fairseq's cached/lazy or huffman format: fairseq checks it itself
        if MAGIC.startswith(head) or head.startswith(MAGIC):
            raise ValueError(f"{idx} is truncated ({len(head)} bytes, not even a header): {REBINARIZE}")
        raise ValueError(f"{idx} is not a fairseq index (it starts with {head[:8]!r}): {REBINARIZE}")
    version, code, n = HEADER.unpack(head[len(MAGIC):])
    if version != 1 or code not in _code_to_dtype:
        raise ValueError(f"{idx} has an unknown header (version {version}, dtype code {code}): {REBINARIZE}")
    expected_idx = full + n * (4 + 8)
    if os.path.getsize(idx) != expected_idx:
        raise ValueError(f"{idx} is truncated or padded ({os.path.getsize(idx)} bytes; its header promises "
                         f"{expected_idx} for {n} sequences): {REBINARIZE}")
    sizes = np.fromfile(idx, dtype=np.int32, count=n, offset=full)
    expected_bin = int(sizes.sum(dtype=np.int64)) * np.dtype(_code_to_dtype[code]).itemsize
    if os.path.getsize(bin_) != expected_bin:
        raise ValueError(f"{bin_} is truncated or from another binarization ({os.path.getsize(bin_)} bytes; "
                         f"{idx} indexes {expected_bin}): {REBINARIZE}")
    return True


def check_binarized_splits(prefix: str) -> bool:
    """``prefix`` and the ``prefix1``, ``prefix2``, ... shards fairseq's ``combine=True`` also loads."""
    found = check_binarized(prefix)
    k = 1
    while check_binarized(f"{prefix}{k}"):
        k += 1
    return found


def read_tokens(prefix: str) -> np.ndarray:
    """Every token of a checked mmap split, memory-mapped (for whole-split checks without a Python loop)."""
    with open(prefix + ".idx", "rb") as f:
        code = HEADER.unpack(f.read(len(MAGIC) + HEADER.size)[len(MAGIC):])[1]  # checked by check_binarized
    dtype = _code_to_dtype[code]
    if os.path.getsize(prefix + ".bin") == 0:  # np.memmap refuses an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(prefix + ".bin", dtype=dtype, mode="r")
