"""``metro-train-composite``: fairseq-train whose optimizer and lr scheduler become the one group of
fairseq's composite optimizer, so that per-parameter lr scales (``--layer-lr-decay``, ELECTRA's
fine-tuning recipe) work from flags.

The scales are tags that only the composite optimizer reads, and a composite optimizer's groups cannot be
given as flags. Take any fairseq-train command line, replace the program, and keep every flag:

    metro-train-composite DATA --user-dir metro_fairseq --task sentence_prediction ... \
        --optimizer adam --lr 1e-4 --lr-scheduler polynomial_decay ... --layer-lr-decay 0.8

With --fp16/--bf16 the gradients are not flattened into one tensor (the composite optimizer needs one
parameter per tensor).
"""
import logging

from omegaconf import OmegaConf, open_dict

from .. import plugin
from .messages import fail, one_line_errors

TOOL = "train_composite"
logger = logging.getLogger(TOOL)


def composite(cfg):
    """``cfg`` with its optimizer and lr scheduler moved into a composite optimizer's dynamic groups."""
    if cfg.optimizer._name == "composite":
        fail(TOOL, "the optimizer is already composite; use fairseq-train")
    if len(cfg.optimization.lr) != 1:
        fail(TOOL, f"--lr {cfg.optimization.lr} has several values; give one")
    group = {"lr_float": float(cfg.optimization.lr[0]),
             "optimizer": OmegaConf.to_container(cfg.optimizer, resolve=True),
             "lr_scheduler": OmegaConf.to_container(cfg.lr_scheduler, resolve=True)}
    with open_dict(cfg):
        cfg.optimizer = {"_name": "composite", "dynamic_groups": True, "groups": {"default": group}}
        cfg.lr_scheduler = {"_name": "pass_through"}
        cfg.common.fp16_no_flatten_grads = True
    return cfg


@one_line_errors(TOOL)
def main(argv=None):
    plugin.install()  # metro_fairseq is imported already, so fairseq's --user-dir would not load the plugin
    from fairseq import distributed_utils, options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from fairseq_cli import train

    args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
    cfg = composite(convert_namespace_to_omegaconf(args))
    logger.info("optimizer: composite, one dynamic group of %s", cfg.optimizer.groups.default.optimizer["_name"])
    distributed_utils.call_main(cfg, train.main)


if __name__ == "__main__":
    main()
