"""The benchmarks' analytic FLOP model against torch's FLOP counter on real fairseq train steps."""
import os
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import harness  # noqa: E402

SIZE = harness.Size(layers=2, dim=64, ffn=256, heads=2, generator_layers=1, tokens_per_sample=64, batch=4)


@pytest.mark.parametrize("system", list(harness.variants(SIZE)))
def test_analytic_flops_match_counted_flops_of_a_train_step(system, wiki_bin):
    with harness.quiet():
        bench = harness.Bench(harness.common_flags(str(wiki_bin), SIZE, "cpu") + harness.variants(SIZE)[system],
                              num_batches=1)
    sample = bench.batches[0]
    if "masked_index" in sample["net_input"]:
        predicted = sample["net_input"]["masked_index"].numel()
    else:
        predicted = int(sample["target"].ne(bench.task.source_dictionary.pad()).sum())
    crop = sample["net_input"]["crop_tokens"].size(1) if "crop_tokens" in sample["net_input"] else None
    with FlopCounterMode(display=False) as counter:
        bench.trainer.train_step([sample])
    counted = counter.get_total_flops()
    analytic = harness.training_flops(system, SIZE, len(bench.task.source_dictionary),
                                      mask_prob=predicted / (SIZE.batch * SIZE.tokens_per_sample), crop_tokens=crop)
    assert counted > 0 and abs(analytic / counted - 1) < 0.03, (system, analytic, counted)
