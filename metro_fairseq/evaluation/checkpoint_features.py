"""Mean-pooled main-model states of raw text, for any checkpoint the probe accepts: a metro
pretraining checkpoint, an exported metro main model, or a fairseq RoBERTa (masked_lm) checkpoint.

Text is encoded the way the checkpoint was trained: with the SentencePiece model and dict.txt of
its data directory (``cfg.task.data``, or ``data_dir``), ``<s>`` prepended and ``</s>`` appended as
``prepare_glue.py`` + ``sentence_prediction --init-token 0`` do.
"""
import functools
import os
from typing import List, Optional

import torch


class ProbeError(ValueError):
    """A problem with the checkpoint or its data directory, worded for the user."""


def load_main_model(checkpoint: str, data_dir: Optional[str] = None, random_init: bool = False, seed: int = 1,
                    hf_tokenizer: Optional[str] = None):
    """(model, dictionary, tokenizer path, kind). ``random_init`` builds the same architecture untrained
    (seeded) instead of loading the weights. The tokenizer is DATA/spm.model, or ``hf_tokenizer``: the
    released transformers folder of a ``metro-import-hf`` model."""
    from .. import plugin

    plugin.install()  # the model's registration, the loader's safe globals
    from fairseq import checkpoint_utils, tasks
    from omegaconf import OmegaConf

    from ..models.checkpoint_surgery import strip_to_main_model
    from ..models.metro import MetroModel
    from ..models.metro_config import config_from_checkpoint

    if not os.path.isfile(checkpoint):
        raise ProbeError(f"checkpoint {checkpoint} does not exist")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for a non-checkpoint file)
        raise ProbeError(f"{checkpoint} is not a readable fairseq checkpoint ({type(e).__name__})") from None
    cfg = state.get("cfg")
    if cfg is None or "model" not in state:
        raise ProbeError(f"{checkpoint} holds no fairseq config/model (not a fairseq checkpoint)")
    if not OmegaConf.is_config(cfg):
        cfg = OmegaConf.create(cfg)
    data_dir = data_dir or cfg.task.data.split(":")[0]
    spm_path = hf_tokenizer or os.path.join(data_dir, "spm.model")
    for path in [os.path.join(data_dir, "dict.txt")] + ([] if hf_tokenizer else [spm_path]):
        if not os.path.isfile(path):
            raise ProbeError(f"{path} is missing: pass --data DIR, the prepare_corpus.py output the checkpoint was trained on")
    OmegaConf.set_struct(cfg, False)
    cfg.task.data = data_dir
    task = tasks.setup_task(cfg.task)
    name = str(cfg.model._name)
    torch.manual_seed(seed)
    if name.startswith("metro"):
        model = MetroModel(config_from_checkpoint(cfg.model), task.source_dictionary, with_generator=False)
        kind = "metro"
        if not random_init:
            model.load_state_dict(strip_to_main_model(state["model"]), strict=True)
    elif name.startswith("roberta"):
        model = task.build_model(cfg.model)
        kind = "roberta"
        if not random_init:
            model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
    else:
        raise ProbeError(f"{checkpoint}: model {name!r} is neither metro nor fairseq roberta")
    return model.eval(), task.source_dictionary, spm_path, kind


def encode_texts(texts: List[str], dictionary, tokenizer_path: str, max_length: int) -> List[torch.Tensor]:
    """``<s>`` pieces ``</s>`` through the dictionary, cut to ``max_length``; ``tokenizer_path``: a
    SentencePiece model, or a released transformers folder (``load_main_model``'s ``hf_tokenizer``)."""
    if os.path.isdir(tokenizer_path):
        from ..hf.vocabulary import load_tokenizer

        pieces = load_tokenizer(tokenizer_path).tokenize
    else:
        import sentencepiece as spm

        pieces = functools.partial(spm.SentencePieceProcessor(model_file=tokenizer_path).encode, out_type=str)
    out = []
    for text in texts:
        line = " ".join(pieces(text))
        ids = dictionary.encode_line(line, append_eos=True, add_if_not_exist=False).long()
        ids = torch.cat([ids.new_tensor([dictionary.bos()]), ids])
        out.append(ids[:max_length] if ids.numel() > max_length else ids)
    return out


def check_layer(model, kind: str, layer: Optional[int]) -> int:
    """The main model's depth; raises unless ``layer`` is None or one of its layers."""
    depth = len(model.encoder.layers) if kind == "metro" else len(model.encoder.sentence_encoder.layers)
    if layer is not None and not 0 <= layer <= depth:
        raise ProbeError(f"layer {layer} does not exist: this main model has layers 0 (embeddings) to {depth}")
    return depth


def main_states(model, kind: str, tokens: torch.Tensor, layer: Optional[int] = None) -> torch.Tensor:
    """States ``(B, T, C)`` of the main model, for either kind ``load_main_model`` returns: the last
    layer's (default), or those after ``layer`` of them (0: the normalised input embeddings)."""
    if layer is None or layer == check_layer(model, kind, layer):
        return model.encode(tokens) if kind == "metro" else model(tokens, features_only=True)[0]
    if kind == "roberta":
        return model(tokens, features_only=True, return_all_hiddens=True)[1]["inner_states"][layer].transpose(0, 1)
    # metro's encoder returns only its last layer: catch the wanted one on its way through
    module = model.encoder.embed_layer_norm if layer == 0 else model.encoder.layers[layer - 1]
    caught = []
    handle = module.register_forward_hook(lambda _module, _inputs, output: caught.append(output))
    try:
        model.encode(tokens)
    finally:
        handle.remove()
    return caught[0]


@torch.no_grad()
def mean_pooled_states(model, kind: str, sequences: List[torch.Tensor], pad: int, batch_size: int = 64,
                       layer: Optional[int] = None) -> torch.Tensor:
    """``(N, C)``: each sequence's states (``main_states``) averaged over its tokens (padding
    excluded); batches are formed by length so little padding is computed."""
    from fairseq.data import data_utils

    order = sorted(range(len(sequences)), key=lambda i: sequences[i].numel())
    pooled = [None] * len(sequences)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        tokens = data_utils.collate_tokens([sequences[i] for i in idx], pad)
        states = main_states(model, kind, tokens, layer)
        keep = tokens.ne(pad).unsqueeze(-1).to(states.dtype)
        means = (states * keep).sum(1) / keep.sum(1)
        for j, i in enumerate(idx):
            pooled[i] = means[j].float()
    return torch.stack(pooled)


def bag_of_pieces(sequences: List[torch.Tensor], vocab_size: int) -> torch.Tensor:
    """``(N, vocab_size)``: log(1 + count) of each dictionary entry in each sequence, the lexical
    features a checkpoint's states should beat."""
    counts = torch.zeros(len(sequences), vocab_size)
    for row, ids in zip(counts, sequences):
        row.index_add_(0, ids, torch.ones(ids.numel()))
    return counts.log1p()
