"""Trainer-side NCCL weight broadcast to vLLM GPU generators (pairs with
`core.engines.vllm_rlhf.NcclWeightReceiver`).

Rank 0 of the policy joins a stateless NCCL group with every vLLM worker (rank 0 =
trainer, ranks 1.. = engine workers); each sync announces (name, dtype, shape) to the
engines, which post receives, then rank 0 broadcasts tensor by tensor. Weights never
leave GPU memory. Written for real clusters; this CPU machine has no NCCL, and the lent
GPU machines have no vLLM, so it has not been run here (README "Which paths ran where").
"""
from __future__ import annotations

import torch


class NcclWeightSender:
    def __init__(self, host: str, port: int, world_size: int):
        from core.engines.vllm_rlhf import stateless_nccl_group

        self.comm = stateless_nccl_group(host, port, 0, world_size, torch.device("cuda", torch.cuda.current_device()))

    @staticmethod
    def specs(state: dict[str, torch.Tensor]) -> list[tuple[str, str, list[int]]]:
        return [(name, str(t.dtype).removeprefix("torch."), list(t.shape)) for name, t in state.items()]

    def send(self, state: dict[str, torch.Tensor]) -> None:
        for tensor in state.values():
            self.comm.broadcast(tensor.cuda().contiguous(), src=0, stream=torch.cuda.current_stream())
        torch.cuda.synchronize()
