"""The released masked-LM head, when the folder has one, as the generator head of ``--generator-from lower-layers``.

BERT / DeBERTa-v2 (``cls.predictions``) and RoBERTa / XLM-R / MPNet (``lm_head``) heads compute what
``GeneratorHead`` computes: dense, gelu, LayerNorm, the token table (tied) plus a bias. A generator of the
lower layers then starts with a head trained to read the encoder's states instead of a random one. The
tensors are read from the weight files by name; a folder saved from the base model has none, and an
untied output layer is not the generator's, so the head then starts fresh.
"""
import json
import os
from typing import Optional

# (dense, LayerNorm, output bias) under each family's names
LAYOUTS = (("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias"),
           ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias"))
DECODERS = ("cls.predictions.decoder.weight", "lm_head.decoder.weight")


def _weight_files(hf_dir: str) -> list:
    for index, single in (("model.safetensors.index.json", "model.safetensors"),
                          ("pytorch_model.bin.index.json", "pytorch_model.bin")):
        if os.path.isfile(os.path.join(hf_dir, index)):
            with open(os.path.join(hf_dir, index)) as f:
                return sorted({os.path.join(hf_dir, name) for name in json.load(f)["weight_map"].values()})
        if os.path.isfile(os.path.join(hf_dir, single)):
            return [os.path.join(hf_dir, single)]
    return []


def _read(hf_dir: str, names: set) -> dict:
    """The tensors of ``names`` found in the folder's weight files."""
    import torch

    found = {}
    for path in _weight_files(hf_dir):
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                found.update({k: f.get_tensor(k) for k in f.keys() if k in names})
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            found.update({n: sd[n] for n in names if n in sd})
    return found


def released_mlm_head(hf_dir: str, vocab, table) -> Optional[dict]:
    """The ``generator_head.*`` tensors (fairseq order) from the folder's MLM head, or None without one.
    ``table``: the imported token table (fairseq order), which a tied output layer must equal."""
    wanted = {f"{m}.{t}" for dense, norm, _ in LAYOUTS for m in (dense, norm) for t in ("weight", "bias")}
    tensors = _read(hf_dir, wanted | {bias for *_, bias in LAYOUTS} | set(DECODERS))
    for (dense, norm, bias), decoder in zip(LAYOUTS, DECODERS):
        names = [f"{m}.{t}" for m in (dense, norm) for t in ("weight", "bias")] + [bias]
        if not all(n in tensors for n in names):
            continue
        if decoder in tensors and not tensors[decoder][vocab.hf_ids].equal(table):
            return None  # an untied output layer: not what the generator computes
        head = {"generator_head.bias": tensors[bias][vocab.hf_ids]}
        for ours, theirs in (("dense", dense), ("layer_norm", norm)):
            for t in ("weight", "bias"):
                head[f"generator_head.{ours}.{t}"] = tensors[f"{theirs}.{t}"]
        return {k: v.detach().float().clone() for k, v in head.items()}
    return None
