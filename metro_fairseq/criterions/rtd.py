"""Replaced-token detection: binary cross-entropy over every non-pad token, label 1 = replaced."""
import torch
import torch.nn.functional as F


def rtd_loss_terms(rtd_logits: torch.Tensor, rtd_labels: torch.Tensor, padding_mask: torch.Tensor) -> dict:
    """Summed BCE (fp32) and the counts behind accuracy, precision and recall; all tensors."""
    real = ~padding_mask
    labels = rtd_labels & real
    bce = F.binary_cross_entropy_with_logits(rtd_logits.float(), labels.float(), reduction="none")
    predicted = (rtd_logits > 0) & real
    return {
        "rtd_loss": bce.masked_fill(padding_mask, 0.0).sum(),
        "rtd_correct": (predicted.eq(labels) & real).sum(),
        "rtd_replaced": labels.sum(),
        "rtd_predicted_replaced": predicted.sum(),
        "rtd_true_positive": (predicted & labels).sum(),
    }
