"""Forward and backward in bf16 / fp16 on CPU stay finite and close to fp32; losses stay fp32."""
import re

import pytest
import torch

from metro_fairseq.criterions.metro import MetroCriterion
from test_model import batch, build


def criterion_loss(model, sample):
    loss, sample_size, _ = MetroCriterion(task=None, rtd_weight=50.0, clm_weight=1.0)(model, sample)
    return loss / sample_size


def sample_for():
    gen_input, original, masked_index = batch()
    return {
        "net_input": {"src_tokens": gen_input, "original_tokens": original, "masked_index": masked_index,
                      "crop_tokens": original[:, :6]},
        "ntokens": int(original.ne(1).sum()),
        "nsentences": 2,
    }


def run_step(model, sample, seed=0):
    torch.manual_seed(seed)  # same replacement samples in every precision
    model.zero_grad()
    loss = criterion_loss(model, sample)
    loss.backward()
    grads = {n: p.grad.float().clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss, grads


ATTENTION = pytest.mark.parametrize("attention", ["standard", "disentangled"])


@ATTENTION
def test_bf16_autocast_close_to_fp32(attention):
    model = build(clm=True, scl_view="crop", attention_type=attention)
    sample = sample_for()
    ref_loss, ref_grads = run_step(model, sample)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, grads = run_step(model, sample)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() < 0.02
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name
    cos = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g in grads.values()]), torch.cat([ref_grads[n].flatten() for n in grads]), dim=0
    )
    assert cos > 0.98


@ATTENTION
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_train_step(dtype, attention):
    """As fairseq's --bf16 / --fp16 cast the model: every activation in half, losses in fp32."""
    model = build(clm=True, scl_view="crop", attention_type=attention)
    sample = sample_for()
    ref_loss, _ = run_step(model, sample)
    model = model.to(dtype)
    try:
        loss, grads = run_step(model, sample)
    except RuntimeError as e:  # a CPU build without this dtype's kernel for an op; anything else fails
        missing = re.search(r"\"?(\w+)\"? not implemented for '(Half|BFloat16)'", str(e))
        if missing is None:
            raise
        pytest.skip(f"this torch build has no {missing.group(2)} kernel for {missing.group(1)}")
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert abs(loss.item() - ref_loss.item()) / ref_loss.item() < 0.05
    assert all(torch.isfinite(g).all() for g in grads.values())


def every_option_model(attention, sharing, scl_view, temperature):
    schedules = {"constant": {}, "anneal": dict(sampling_temperature_start=3.0, sampling_temperature_anneal_updates=9),
                 "release": dict(sampling_temperature_start=3.0, sampling_temperature_release_bits=0.5)}
    model = build(clm=True, scl_view=scl_view, attention_type=attention, embedding_sharing=sharing,
                  **schedules[temperature])
    model.register_classification_head("cls", num_classes=3)
    model.register_span_head("span")
    return model


@pytest.mark.parametrize("attention", ["standard", "disentangled"])
@pytest.mark.parametrize("cast", ["bfloat16", "half"])
def test_no_buffer_changes_dtype_when_fairseq_casts_the_model(attention, cast):
    """fairseq's --bf16 runs model.to(torch.bfloat16), --fp16 model.half(); FSDP casts floating
    buffers alike. Statistics and counts must keep their dtype: no buffer may be floating point."""
    seen = set()
    for sharing in ("tied", "gdes", "none"):
        for scl_view in ("none", "crop", "dropout"):
            for temperature in ("constant", "anneal", "release"):
                model = every_option_model(attention, sharing, scl_view, temperature)
                before = {name: buf.dtype for name, buf in model.named_buffers()}
                model = model.to(torch.bfloat16) if cast == "bfloat16" else model.half()
                after = {name: buf.dtype for name, buf in model.named_buffers()}
                assert after == before
                assert not [name for name, dtype in before.items() if dtype.is_floating_point]
                seen.update(before)
    assert seen == {"dictionary_fingerprint", "sampling_temperature.released", "sampling_temperature.release_update",
                    "sampling_temperature.target_counts", "sampling_temperature.loss_ema_bits"}
