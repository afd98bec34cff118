"""Replace-1-block scoring (METHODS §2.5): put one library block into the otherwise
unchanged parent and measure KL(parent || child) and LM loss on held-out data.

Only the swapped layer and the layers after it are recomputed, starting from the cached
parent activations entering the layer. An architecture's quality is then estimated as the
sum of its blocks' scores, so the search never evaluates a whole candidate.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.activations import LayerContext, layer_inputs
from nas.space import BlockVariant, SearchSpace


@dataclass
class ScoringReference:
    inputs: list[torch.Tensor]  # parent residual stream entering each layer
    ctx: LayerContext
    parent_logp: torch.Tensor  # (B, T, V)
    attention_mask: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def reference(parent, batch) -> ScoringReference:
    inputs = layer_inputs(parent, batch.input_ids, batch.attention_mask)
    logp = F.log_softmax(parent.lm_head(parent.model.norm(inputs[-1])).float(), -1)
    return ScoringReference(inputs, LayerContext.build(parent, batch.attention_mask), logp,
                            batch.attention_mask, batch.labels)


def kl_and_lm_loss(parent_logp: torch.Tensor, logits: torch.Tensor, attention_mask: torch.Tensor,
                   labels: torch.Tensor) -> dict[str, float]:
    logq = F.log_softmax(logits.float(), -1)
    keep = attention_mask.bool()
    kl = (parent_logp.exp() * (parent_logp - logq)).sum(-1)[keep].mean()
    lm = F.nll_loss(logq.flatten(0, 1), labels.flatten(), ignore_index=-100)
    return {"kl_div": float(kl), "lm_loss": float(lm)}


@torch.no_grad()
def score_block(parent, store, ref: ScoringReference, layer: int, variant: BlockVariant) -> dict[str, float]:
    c = ref.ctx
    x = store.build_layer(layer, variant)(ref.inputs[layer], c.cos, c.sin, c.mask)
    for blk in parent.model.layers[layer + 1:]:
        x = blk(x, c.cos, c.sin, c.mask)
    logits = parent.lm_head(parent.model.norm(x))
    return kl_and_lm_loss(ref.parent_logp, logits, ref.attention_mask, ref.labels)


def score_all(parent, store, ref: ScoringReference, space: SearchSpace, log=None
              ) -> list[dict[BlockVariant, dict[str, float]]]:
    out = []
    for i in range(parent.config.num_hidden_layers):
        out.append({v: score_block(parent, store, ref, i, v) for v in space.block_variants(i)})
        if log:
            log(f"[score] layer {i}: {len(out[-1])} blocks")
    return out
