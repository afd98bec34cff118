"""Knowledge-distillation losses, shared with nas/ (Puzzle's BLD and global KD).

Puzzle's global KD (§4.3): L = Σ_l (1 − cos(h_student^l, h_teacher^l)) + KL(p_teacher ‖ q_student),
with no LM loss. Both terms average over the positions selected by `mask`.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1)


def forward_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor | None = None,
               temperature: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """KL(teacher ‖ student) per position, averaged over `mask`, times T² (so the gradient
    scale does not shrink with the temperature).

    top_k > 0 keeps the teacher's k most likely tokens, renormalised, and compares them with
    the student's full-vocabulary log-probabilities of those tokens (the usual way to
    distil from stored sparse teacher logits).
    """
    t = teacher_logits.detach().float() / temperature
    log_q = F.log_softmax(student_logits.float() / temperature, dim=-1)
    if top_k > 0:
        t, idx = t.topk(top_k, dim=-1)
        log_q = log_q.gather(-1, idx)
    log_p = F.log_softmax(t, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    return _masked_mean(kl, mask) * temperature ** 2


def cosine_hidden(student_hidden: Sequence[torch.Tensor], teacher_hidden: Sequence[torch.Tensor],
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over layers of the mean (over `mask`) of 1 − cos(h_s, h_t)."""
    if len(student_hidden) != len(teacher_hidden):
        raise ValueError(f"{len(student_hidden)} student vs {len(teacher_hidden)} teacher hidden states")
    return sum(_masked_mean(1 - F.cosine_similarity(s.float(), t.detach().float(), dim=-1), mask)
               for s, t in zip(student_hidden, teacher_hidden))


def global_kd_loss(student_out, teacher_out, mask: torch.Tensor | None = None, temperature: float = 1.0,
                   top_k: int = 0, use_cosine: bool = True) -> torch.Tensor:
    """Puzzle's uptraining loss from two HF outputs (run with output_hidden_states=True when
    use_cosine). Hidden states exclude the embedding output: layer l's output vs layer l's."""
    loss = forward_kl(student_out.logits, teacher_out.logits, mask, temperature, top_k)
    if use_cosine:
        loss = loss + cosine_hidden(student_out.hidden_states[1:], teacher_out.hidden_states[1:], mask)
    return loss
