"""Does the transformers model compute what fairseq computes? fp32, eval, on a right-padded batch
of mixed lengths with one sequence of ``max_positions`` tokens; only non-pad positions count."""
import torch

TOLERANCE = 1e-4


def sample_batch(dictionary, max_positions: int, seed: int = 0):
    """(input_ids, attention_mask): ``<s>`` random tokens ``</s>``, lengths max_positions, 17, 5, padded right."""
    g = torch.Generator().manual_seed(seed)
    lengths = [max_positions, min(17, max_positions), min(5, max_positions)]
    ids = torch.full((len(lengths), max_positions), dictionary.pad(), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=g)
        ids[row, 0], ids[row, n - 1] = dictionary.bos(), dictionary.eos()
    return ids, ids.ne(dictionary.pad()).long()


@torch.no_grad()
def fairseq_outputs(source, ids):
    """{"hidden": (B, T, C), and "logits" (B, classes) or "start"/"end" (B, T) for a head}."""
    model = source.model
    hidden = model.encode(ids)
    out = {"hidden": hidden}
    if source.head_kind == "classification":
        out["logits"] = model.classification_heads[source.head_name](hidden)
    elif source.head_kind == "qa":
        out["start"], out["end"] = model.span_heads[source.head_name](hidden).unbind(-1)
    return out


@torch.no_grad()
def hf_outputs(model, ids, mask, head_kind: str):
    model.float().eval()
    if head_kind == "base":
        return {"hidden": model(input_ids=ids, attention_mask=mask).last_hidden_state}
    out = model(input_ids=ids, attention_mask=mask)
    if head_kind == "classification":
        return {"logits": out.logits}
    return {"start": out.start_logits, "end": out.end_logits}


def max_difference(ours: dict, theirs: dict, mask) -> dict:
    """Max abs difference per output both have; per-token outputs on non-pad positions only."""
    diffs = {}
    keep = mask.bool()
    for key in ours.keys() & theirs.keys():
        a, b = ours[key].float(), theirs[key].float()
        if key != "logits":
            a, b = a[keep], b[keep]
        diffs[key] = (a - b).abs().max().item()
    return diffs
