"""Tied-LoRA (arXiv 2311.09578): one low-rank update shared by every layer's QKV projection,
modulated per layer by scaling vectors.

For layer l the update to the fused QKV output is  Δh_l = diag(v_l) · B · diag(u_l) · A · x
with A ∈ R^{r×d} (shared down-projection), B ∈ R^{(dq+dk+dv)×r} (up-projection to QKV),
u_l ∈ R^r, v_l ∈ R^{dq+dk+dv}. α = r, so there is no α/r factor. Llama keeps q/k/v as three
Linear modules, so each one adds its row slice of the fused update; with GQA the output
size is dq+dk+dv rather than the paper's 3d, and the counts below use that size.

Presets (which tensors are tied across layers / trainable):
  lora  A, B per layer, trainable; u = v = 1 frozen           L·r·(d + D)
  tl5   A, B tied, trainable; u = v = 1 frozen                r·(d + D)
  tl6   A, B tied, trainable; u_l, v_l trainable              r·(d + D) + L·(r + D)
  vera  A, B tied, frozen random; u_l, v_l trainable          L·(r + D)
(D = dq+dk+dv; the paper's formulas are these with D = 3d.) The update starts at zero:
B = 0 (or v = 0 for VeRA, whose B is random and frozen).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TiedPreset:
    tied: bool
    train_ab: bool
    train_uv: bool


PRESETS = {
    "lora": TiedPreset(tied=False, train_ab=True, train_uv=False),
    "tl5": TiedPreset(tied=True, train_ab=True, train_uv=False),
    "tl6": TiedPreset(tied=True, train_ab=True, train_uv=True),
    "vera": TiedPreset(tied=True, train_ab=False, train_uv=True),
}
QKV = ("q_proj", "k_proj", "v_proj")


def formula_params(preset: str, num_layers: int, d: int, d_out: int, rank: int) -> int:
    """Trainable parameters by the formulas above."""
    ab, uv = rank * (d + d_out), num_layers * (rank + d_out)
    return {"lora": num_layers * ab, "tl5": ab, "tl6": ab + uv, "vera": uv}[preset]


class TiedLoRA(nn.Module):
    def __init__(self, num_layers: int, d_in: int, d_out: int, rank: int, preset: str = "tl6"):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"tied-LoRA preset must be one of {sorted(PRESETS)}, got {preset!r}")
        p = PRESETS[preset]
        copies = 1 if p.tied else num_layers
        self.preset, self.tied = preset, p.tied
        self.A = nn.Parameter(torch.empty(copies, rank, d_in), requires_grad=p.train_ab)
        self.B = nn.Parameter(torch.zeros(copies, d_out, rank), requires_grad=p.train_ab)
        self.u = nn.Parameter(torch.ones(num_layers, rank), requires_grad=p.train_uv)
        self.v = nn.Parameter(torch.ones(num_layers, d_out), requires_grad=p.train_uv)
        for a in self.A:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        if preset == "vera":  # frozen random projections; the zero start comes from v
            for b in self.B:
                nn.init.kaiming_uniform_(b, a=math.sqrt(5))
            with torch.no_grad():
                self.u.fill_(0.1)
                self.v.zero_()

    def _ab(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = 0 if self.tied else layer
        return self.A[i], self.B[i]

    def delta(self, layer: int, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Rows [start, end) of Δh_l for input x."""
        a, b = self._ab(layer)
        z = F.linear(x, a) * self.u[layer]
        return F.linear(z, b[start:end]) * self.v[layer, start:end]

    def delta_weight(self, layer: int) -> torch.Tensor:
        """ΔW_l = diag(v_l) · B · diag(u_l) · A, shape [D, d]."""
        a, b = self._ab(layer)
        return (self.v[layer, :, None] * b) @ (self.u[layer, :, None] * a)

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class TiedLoRALinear(nn.Module):
    """base(x) + this projection's slice of the layer's shared update."""

    def __init__(self, base: nn.Linear, adapter: TiedLoRA, layer: int, start: int, end: int):
        super().__init__()
        self.base = base
        # a plain attribute, not a submodule: the adapter is registered once, on the model
        object.__setattr__(self, "adapter", adapter)
        self.layer, self.start, self.end = layer, start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.adapter.delta(self.layer, x, self.start, self.end)


def _attention_blocks(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if all(isinstance(getattr(m, n, None), (nn.Linear, TiedLoRALinear))
                                              for n in QKV)]


def apply_tied_lora(model: nn.Module, rank: int, preset: str = "tl6") -> TiedLoRA:
    """Freeze the base model and attach a Tied-LoRA adapter to every attention block."""
    blocks = _attention_blocks(model)
    if not blocks:
        raise ValueError("no attention block with q_proj/k_proj/v_proj found")
    outs = [getattr(blocks[0], n).out_features for n in QKV]
    d_in = blocks[0].q_proj.in_features
    ref = next(model.parameters())
    adapter = TiedLoRA(len(blocks), d_in, sum(outs), rank, preset).to(ref.device, ref.dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    for layer, block in enumerate(blocks):
        start = 0
        for name, n in zip(QKV, outs):
            setattr(block, name, TiedLoRALinear(getattr(block, name), adapter, layer, start, start + n))
            start += n
    model.add_module("tied_lora", adapter)
    return adapter


@torch.no_grad()
def merge_tied_lora(model: nn.Module) -> nn.Module:
    """Fold every layer's update into its q/k/v weights and remove the adapter (for export)."""
    adapter: TiedLoRA = model.tied_lora
    for layer, block in enumerate(_attention_blocks(model)):
        dw = adapter.delta_weight(layer)
        for name in QKV:
            wrapped: TiedLoRALinear = getattr(block, name)
            wrapped.base.weight += dw[wrapped.start:wrapped.end].to(wrapped.base.weight.dtype)
            setattr(block, name, wrapped.base)
    del model.tied_lora
    for p in model.parameters():
        p.requires_grad_(True)
    return model
