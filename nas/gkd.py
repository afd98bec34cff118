"""Global knowledge distillation ("uptraining", METHODS §2.7) of the assembled child.

L_GKD = sum_l (1 - cos(h_c^l, h_p^l)) + KL(p_parent || q_child), no LM loss by default
(adding it hurt in the paper). The child has one block per parent layer, so hidden states
align layer by layer. With `cosine_weight: 0` it is Minitron's logits-only KD (forward KL,
T = 1), for children whose depth or width differ from the parent's. The loss terms are
`sft.distill`'s, shared with SFT distillation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sft.distill import cosine_hidden, forward_kl


@dataclass(frozen=True)
class GKDConfig:
    steps: int = 120
    batch_size: int = 16
    lr: float = 3e-4
    cosine_weight: float = 1.0
    kl_weight: float = 1.0
    lm_weight: float = 0.0
    seed: int = 0


def gkd_loss(child_out, parent_out, mask: torch.Tensor, cfg: GKDConfig, labels: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    kl = forward_kl(child_out.logits, parent_out.logits, mask)
    if not cfg.cosine_weight:  # logits-only KD (Minitron): the child may differ in depth and width
        return cfg.kl_weight * kl, {"cosine": 0.0, "kl": kl.item()}
    cos = cosine_hidden(child_out.hidden_states[1:], parent_out.hidden_states[1:], mask)
    loss = cfg.cosine_weight * cos + cfg.kl_weight * kl
    if cfg.lm_weight and labels is not None:
        loss = loss + cfg.lm_weight * F.cross_entropy(child_out.logits.float().flatten(0, 1), labels.flatten(),
                                                      ignore_index=-100)
    return loss, {"cosine": cos.item(), "kl": kl.item()}


def distill(child, parent, batch, cfg: GKDConfig, log=print) -> list[dict[str, float]]:
    """Train the child in place on `batch` (a TokenBatch of distillation data)."""
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(child.parameters(), lr=cfg.lr, weight_decay=0.0)
    parent.eval()
    child.train()
    history = []
    n = batch.input_ids.shape[0]
    for step in range(cfg.steps):
        idx = torch.randint(0, n, (cfg.batch_size,), generator=g)
        ids, mask = batch.input_ids[idx], batch.attention_mask[idx]
        width = int(mask.sum(1).max())
        ids, mask, labels = ids[:, :width], mask[:, :width], batch.labels[idx][:, :width]
        hidden = bool(cfg.cosine_weight)
        with torch.no_grad():
            p_out = parent(input_ids=ids, attention_mask=mask, output_hidden_states=hidden, use_cache=False)
        c_out = child(input_ids=ids, attention_mask=mask, output_hidden_states=hidden, use_cache=False)
        loss, parts = gkd_loss(c_out, p_out, mask, cfg, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(child.parameters(), 1.0)
        opt.step()
        history.append({"loss": loss.item(), **parts})
        if step % 20 == 0 or step == cfg.steps - 1:
            log(f"[gkd] step {step}/{cfg.steps} loss={loss.item():.4f} cos={parts['cosine']:.4f} kl={parts['kl']:.4f}")
    child.eval()
    return history
