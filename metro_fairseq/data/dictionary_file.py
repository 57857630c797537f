"""Read a fairseq ``dict.txt`` after checking it line by line.

fairseq's ``Dictionary.add_from_file`` rejects a bad line with "Incorrect dictionary format" or
"Duplicate word", naming neither the file nor the line. ``load_dictionary`` applies the same rules
first (``<token> <count> [#fairseq:overwrite]``, UTF-8, no token twice, none of the four symbols
fairseq adds itself) and refuses the first bad line with its file, line number and the fix.
"""
from fairseq.data import Dictionary

OVERWRITE = "#fairseq:overwrite"
REGENERATE = "fix or delete that line, or regenerate the dictionary (scripts/prepare_corpus.py writes dict.txt)"


def check_dictionary(path: str) -> None:
    specials = set(Dictionary().symbols)  # <s> <pad> </s> <unk>: fairseq adds them itself
    seen = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text (byte {e.start}): {REGENERATE}") from None
    for number, raw in enumerate(lines, start=1):
        fields = raw.rstrip().rsplit(" ", 1)
        overwrite = len(fields) == 2 and fields[1] == OVERWRITE
        if overwrite:
            fields = fields[0].rsplit(" ", 1)
        try:
            word, count = fields
            int(count)
        except ValueError:
            raise ValueError(f"{path}:{number}: {raw.rstrip()!r} is not '<token> <count>': {REGENERATE}") from None
        if not overwrite and word in specials:
            raise ValueError(f"{path}:{number}: {word!r} is a symbol fairseq adds itself: {REGENERATE}")
        if not overwrite and word in seen:
            raise ValueError(f"{path}:{number}: {word!r} is listed twice (also line {seen[word]}): {REGENERATE}")
        seen[word] = number


def load_dictionary(path: str) -> Dictionary:
    check_dictionary(path)
    return Dictionary.load(path)
