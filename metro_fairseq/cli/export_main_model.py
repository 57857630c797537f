"""``metro-export``: turn a metro pretraining checkpoint into a main-model-only checkpoint for fine-tuning.

    metro-export checkpoints/metro_base/checkpoint_best.pt metro_base.pt
    metro-export --show-args metro_base.pt    # flags to fine-tune it with
    metro-export --show-args --format hydra metro_base.pt

The generator, the RTD/CLM/SCL heads and the optimizer state are dropped, GDES embeddings are merged
(E + E_delta) and the architecture settings stay in the saved config. Fine-tune the result (or the
pretraining checkpoint itself) with fairseq's ``sentence_prediction`` task and ``--finetune-from-model``.
"""
import argparse
import os

import torch
from omegaconf import OmegaConf

from .. import plugin
from ..models.checkpoint_surgery import strip_to_main_model
from ..models.metro_config import pretraining_only_options
from .messages import fail, log, one_line_errors

TOOL = "export_main_model"


def load(path):
    if not os.path.isfile(path):
        fail(TOOL, f"checkpoint {path} does not exist")
    plugin.install()  # the weights-only loader's safe globals and the checkpoint check
    from fairseq import checkpoint_utils

    # a truncated, foreign or code-carrying file raises CheckpointError: one line from main, nothing written
    state = checkpoint_utils.load_checkpoint_to_cpu(path)
    model_cfg = (state.get("cfg") or {}).get("model") or {}
    if not str(model_cfg.get("_name", "")).startswith("metro"):
        fail(TOOL, f"{path} is not a metro checkpoint (model {model_cfg.get('_name')!r})")
    return state, model_cfg


def fine_tuning_args(model_cfg, style: str = "flags") -> str:
    """The model options that rebuild this main model under another task, as fairseq-train flags
    or as fairseq-hydra-train overrides (``++``: a fine-tuning config lists only some model keys, and
    hydra refuses a plain override of a key the config does not have)."""
    dropped = {"_name", *pretraining_only_options()}
    kept = {k: v for k, v in model_cfg.items() if k not in dropped and v is not None}
    if style == "hydra":
        return " ".join(f"++model.{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in kept.items())
    args = [f"--arch {model_cfg['_name']}"]
    for key, value in kept.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                args.append(flag)
        else:
            args.append(f"{flag} {value}")
    return " ".join(args)


def export(src: str, dst: str):
    state, model_cfg = load(src)
    before = len(state["model"])
    strip_to_main_model(state["model"])
    state["last_optimizer_state"] = None
    # fairseq hands the config back as a DictConfig; save plain containers like fairseq does,
    # which the weights-only loader accepts
    state["cfg"] = OmegaConf.to_container(state["cfg"], resolve=True)
    state["cfg"]["model"]["embedding_sharing"] = "tied"  # one table after the GDES merge
    torch.save(state, dst)
    log(TOOL, f"{src} -> {dst}: kept {len(state['model'])} of {before} tensors (main model only)")
    log(TOOL, f"fine-tune with: {fine_tuning_args(model_cfg)}")


@one_line_errors(TOOL)
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="metro pretraining (or exported) checkpoint")
    p.add_argument("output", nargs="?", help="where to write the main-model checkpoint")
    p.add_argument("--show-args", action="store_true", help="print the model options for fine-tuning and exit")
    p.add_argument("--format", choices=["flags", "hydra"], default="flags",
                   help="--show-args as fairseq-train flags or fairseq-hydra-train overrides")
    args = p.parse_args(argv)
    if args.show_args:
        print(fine_tuning_args(load(args.checkpoint)[1], args.format))
    elif args.output:
        export(args.checkpoint, args.output)
    else:
        p.error("give an OUTPUT path, or --show-args")


if __name__ == "__main__":
    main()
