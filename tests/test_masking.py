import numpy as np
import pytest
import torch
from fairseq.data import Dictionary

from metro_fairseq.data.token_masking_dataset import TokenMaskingDataset


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items
        self.sizes = np.array([len(x) for x in items])

    def __getitem__(self, i):
        return self.items[i]

    def __len__(self):
        return len(self.items)


def make(mask_prob=0.15, leave=0.0, rand=0.0, n=50, length=200, seed=3):
    d = Dictionary()
    for i in range(100):
        d.add_symbol(f"w{i}")
    mask_idx = d.add_symbol("<mask>")
    rng = np.random.default_rng(0)
    items = []
    for _ in range(n):
        body = rng.integers(d.nspecial, mask_idx, size=length)
        body[rng.random(length) < 0.05] = d.unk()
        items.append(torch.tensor([d.bos(), *body, d.eos()]))
    return d, mask_idx, TokenMaskingDataset(ListDataset(items), d, mask_idx, seed, mask_prob, leave, rand)


def test_deterministic_per_seed_epoch_index():
    _, _, ds = make()
    _, _, again = make()
    ds.set_epoch(2)
    again.set_epoch(2)
    assert torch.equal(ds[7]["masked"], again[7]["masked"])
    assert torch.equal(ds[7]["corrupted"], again[7]["corrupted"])
    first = ds[7]["masked"].clone()
    ds.set_epoch(3)
    assert not torch.equal(ds[7]["masked"], first)
    assert not torch.equal(ds[8]["masked"], ds[7]["masked"])
    _, _, other_seed = make(seed=4)
    other_seed.set_epoch(2)
    assert not torch.equal(other_seed[7]["masked"], first)


def test_specials_never_masked_and_rate():
    d, mask_idx, ds = make(mask_prob=0.3)
    total = chosen = 0
    for i in range(len(ds)):
        item = ds[i]
        tokens, masked = item["original"], item["masked"]
        special = (tokens == d.bos()) | (tokens == d.eos()) | (tokens == d.pad()) | (tokens == d.unk())
        assert not masked[special].any()
        assert torch.equal(item["corrupted"][masked], torch.full((int(masked.sum()),), mask_idx))
        assert torch.equal(item["corrupted"][~masked], tokens[~masked])
        total += int((~special).sum())
        chosen += int(masked.sum())
    assert abs(chosen / total - 0.3) < 0.01


def test_replacement_policy():
    d, mask_idx, ds = make(leave=0.2, rand=0.3)
    kept = rand = masks = 0
    for i in range(len(ds)):
        item = ds[i]
        sel = item["masked"]
        c, o = item["corrupted"][sel], item["original"][sel]
        masks += int((c == mask_idx).sum())
        kept += int((c == o).sum())
        rand += int(((c != o) & (c != mask_idx)).sum())
        assert (c[c != mask_idx] >= d.nspecial).all()
    n = kept + rand + masks
    # random tokens can coincide with the original (1 in 100 here)
    assert abs(masks / n - 0.5) < 0.04 and abs(kept / n - 0.2) < 0.04 and abs(rand / n - 0.3) < 0.04


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_mask_prob_out_of_range(bad):
    with pytest.raises(ValueError, match="mask-prob"):
        make(mask_prob=bad)


def test_collater_flat_indices():
    d, mask_idx, ds = make(n=3)
    samples = [ds[0], {**ds[1], "original": ds[1]["original"][:50], "corrupted": ds[1]["corrupted"][:50],
                       "masked": ds[1]["masked"][:50]}]
    batch = ds.collater(samples)
    net = batch["net_input"]
    B, T = net["original_tokens"].shape
    assert (B, T) == (2, 202)
    flat = torch.zeros(B * T, dtype=torch.bool)
    flat[net["masked_index"]] = True
    expected = torch.zeros(B, T, dtype=torch.bool)
    expected[0] = samples[0]["masked"]
    expected[1, :50] = samples[1]["masked"]
    assert torch.equal(flat.view(B, T), expected)
    assert batch["ntokens"] == 202 + 50
    assert (net["src_tokens"].view(-1)[net["masked_index"]] == mask_idx).all()


def test_crop_view_is_contiguous_and_sized():
    d, mask_idx, ds = make(n=5, length=100)
    ds.crop_ratio = 0.9
    for i in range(len(ds)):
        item = ds[i]
        crop, original = item["crop"], item["original"]
        assert crop[0] == d.bos() and len(crop) == 1 + round(0.9 * (len(original) - 1))
        body = original[1:].tolist()
        span = crop[1:].tolist()
        assert any(body[s : s + len(span)] == span for s in range(len(body) - len(span) + 1))
    batch = ds.collater([ds[0], ds[1]])
    assert batch["net_input"]["crop_tokens"].shape == (2, 1 + round(0.9 * 101))


def test_masks_change_per_epoch_with_dataloader_workers(wiki_bin):
    """With --num-workers > 0 the trainer's iterator must not be reused across epochs: its persistent
    workers would keep epoch 1's copy of the dataset and repeat its masks forever."""
    from metro_fairseq.tasks.metro_pretraining import MetroPretrainingConfig, MetroPretrainingTask

    task = MetroPretrainingTask.setup_task(MetroPretrainingConfig(data=str(wiki_bin), tokens_per_sample=64, seed=1))
    task.load_dataset("train")
    first = {}
    for epoch in (1, 2):
        # what fairseq's trainer does at the start of every epoch
        itr = task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=4, seed=1, num_workers=1,
                                      epoch=epoch).next_epoch_itr(shuffle=False)
        batches = [next(itr) for _ in range(50)]
        first[epoch] = ([b["id"].tolist() for b in batches], [b["net_input"]["masked_index"].tolist() for b in batches])
    assert any(first[1][1])
    assert first[1][0] == first[2][0]  # same sequences ...
    assert first[1][1] != first[2][1]  # ... other positions selected
