"""Whether replaced-token detection has a signal: its prior, and a warning when it has none.

An RTD head that knows only how often tokens are replaced scores H(replace rate) bits: the loss to
beat. While the generator samples from word frequencies (the unigram plateau of small or short runs)
RTD sits there with recall 0, the main model learns nothing from it and its token states collapse.
Nothing here imports fairseq or torch (the log tools use it too).
"""
import logging
import math

logger = logging.getLogger(__name__)

PLATEAU_DOCS = "docs/pretraining.md, 'Small models and the unigram plateau'"


def binary_entropy_bits(p):
    """What an RTD head that knows only the replace rate scores: the loss to beat."""
    return 0.0 if p <= 0 or p >= 1 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


class NoSignalWatch:
    """Counts consecutive log intervals in which RTD is at its prior (gain under ``tolerance`` bits) with
    recall under ``max_recall`` while its weight is on, and logs one warning when there are ``intervals``
    of them. Fed at log time from values fairseq has already reduced on the host: no sync of its own."""

    def __init__(self, intervals: int = 5, tolerance: float = 0.01, max_recall: float = 0.01):
        self.intervals, self.tolerance, self.max_recall = intervals, tolerance, max_recall
        self.count = 0
        self.warned = False

    def observe(self, gain: float, recall: float, active: bool) -> None:
        if not active:  # --rtd-start-update: RTD is off on purpose
            return
        self.count = self.count + 1 if gain < self.tolerance and recall < self.max_recall else 0
        if self.count >= self.intervals and not self.warned:
            self.warned = True
            logger.warning(
                f"RTD has had no signal for {self.count} log intervals (rtd_gain {gain:.4f} bits: rtd_loss at its "
                f"prior H(replace_rate); rtd_recall {recall:.4f}): the generator is likely on the unigram plateau "
                "and the main model learns nothing from RTD (watch token_cos: near 1 is collapse). Small models "
                "and short runs need a hot start that releases itself, --sampling-temperature-start 3 "
                "--sampling-temperature-release-bits 0.5 --sampling-temperature-anneal-updates 500 (preset "
                f"metro_cpu_small), and GDES, --embedding-sharing gdes; see {PLATEAU_DOCS}"
            )
