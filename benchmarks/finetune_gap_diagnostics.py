"""finetune_gap.py's diagnostics: what the relative bias does to attention, how spread the ``<s>``
query's attention is per layer, and how far fine-tuning moves each group of tensors.

Works on both checkpoint kinds the probe loads (metro exports and fairseq RoBERTa); random init is the
metro architecture untrained (finetune_gap.py's ``random_init.pt``).
"""
import math
import os
import re
import statistics

import torch

import sample_efficiency as se

GROUPS = [  # (group, pattern on metro names, pattern on fairseq roberta names)
    ("token embeddings", r"^embeddings\.weight$", r"embed_tokens\.weight$"),
    ("positions", r"^encoder\.embed_positions\.", r"embed_positions\."),
    ("embedding LayerNorm", r"^encoder\.embed_layer_norm\.", r"layernorm_embedding\."),
    ("T5 relative bias", r"^encoder\.relative_bias\.", None),
]


def bias_mass_beyond(model, distance=8, seq_len=128):
    """Attention mass the relative bias alone puts on keys farther than ``distance`` from the query
    (softmax of the bias over keys, averaged over queries and heads); None without a bias."""
    bias_module = getattr(getattr(model, "encoder", None), "relative_bias", None)
    if bias_module is None:
        return None
    with torch.no_grad():
        probs = bias_module(seq_len)[0].float().softmax(-1)  # (H, T, T)
    pos = torch.arange(seq_len)
    far = ((pos[None, :] - pos[:, None]).abs() > distance).float()
    return (probs * far).sum(-1).mean().item()


def _entropy_bits(probs):
    return -(torch.xlogy(probs, probs).sum(-1)) / math.log(2)


def cls_attention_entropy(model, kind, tokens):
    """Per layer, the mean entropy (bits) of the ``<s>`` query's attention over the non-padding keys,
    averaged over heads and sequences."""
    caught = []
    handles = []
    if kind == "metro":
        def hook(module, inputs):
            x, attn_bias = inputs[0], inputs[1]
            b, t, c = x.shape
            q, k, _ = module.in_proj(x).view(b, t, 3, module.num_heads, module.head_dim).unbind(2)
            scores = torch.einsum("bhd,bthd->bht", q[:, 0], k) / math.sqrt(module.head_dim)
            caught.append((scores + attn_bias[:, :, 0, :]).float().softmax(-1))
        for layer in model.encoder.layers:
            handles.append(layer.self_attn.register_forward_pre_hook(hook))
    else:  # fairseq's MultiheadAttention, time-major; its fast path returns head-averaged weights only
        def hook(module, args, kwargs):
            x, padding = kwargs["query"], kwargs["key_padding_mask"]
            t, b, c = x.shape
            heads, head_dim = module.num_heads, module.head_dim
            q = module.q_proj(x[0]).view(b, heads, head_dim)
            k = module.k_proj(x).view(t, b, heads, head_dim)
            scores = torch.einsum("bhd,tbhd->bht", q, k) / math.sqrt(head_dim)
            if padding is not None:
                scores = scores.masked_fill(padding[:, None, :].bool(), float("-inf"))
            caught.append(scores.float().softmax(-1))
        for layer in model.encoder.sentence_encoder.layers:
            handles.append(layer.self_attn.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        with torch.no_grad():
            from metro_fairseq.evaluation.checkpoint_features import main_states

            main_states(model, kind, tokens)
    finally:
        for h in handles:
            h.remove()
    return [_entropy_bits(probs).mean().item() for probs in caught]


def group_of(name, kind):
    for group, metro_pattern, roberta_pattern in GROUPS:
        pattern = metro_pattern if kind == "metro" else roberta_pattern
        if pattern and re.search(pattern, name):
            return group
    layer = re.search(r"layers\.(\d+)\.", name)
    return f"layer {int(layer.group(1)) + 1}" if layer else None


def relative_change(before, after, kind):
    """||after - before|| / ||before|| per tensor group (heads and the fine-tuning-only tensors left out)."""
    sums = {}
    for name, start in before.items():
        group = group_of(name, kind)
        if group is None or name not in after or not start.is_floating_point() or "lm_head" in name:
            continue
        delta, norm = sums.get(group, (0.0, 0.0))
        sums[group] = (delta + (after[name].float() - start.float()).pow(2).sum().item(),
                       norm + start.float().pow(2).sum().item())
    return {group: math.sqrt(d / n) for group, (d, n) in sums.items() if n > 0}


def dev_tokens(raw, dictionary, spm_path, count=200):
    from fairseq.data import data_utils
    from metro_fairseq.evaluation.checkpoint_features import encode_texts
    from metro_fairseq.evaluation.label_subsets import read_labelled_tsv

    texts = read_labelled_tsv(os.path.join(raw, se.TASKS["bbc"], "dev.tsv"))[0][:count]
    return data_utils.collate_tokens(encode_texts(texts, dictionary, spm_path, 512), dictionary.pad())


def run_all(args, data, raw, binarized, ckpt, roberta, fresh_ckpt, preset):
    """Bias mass, <s> entropy and seed-1 fine-tuning's relative change for the arm, RoBERTa and random init."""
    from metro_fairseq.evaluation.checkpoint_features import load_main_model

    arms = {args.arm: ckpt, "roberta": roberta, "random_init": fresh_ckpt}
    out = {}
    for arm, path in arms.items():
        model, dictionary, spm_path, kind = load_main_model(path, data)
        tokens = dev_tokens(raw, dictionary, spm_path)
        model_args = se.model_args_of(arm, path, preset)
        accuracy = se.finetune(arm, path, model_args, "bbc", 300, 1, "1e-3", args, binarized,
                               folder="finetune_gap/saved", save=True)
        saved = os.path.join(se.finetune_dir(args, "finetune_gap/saved", arm, "bbc", 300, 1, "1e-3"),
                             "checkpoint_last.pt")
        before = torch.load(path, map_location="cpu", weights_only=False)["model"]
        after = torch.load(saved, map_location="cpu", weights_only=False)["model"]
        out[arm] = {"bias_mass_beyond_8": bias_mass_beyond(model),
                    "cls_entropy_bits": cls_attention_entropy(model, kind, tokens),
                    "uniform_entropy_bits": statistics.mean(
                        math.log2(n) for n in tokens.ne(dictionary.pad()).sum(1).tolist()),
                    "relative_change": relative_change(before, after, kind),
                    "finetuned_accuracy_seed1": accuracy}
    return out


def report(diag):
    arms = list(diag)
    print("\n## Diagnostics (seed 1, lr 1e-3, 300 updates)\n")
    print(f"| | {' | '.join(arms)} |")
    print("|---|" + "---|" * len(arms))
    mass = [diag[a]["bias_mass_beyond_8"] for a in arms]
    print("| attention mass of the bias alone beyond distance 8 | "
          + " | ".join("-" if m is None else f"{m:.3f}" for m in mass) + " |")
    print("| uniform entropy over a dev text (bits) | "
          + " | ".join(f"{diag[a]['uniform_entropy_bits']:.2f}" for a in arms) + " |")
    for i in range(max(len(diag[a]["cls_entropy_bits"]) for a in arms)):
        print(f"| `<s>` attention entropy, layer {i + 1} (bits) | " + " | ".join(
            f"{diag[a]['cls_entropy_bits'][i]:.2f}" if i < len(diag[a]["cls_entropy_bits"]) else "-"
            for a in arms) + " |")
    groups = [g for g in dict.fromkeys(g for a in arms for g in diag[a]["relative_change"])]
    for g in groups:
        print(f"| relative change in fine-tuning: {g} | " + " | ".join(
            f"{diag[a]['relative_change'][g]:.3f}" if g in diag[a]["relative_change"] else "-" for a in arms) + " |")
    print("| fine-tuned dev accuracy, seed 1 | "
          + " | ".join(f"{diag[a]['finetuned_accuracy_seed1']:.1f}" for a in arms) + " |")
