"""Predicted vLLM serving time of a NemotronH child: the latency term of the Minitron-SSM
candidate ranking (nas.minitron_ssm), from measured times, not counted FLOPs.

Per-block prefill and decode times come from nas.minipuzzle.measure_block_runtimes at two
anchor shapes, both at full depth: the parent and the smallest widths on the candidate
grid. Between them one block's time is affine in its parameter count, per block type (a
fixed part -- norms, kernel launches, per-step bookkeeping -- plus a part that grows with
the weights); the rest of the model (embedding, LM head, the engine's per-step work) is
affine in the hidden size. Block times that add up to more than their whole model (each is
a difference of two noisy measurements) are scaled down to fit it, so the model reproduces
both anchors' measured totals. A child's time is that rest plus its kept blocks; its speedup
is the parent's time over it. Neither line may fall with size (a noisy measurement must
not make a bigger block look cheaper) or go below 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from nas.minipuzzle import BlockRuntimes
from nas.nemotron_h import block_parameter_count

PHASES = ("decode", "prefill")


@dataclass
class Anchor:
    """One measured shape: its NemotronH config and its measured block runtimes."""

    cfg: object  # NemotronHConfig
    runtimes: BlockRuntimes

    def _scale(self, phase: str) -> float:
        """Per-block times are differences of whole-model times, each with its own noise; when
        they add up to more than the whole model they are scaled down to fit it."""
        total = getattr(self.runtimes, f"model_{phase}_ms")
        blocks = sum(getattr(self.runtimes, f"{phase}_ms")[kind] for kind in self.cfg.layers_block_type)
        return min(1.0, total / blocks) if blocks > 0 else 1.0

    def block_ms(self, kind: str, phase: str) -> float:
        return getattr(self.runtimes, f"{phase}_ms")[kind] * self._scale(phase)

    def rest_ms(self, phase: str) -> float:
        """The whole model's time minus its blocks' (at least 0)."""
        total = getattr(self.runtimes, f"model_{phase}_ms")
        return max(total - sum(self.block_ms(kind, phase) for kind in self.cfg.layers_block_type), 0.0)


def _affine(x: float, x0: float, y0: float, x1: float, y1: float) -> float:
    """y at x on the line through (x0, y0) and (x1, y1); its slope at least 0, y at least 0."""
    slope = max((y1 - y0) / (x1 - x0), 0.0) if x1 != x0 else 0.0
    return max(y0 + slope * (x - x0), 0.0)


@dataclass
class ServingCostModel:
    parent: Anchor
    small: Anchor

    def block_ms(self, cfg, kind: str, phase: str) -> float:
        p, s = self.parent, self.small
        return _affine(block_parameter_count(cfg, kind), block_parameter_count(p.cfg, kind), p.block_ms(kind, phase),
                       block_parameter_count(s.cfg, kind), s.block_ms(kind, phase))

    def predict_ms(self, cfg) -> dict[str, float]:
        """Predicted prefill and decode-step time (ms) of a model of shape `cfg`."""
        p, s = self.parent, self.small
        return {phase: _affine(cfg.hidden_size, p.cfg.hidden_size, p.rest_ms(phase), s.cfg.hidden_size,
                               s.rest_ms(phase))
                + sum(self.block_ms(cfg, kind, phase) for kind in cfg.layers_block_type) for phase in PHASES}

    def speedup(self, cfg) -> dict[str, float]:
        """Predicted parent time / child time, per phase."""
        parent, child = self.predict_ms(self.parent.cfg), self.predict_ms(cfg)
        return {phase: parent[phase] / child[phase] if child[phase] > 0 else float("inf") for phase in PHASES}

    def to_dict(self) -> dict:
        """What the prediction rests on, for the run directory."""
        return {name: {"hidden_size": a.cfg.hidden_size, "mamba_num_heads": a.cfg.mamba_num_heads,
                       "mamba_head_dim": a.cfg.mamba_head_dim, "intermediate_size": a.cfg.intermediate_size,
                       **vars(a.runtimes)} for name, a in (("parent", self.parent), ("small", self.small))}
