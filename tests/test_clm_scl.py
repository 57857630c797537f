"""Corrective LM and sequence contrastive losses against naive references."""
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from metro_fairseq.criterions.clm import clm_loss_terms
from metro_fairseq.criterions.contrastive import info_nce_terms


def clm_case():
    torch.manual_seed(1)
    N, V = 6, 9
    logits = torch.randn(N, V)
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    inputs = torch.tensor([1, 7, 3, 8, 5, 0])  # positions 0, 2, 4 were sampled correctly
    rtd = torch.randn(N) * 2
    return logits, targets, rtd, inputs


def test_clm_weighted_matches_naive():
    logits, targets, rtd, inputs = clm_case()
    got = clm_loss_terms(logits, targets, rtd, inputs, "weighted")
    want = 0.0
    for i in range(len(targets)):
        p_replaced = 1 / (1 + math.exp(-rtd[i].item()))
        p_lm = math.exp(logits[i, targets[i]].item()) / sum(math.exp(v) for v in logits[i].tolist())
        want += -p_replaced * math.log(p_lm)
    assert math.isclose(got["clm_loss"].item(), want, rel_tol=1e-5)


def test_clm_mixture_matches_naive():
    logits, targets, rtd, inputs = clm_case()
    got = clm_loss_terms(logits, targets, rtd, inputs, "mixture")
    want = 0.0
    for i in range(len(targets)):
        p_copy = 1 - 1 / (1 + math.exp(-rtd[i].item()))
        p_lm = math.exp(logits[i, targets[i]].item()) / sum(math.exp(v) for v in logits[i].tolist())
        p = p_copy * float(inputs[i] == targets[i]) + (1 - p_copy) * p_lm
        want += -math.log(p)
    assert math.isclose(got["clm_loss"].item(), want, rel_tol=1e-5)


def test_clm_gradients_by_form():
    logits, targets, rtd, inputs = clm_case()
    for form, rtd_gets_grad in (("weighted", False), ("mixture", True)):
        lg, r = logits.clone().requires_grad_(), rtd.clone().requires_grad_()
        clm_loss_terms(lg, targets, r, inputs, form)["clm_loss"].backward()
        assert lg.grad.abs().sum() > 0
        assert (r.grad is not None and r.grad.abs().sum() > 0) == rtd_gets_grad


def test_clm_corrected_accuracy():
    logits, targets, rtd, inputs = clm_case()
    logits = torch.full_like(logits, -5.0)
    logits[torch.arange(6), targets] = 5.0  # the LM head is always right
    rtd = torch.tensor([-3.0, 3.0, 3.0, -3.0, -3.0, 3.0])
    # copy at 0 (right), LM at 1 (right), LM at 2 (right), copy at 3 (wrong), copy at 4 (right), LM at 5 (right)
    assert clm_loss_terms(logits, targets, rtd, inputs)["clm_correct"].item() == 5


def naive_info_nce(z, tau):
    """Per-row InfoNCE losses and the number of rows whose nearest other view is their partner."""
    n = z.size(0)
    rows, correct = [], 0
    for i in range(n):
        partner = (i + n // 2) % n
        sims = {j: (z[i] @ z[j]).item() / tau for j in range(n) if j != i}
        log_den = math.log(sum(math.exp(s) for s in sims.values()))
        rows.append(-(sims[partner] - log_den))
        correct += int(max(sims, key=sims.get) == partner)
    return rows, correct


def test_info_nce_with_known_similarities():
    # four unit vectors: views (0, 2) and (1, 3) are pairs; 0 and 2 identical, 1 and 3 at 60 degrees
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [math.sin(math.pi / 6), math.cos(math.pi / 6)]])
    got = info_nce_terms(z, temperature=0.5)
    # row 0 sees cosines {1: 0, 2: 1, 3: 0.5}: loss = -(2 - log(e^0 + e^2 + e^1))
    row0 = -(2.0 - math.log(1 + math.exp(2) + math.exp(1)))
    rows, correct = naive_info_nce(z, 0.5)
    assert math.isclose(rows[0], row0, rel_tol=1e-6)
    assert math.isclose(got["scl_loss"].item(), sum(rows), rel_tol=1e-6)
    assert got["scl_correct"].item() == correct == 4
    assert got["scl_views"] == 4
    z_rand = F.normalize(torch.randn(10, 8), dim=-1)
    rows, correct = naive_info_nce(z_rand, 0.2)
    got = info_nce_terms(z_rand, 0.2)
    assert math.isclose(got["scl_loss"].item(), sum(rows), rel_tol=1e-5) and got["scl_correct"].item() == correct


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gather_worker(rank, world, port, chunks, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    z = chunks[rank].clone().requires_grad_()
    terms = info_nce_terms(F.normalize(z, dim=-1), 0.3, gather=True)
    terms["scl_loss"].backward()
    out[rank] = (terms["scl_loss"].item(), terms["scl_correct"].item(), z.grad.clone())
    dist.barrier()
    dist.destroy_process_group()


def test_gathered_negatives_match_single_process_reference():
    """Two gloo workers with different batch sizes: each worker's loss equals the naive loss of its
    rows against every view of both workers, and the summed gradient is that of the summed loss."""
    torch.manual_seed(0)
    chunks = [torch.randn(6, 5), torch.randn(4, 5)]  # 3 and 2 sequences, two views each
    port = _free_port()
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_gather_worker, args=(2, port, chunks, out), nprocs=2, join=True)

    # reference: all 10 views in one matrix, each worker's rows scored against all columns
    zs = [c.clone().requires_grad_() for c in chunks]
    normed = [F.normalize(z, dim=-1) for z in zs]
    columns = torch.cat(normed)
    offsets = [0, 6]
    total = 0.0
    for rank, zn in enumerate(normed):
        n = zn.size(0)
        scores = zn @ columns.t() / 0.3
        rows = torch.arange(n)
        scores[rows, rows + offsets[rank]] = float("-inf")
        partner = torch.where(rows < n // 2, rows + n // 2, rows - n // 2) + offsets[rank]
        loss = F.cross_entropy(scores, partner, reduction="sum")
        assert math.isclose(out[rank][0], loss.item(), rel_tol=1e-5)
        total = total + loss
    total.backward()
    for rank in range(2):
        assert torch.allclose(out[rank][2], zs[rank].grad, atol=1e-5)
