"""Reader of fairseq's ``--log-format json`` statistics lines: the one place that parses fairseq logs.

fairseq's ``JsonProgressBar`` logs one JSON object per statistics line, under a logger renamed to a tag:

* ``train_inner``: every ``--log-interval`` updates, ``{"epoch": 1, "update": 0.045, "loss": "37.193",
  ..., "num_updates": "5", "lr": "0.002", ..., "wall": "12"}`` (``update`` is the fraction of epochs);
* ``train``: the end-of-epoch average, every key prefixed: ``{"epoch": 1, "train_loss": "40.028", ...}``;
* the validation subset (``valid``, ``valid_en``, ...): ``{"epoch": 1, "valid_loss": "36.813", ...,
  "valid_num_updates": "15", "valid_best_loss": "36.813"}``, every key prefixed with the subset.

Values are strings as fairseq formats them (``"{:g}"``, or 3 decimals for averaged meters). A line
reads as one of::

    2026-01-05 10:00:00 | INFO | train_inner | {"epoch": 1, ...}   (fairseq-train's console)
    [2026-01-05 10:00:00,123][valid][INFO] - {"epoch": 1, ...}       (fairseq-hydra-train's console and hydra_train.log)
    INFO:train:{"epoch": 1, ...}                                    (Python's default format: a script that
                                                                     imports fairseq before fairseq_cli.train)
    {"epoch": 1, ...}                                               (a --log-file / common.log_file)

A ``--log-file`` carries no tag; the tag is then read off the keys: unprefixed ``num_updates`` is
``train_inner``, ``<tag>_num_updates`` names the tag (every statistics line fairseq-train writes has
``num_updates``). fairseq adds one file handler per epoch, so from epoch 2 on a log file repeats each
line (n times in epoch n): a record identical to the one on the line before it is read once.

Every other line (fairseq's other messages, the config printed as a Python dict, a line cut short by
a killed process, ``--log-format simple`` or ``tqdm`` lines) is skipped. :func:`read_log` with
``require=True`` raises :class:`NoJsonLines` when nothing is left.

Imports only the standard library: scripts load this file on its own (importing the ``metro_fairseq``
package imports fairseq and torch).
"""
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

TRAIN_INNER, TRAIN, VALID = "train_inner", "train", "valid"
# fairseq-train's "%(asctime)s | %(levelname)s | %(name)s | %(message)s", hydra's
# "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s", Python's default "%(levelname)s:%(name)s:%(message)s",
# or the bare message of a --log-file
LINE = re.compile(
    r"\s*(?:[^|{\[]*\| [A-Z]+ \| (?P<name>[^|\s]+) \| |\[[^\]]*\]\[(?P<hydra_name>[^\]\s]+)\]\[[A-Z]+\] - "
    r"|[A-Z]+:(?P<python_name>[^:\s]+):)?(?P<json>\{.*\})\s*$"
)


@dataclass(frozen=True)
class Record:
    """One statistics line. ``stats`` holds every numeric value as a float under its name without the
    tag's prefix (``loss``, ``num_updates``, ``wall``, ``accuracy``, ...); ``raw`` is the JSON object
    as logged (prefixed keys, string values)."""

    kind: str  # TRAIN_INNER, TRAIN or VALID
    tag: str  # what fairseq tagged it with: "train_inner", "train" or the validation subset's name
    epoch: Optional[int]
    update: Optional[float]  # train_inner only: the epoch fraction reached
    stats: Dict[str, float] = field(repr=False)
    raw: Dict[str, Any] = field(repr=False)

    @property
    def subset(self) -> Optional[str]:
        """The validation subset (``valid``, ``valid_de``, ...); None for training records."""
        return self.tag if self.kind == VALID else None

    @property
    def num_updates(self) -> Optional[int]:
        value = self.stats.get("num_updates")
        return None if value is None else int(value)

    def __getitem__(self, key: str) -> float:
        return self.stats[key]

    def __contains__(self, key: str) -> bool:
        return key in self.stats

    def get(self, key: str, default: Any = None) -> Any:
        return self.stats.get(key, default)


class NoJsonLines(ValueError):
    """A log without a single fairseq JSON statistics line."""

    @classmethod
    def of(cls, source: str) -> "NoJsonLines":
        return cls(f"no fairseq JSON log lines in {source}: train with --log-format json "
                   "(fairseq-hydra-train: common.log_format=json)")


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _tag_of_keys(keys: List[str]) -> Optional[str]:
    if "num_updates" in keys:
        return TRAIN_INNER
    for key in keys:
        if key.endswith("_num_updates"):
            return key[: -len("_num_updates")]
    return None


def parse_line(line: str) -> Optional[Record]:
    """The record on one log line, or None when the line is not a fairseq JSON statistics line."""
    m = LINE.match(line)
    if not m:
        return None
    try:
        obj = json.loads(m.group("json"))
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    keys = [k for k in obj if k not in ("epoch", "update")]
    tag = m.group("name") or m.group("hydra_name") or m.group("python_name") or _tag_of_keys(keys)
    if tag is None or not keys:
        return None
    if tag == TRAIN_INNER:
        names = {k: k for k in keys}
    else:
        prefix = tag + "_"
        if not all(k.startswith(prefix) for k in keys) or "update" in obj:
            return None  # another logger's JSON, or a tag that is not what its keys say
        names = {k: k[len(prefix):] for k in keys}
    stats = {}
    for key, name in names.items():
        value = _number(obj[key])
        if value is not None:
            stats[name] = value
    epoch, update = _number(obj.get("epoch")), _number(obj.get("update"))
    kind = tag if tag in (TRAIN_INNER, TRAIN) else VALID
    return Record(kind, tag, None if epoch is None else int(epoch), update, stats, obj)


def iter_records(lines: Iterable[str]) -> Iterator[Record]:
    """The records of ``lines`` in order; a line repeating the line before it (a --log-file's extra
    handlers) is read once."""
    previous = None
    for line in lines:
        record = parse_line(line)
        repeated = record is not None and previous is not None and (record.tag, record.raw) == (previous.tag, previous.raw)
        previous = record
        if record is not None and not repeated:
            yield record


@dataclass
class FairseqLog:
    """The records of one log, in the order logged."""

    records: List[Record]
    source: str = "<lines>"

    def of(self, kind: str) -> List[Record]:
        return [r for r in self.records if r.kind == kind]

    def train_inner(self) -> List[Record]:
        """The per-interval training records (``--log-interval``)."""
        return self.of(TRAIN_INNER)

    def train(self) -> List[Record]:
        """The end-of-epoch training averages."""
        return self.of(TRAIN)

    def valid(self, subset: str = "valid") -> List[Record]:
        """The validations of one subset."""
        return [r for r in self.records if r.kind == VALID and r.tag == subset]

    def subsets(self) -> List[str]:
        """The validation subsets, in the order first logged."""
        return list(dict.fromkeys(r.tag for r in self.records if r.kind == VALID))

    def by_update(self, kind: str = TRAIN_INNER, subset: str = "valid") -> Dict[int, Dict[str, float]]:
        """``{num_updates: stats}`` of one kind (of ``subset`` for VALID); a later record of an update
        (a resumed run logs it again) replaces the earlier one."""
        records = self.valid(subset) if kind == VALID else self.of(kind)
        return {r.num_updates: r.stats for r in records if r.num_updates is not None}

    def last_training(self) -> Optional[Record]:
        """The last training record, interval or end-of-epoch, whichever was logged last."""
        training = [r for r in self.records if r.kind in (TRAIN_INNER, TRAIN)]
        return training[-1] if training else None

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)


def read_log(source: Union[str, "os.PathLike[str]", Iterable[str]], require: bool = False) -> FairseqLog:
    """The records of a log file (a path) or of its lines (any iterable of strings, e.g.
    ``(result.stdout + result.stderr).splitlines()``). ``require``: raise :class:`NoJsonLines`, with a
    one-line message naming the fix, when there is no record."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        with open(name, encoding="utf-8", errors="replace") as f:
            log = FairseqLog(list(iter_records(f)), name)
    else:
        log = FairseqLog(list(iter_records(source)))
    if require and not log.records:
        raise NoJsonLines.of(log.source)
    return log
