"""No host synchronisation in the training step: the pretraining forward, the criterion and backward
(every objective on) must not call an operator that makes the CPU wait for a GPU.

Without a GPU the operators themselves are recorded: torch dispatches the same ones on every device,
so a step that calls none of them here calls none on CUDA (scripts/gpu_check.sh checks the same step
there under ``torch.cuda.set_sync_debug_mode("error")``)."""
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from metro_fairseq.criterions.metro import MetroCriterion
from test_mixed_precision import sample_for
from test_model import build

# read a value back (.item(), bool(t), int(t)), or sized by data (nonzero, masked_select, unique)
SYNCING_OPS = {"aten._local_scalar_dense", "aten.nonzero", "aten.masked_select", "aten.unique_dim",
               "aten._unique", "aten._unique2", "aten.unique_consecutive"}
# Python-level reads of tensor data into host memory
HOST_READS = {"tolist", "numpy", "cpu", "item"}


class SyncRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        kwargs = kwargs or {}
        if name in SYNCING_OPS:
            self.found.append(name)
        elif name in ("aten.index", "aten.index_put", "aten.index_put_") and _has_bool_index(args):
            self.found.append(f"{name} with a boolean mask")  # nonzero inside, sized by data
        elif name == "aten.repeat_interleave" and kwargs.get("output_size") is None and len(args) == 1:
            self.found.append(name + " without output_size")
        return func(*args, **kwargs)


class HostReadRecorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_READS or (name == "to" and _to_host(args, kwargs)):
            self.found.append(f"Tensor.{name}")
        return func(*args, **kwargs)


def _has_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (indices or ()))


def _to_host(args, kwargs) -> bool:
    targets = list(args[1:]) + [kwargs.get("device")]
    return any(str(t) == "cpu" or (isinstance(t, torch.device) and t.type == "cpu") for t in targets)


def recorded_step(model, criterion, sample):
    model.train()
    functions, operators = HostReadRecorder(), SyncRecorder()
    with functions, operators:
        model.set_num_updates(3)
        loss, _, _ = criterion(model, sample)
        loss.backward()
    return functions.found + operators.found


OBJECTIVES = [
    dict(attention_type="standard", embedding_sharing="tied", scl_view="crop"),
    dict(attention_type="disentangled", embedding_sharing="gdes", scl_view="dropout"),
    dict(attention_type="standard", embedding_sharing="none", scl_view="dropout"),
]


@pytest.mark.parametrize("options", OBJECTIVES, ids=lambda o: "-".join(o.values()))
def test_training_step_reads_nothing_back(options):
    model = build(clm=True, sampling_temperature_start=3.0, sampling_temperature_release_bits=0.5,
                  sampling_temperature_anneal_updates=10, **options)
    criterion = MetroCriterion(task=None, rtd_weight=50.0, clm_weight=1.0, clm_form="mixture")
    assert recorded_step(model, criterion, sample_for()) == []


def test_the_recorders_see_each_kind_of_sync():
    """The check itself: each pattern it must catch, caught."""
    x = torch.randn(6, requires_grad=True)
    mask = x.detach() > 0
    cases = {
        "aten._local_scalar_dense": lambda: x.sum().item(),
        "aten.nonzero": lambda: torch.nonzero(mask),
        "aten.index with a boolean mask": lambda: x[mask],
        "aten.masked_select": lambda: torch.masked_select(x, mask),
        "Tensor.tolist": lambda: x.tolist(),
        "Tensor.cpu": lambda: x.cpu(),
        "Tensor.to": lambda: x.to("cpu"),
    }
    for expected, step in cases.items():
        functions, operators = HostReadRecorder(), SyncRecorder()
        with functions, operators:
            step()
        assert expected in functions.found + operators.found, expected


def test_token_classification_step_reads_nothing_back():
    """The token task's criterion: the labelled count comes with the batch, the loss and accuracy stay on the device."""
    from types import SimpleNamespace

    from fairseq.data import Dictionary
    from metro_fairseq.criterions.token_classification import TokenClassificationCriterion

    labels = Dictionary()
    for tag in ("NOUN", "VERB", "DET"):
        labels.add_symbol(tag)
    model = build(with_generator=False)
    model.register_token_head("token_head", len(labels) - labels.nspecial)
    task = SimpleNamespace(cfg=SimpleNamespace(token_head_name="token_head"), label_dictionary=labels)
    criterion = TokenClassificationCriterion(task)
    tokens = torch.tensor([[0, 7, 8, 9, 2], [0, 7, 2, 1, 1]])
    target = torch.tensor([[1, 4, 1, 5, 2], [1, 6, 2, 1, 1]])  # <pad> on the second piece of a word and on padding
    sample = {"net_input": {"src_tokens": tokens}, "target": target, "nlabels": 3, "ntokens": 8, "nsentences": 2}
    assert recorded_step(model, criterion, sample) == []
