"""What the GPU check ran on: the device and software versions for the report's header, and the
card's dense bf16 peak that model FLOP utilisation (MFU) is measured against."""
import platform
import time
from typing import List, Tuple

import torch

import harness

# dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, matched on
# torch.cuda.get_device_name(): every word listed must occur in it ("NVIDIA H100 80GB HBM3" is the SXM card)
BF16_DENSE_PEAK_TFLOPS = [
    (("H100", "PCIe"), 756.0, "H100 PCIe"),
    (("H100", "HBM3"), 989.0, "H100 SXM"),
    (("H200",), 989.0, "H200"),
    (("A100",), 312.0, "A100"),
]


def bf16_peak_tflops() -> Tuple[float, str]:
    """(TFLOP/s, where the number comes from) for the current CUDA device."""
    name = torch.cuda.get_device_name()
    for words, tflops, card in BF16_DENSE_PEAK_TFLOPS:
        if all(word in name for word in words):
            return tflops, f"data-sheet dense bf16 peak of the {card}"
    return measured_matmul_tflops(), (f"{name} is not in accelerator.BF16_DENSE_PEAK_TFLOPS: measured rate of an "
                                      "8192^3 bf16 matmul, an achieved rate below the peak, so MFU reads high")


def measured_matmul_tflops(n: int = 8192, repeats: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


def header_rows() -> List[Tuple[str, str]]:
    import fairseq
    import numpy

    rows = [("machine", harness.machine())]
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        memory = props.total_memory / 2**30
        rows.append(("device", f"{props.name}, {memory:.0f} GiB, {props.multi_processor_count} SMs"))
    rows.append(("versions", f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                             f"cuDNN {torch.backends.cudnn.version()}, Python {platform.python_version()}, "
                             f"fairseq {fairseq.__version__}, numpy {numpy.__version__}"))
    return rows
