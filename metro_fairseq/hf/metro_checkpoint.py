"""The fairseq side of an export: a metro checkpoint as the main model (GDES merged, generator and
pretraining heads dropped) with its fine-tuned head, its dictionary and its SentencePiece model."""
import os
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import MetroError

HEAD_GROUPS = {"classification_heads": "classification", "span_heads": "qa", "token_heads": "token"}


class ExportError(MetroError):
    """A problem with the user's input or a failed check: one line, naming the fix."""


@dataclass
class Source:
    model: "torch.nn.Module"  # metro_fairseq MetroModel, eval, fp32
    cfg: object  # its MetroConfig
    dictionary: object
    data_dir: str
    head_kind: str  # "base", "classification" or "qa"
    head_name: Optional[str]
    head: dict  # the head's tensors, without their prefix


def _heads(state_dict) -> dict:
    """{(kind, name): {key: tensor}} of the fine-tuned heads in a main-model state dict."""
    heads = {}
    for key, value in state_dict.items():
        group, _, rest = key.partition(".")
        if group in HEAD_GROUPS:
            name, _, param = rest.partition(".")
            heads.setdefault((HEAD_GROUPS[group], name), {})[param] = value
    return heads


def find_data_file(data_dir: str, *candidates) -> Optional[str]:
    for rel in candidates:
        path = os.path.join(data_dir or "", rel)
        if data_dir and os.path.isfile(path):
            return path
    return None


def load_source(path: str, dict_path: Optional[str] = None, head_name: Optional[str] = None) -> Source:
    from metro_fairseq import plugin

    plugin.install()  # the model's registration, the weights-only loader's safe globals
    from fairseq import checkpoint_utils
    from fairseq.data import Dictionary

    from metro_fairseq.models.checkpoint_surgery import strip_to_main_model
    from metro_fairseq.models.metro import MetroModel
    from metro_fairseq.models.metro_config import config_from_checkpoint

    if not os.path.isfile(path):
        raise ExportError(f"checkpoint {path} does not exist")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as e:  # any unpickling/format failure means the same thing to the user
        raise ExportError(f"{path} is not a fairseq checkpoint ({type(e).__name__}): give a metro .pt file")
    model_cfg = dict((state.get("cfg") or {}).get("model") or {})
    if not str(model_cfg.get("_name", "")).startswith("metro") or "model" not in state:
        raise ExportError(
            f"{path} is a checkpoint of model {model_cfg.get('_name')!r}, not metro: only metro_fairseq models export"
        )
    cfg = config_from_checkpoint(model_cfg)
    cfg.embedding_sharing = "tied"  # one table after the GDES merge
    sd = strip_to_main_model(dict(state["model"]))

    data_dir = str(((state.get("cfg") or {}).get("task") or {}).get("data") or "")
    dict_path = dict_path or find_data_file(data_dir, "dict.txt", os.path.join("input0", "dict.txt"))
    if not dict_path or not os.path.isfile(dict_path):
        raise ExportError(
            f"no dict.txt found (looked in the checkpoint's data folder {data_dir!r}): pass --dict DATA/dict.txt"
        )
    dictionary = Dictionary.load(dict_path)
    dictionary.add_symbol("<mask>")  # the tasks add it; the embedding table has its row

    heads = _heads(sd)
    if head_name is not None:
        chosen = [k for k in heads if k[1] == head_name]
        if not chosen:
            raise ExportError(f"the checkpoint has no head {head_name!r}; it has {sorted(n for _, n in heads)}")
    else:
        chosen = list(heads)
        if len(chosen) > 1:
            raise ExportError(f"the checkpoint has several heads {sorted(n for _, n in heads)}: pick one with --head NAME")
    kind, name = chosen[0] if chosen else ("base", None)
    if kind == "token":
        raise ExportError(f"{path} has the token classification head {name!r}, which has no transformers export yet: "
                          "export the pretrained checkpoint and fine-tune it there with a ForTokenClassification class")

    model = MetroModel(cfg, dictionary, with_generator=False)
    for (k, n), params in heads.items():
        if k == "classification":
            model.register_classification_head(
                n, num_classes=params["out_proj.weight"].size(0), inner_dim=params["dense.weight"].size(0)
            )
        elif k == "qa":
            model.register_span_head(n)
        else:  # a token head beside the chosen one: not exported
            sd = {key: v for key, v in sd.items() if not key.startswith(f"token_heads.{n}.")}
    model.load_state_dict(sd, strict=True)  # a mismatch raises CheckpointMismatchError: one line from the tool
    model.float().eval()
    return Source(model, cfg, dictionary, data_dir, kind, name, heads.get((kind, name), {}))


def label_names(data_dir: str, num_labels: int) -> Optional[list]:
    """Class names from sentence_prediction's label/dict.txt (class i is symbol nspecial + i)."""
    path = find_data_file(data_dir, os.path.join("label", "dict.txt"))
    if path is None:
        return None
    from fairseq.data import Dictionary

    # fairseq-preprocess pads the label dictionary with madeupwordNNNN entries to a multiple of 8
    labels = Dictionary.load(path).symbols[4 : 4 + num_labels]
    real = len(labels) == num_labels and not any(s.startswith("madeupword") for s in labels)
    return labels if real else None
