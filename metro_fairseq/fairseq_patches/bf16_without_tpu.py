"""Patch: ``--bf16`` on GPU and CPU from the command line, without fairseq's forced ``--tpu``.

Wraps: ``fairseq.options.parse_args_and_arch`` and ``fairseq.distributed.utils.call_main``.
Tested by: tests/test_bf16_training.py (parse tests and bf16 runs through fairseq-train).

fairseq's ``options.parse_args_and_arch`` sets ``args.tpu = True`` whenever ``--bf16`` or
``--memory-efficient-bf16`` is given (facebookresearch/fairseq#4696), so a CUDA or CPU run takes the
TPU path and dies in ``utils.get_tpu_device``. The hydra route (``common.bf16=true``) never does.
``install()`` undoes exactly that rule: ``tpu`` goes back to False when the command line has a bf16
flag and no ``--tpu``; an explicit ``--tpu`` keeps fairseq's behaviour. It wraps two functions,
because fairseq-train imports the plugin (``--user-dir``) in the middle of its one parse:
- ``options.parse_args_and_arch``: every parse after the plugin is installed (tools, benchmarks);
- ``distributed.utils.call_main``: fairseq-train's own parse, before anything reads ``common.tpu``.
"""
import argparse
import functools
import sys
from typing import List, Optional

from fairseq import options
from fairseq.distributed import utils as distributed_utils
from omegaconf import open_dict


def tpu_forced_by_bf16(argv: Optional[List[str]]) -> bool:
    """True when fairseq's parser set ``tpu`` only because of a bf16 flag in ``argv``."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--tpu", "--bf16", "--memory-efficient-bf16"):
        parser.add_argument(flag, action="store_true")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    return (known.bf16 or known.memory_efficient_bf16) and not known.tpu


def install():
    if getattr(options.parse_args_and_arch, "_metro_bf16_shim", False):
        return
    parse = options.parse_args_and_arch
    call_main = distributed_utils.call_main

    @functools.wraps(parse)
    def parse_args_and_arch(parser, input_args=None, *args, **kwargs):
        result = parse(parser, input_args, *args, **kwargs)
        parsed = result[0] if isinstance(result, tuple) else result
        if getattr(parsed, "tpu", False) and tpu_forced_by_bf16(input_args):
            parsed.tpu = False
        return result

    @functools.wraps(call_main)
    def call_main_without_forced_tpu(cfg, main, **kwargs):
        if cfg.common.tpu and cfg.common.bf16 and tpu_forced_by_bf16(None):
            with open_dict(cfg):
                cfg.common.tpu = False
        return call_main(cfg, main, **kwargs)

    parse_args_and_arch._metro_bf16_shim = True
    options.parse_args_and_arch = parse_args_and_arch
    distributed_utils.call_main = call_main_without_forced_tpu
