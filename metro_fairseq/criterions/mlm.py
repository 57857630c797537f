"""The generator's masked-language-modelling loss on the selected positions."""
import torch
import torch.nn.functional as F


def mlm_loss_terms(logits: torch.Tensor, targets: torch.Tensor) -> dict:
    """Summed cross-entropy (fp32) and the number of correct argmax predictions; all tensors."""
    return {
        "mlm_loss": F.cross_entropy(logits.float(), targets, reduction="sum"),
        "mlm_correct": logits.argmax(-1).eq(targets).sum(),
    }
