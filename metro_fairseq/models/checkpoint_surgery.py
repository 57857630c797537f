"""What a METRO state dict must satisfy to load, and how a pretraining one becomes the main model's.

The model calls these from ``load_state_dict`` / ``upgrade_state_dict_named``; scripts call
``strip_to_main_model`` to export. Mismatches raise ``CheckpointMismatchError``, which the CLI turns
into one line (``fairseq_patches/one_line_errors.py``) instead of fairseq's "architectures match".
"""
import zlib
from typing import Optional

from ..errors import MetroError

# modules that exist only while pretraining (a model built for fine-tuning has none of them)
PRETRAINING_MODULES = (
    "generator.", "generator_head.", "rtd_head.", "clm_head.", "scl_head.", "embeddings.generator_table",
    "sampling_temperature.",
)


class CheckpointMismatchError(MetroError):
    """A checkpoint that does not fit the model this run built."""


def dictionary_fingerprint(dictionary) -> int:
    """A checksum of the symbol list, stored in checkpoints to catch a mismatched dictionary."""
    return zlib.crc32("\n".join(dictionary.symbols).encode("utf-8"))


def check_dictionary_fingerprint(state_dict: dict, expected: int) -> None:
    saved = state_dict.get("dictionary_fingerprint")
    if saved is not None and int(saved) != int(expected):
        raise CheckpointMismatchError(
            "the dictionary of this run does not match the one the checkpoint was trained with: use the "
            "checkpoint's dict.txt (fairseq-preprocess --srcdict) or a new --save-dir"
        )


def check_architecture(expected: dict, found: dict) -> None:
    problem = architecture_mismatch(expected, found)
    if problem:
        raise CheckpointMismatchError(
            f"{problem}: the checkpoint was trained with other architecture options; pass the ones "
            "`metro-export --show-args CHECKPOINT` prints"
        )


def architecture_mismatch(expected: dict, found: dict) -> Optional[str]:
    """The first key whose shape differs, is missing or is unexpected, worded for the user; None if all fit."""
    for key, value in found.items():
        if key in expected and expected[key].shape != value.shape:
            return f"{key} has shape {tuple(value.shape)} in the checkpoint but {tuple(expected[key].shape)} here"
    missing = sorted(set(expected) - set(found))
    if missing:
        return f"the checkpoint has no {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        return f"this model has no {unexpected[0]}" + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
    return None


def strip_to_main_model(state_dict: dict, prefix: str = "") -> dict:
    """Turn a pretraining state dict into the main model's, in place: the generator and the
    pretraining heads are dropped and GDES's ``E + E_delta`` becomes the one embedding table."""
    delta = state_dict.pop(prefix + "embeddings.delta", None)
    if delta is not None:
        state_dict[prefix + "embeddings.weight"] = state_dict[prefix + "embeddings.weight"] + delta
    for key in [k for k in state_dict if k.startswith(tuple(prefix + p for p in PRETRAINING_MODULES))]:
        del state_dict[key]
    return state_dict


def add_missing_heads(state_dict: dict, prefix: str, heads: dict, log) -> None:
    """Heads this run adds (a classification or span head for fine-tuning, a CLM or SCL head when a later
    phase switches an objective on) keep their fresh initialisation: their tensors join ``state_dict``."""
    for head_name, head in heads.items():
        keys = {f"{prefix}{head_name}.{k}": v for k, v in head.state_dict().items()}
        if not any(k in state_dict for k in keys):
            log(f"{head_name} is not in the checkpoint: starting it from its initialisation")
            state_dict.update(keys)


def drop_module(state_dict: dict, prefix: str, log) -> None:
    """Remove the state of a module this run does not build (a temperature schedule switched off)."""
    keys = [k for k in state_dict if k.startswith(prefix)]
    if keys:
        log(f"{prefix.rstrip('.')} is in the checkpoint but not in this run: its state is dropped")
        for key in keys:
            del state_dict[key]
