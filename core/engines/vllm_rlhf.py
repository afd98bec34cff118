"""GPU weight updates for vLLM through its RLHF interfaces (`worker_extension_cls` +
`collective_rpc`): NCCL broadcast from the trainer, and sleep/wake for colocation.

This module is imported *inside vLLM's GPU workers* (pass
`worker_extension_cls="core.engines.vllm_rlhf.NcclWeightReceiver"`). The trainer side is
`rl.nccl_sync`. Not used on CPU, where prepacked weights need `reload_weights` and the
object store is fast enough (see README "Which paths ran where").
"""
from __future__ import annotations

import torch


def stateless_nccl_group(host: str, port: int, rank: int, world_size: int, device: torch.device):
    """A NCCL communicator between the trainer's rank 0 and every vLLM worker that does not
    touch torch.distributed's global group (vLLM and the trainer each already have one)."""
    from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
    from vllm.distributed.utils import StatelessProcessGroup

    group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
    return PyNcclCommunicator(group, device=device)


class NcclWeightReceiver:
    """Mixed into vLLM's worker class; methods run in every worker via `collective_rpc`."""

    def init_weight_update_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        from vllm.distributed.parallel_state import get_world_group

        rank = get_world_group().rank + rank_offset
        self._weight_comm = stateless_nccl_group(host, port, rank, world_size, self.device)

    def receive_weights(self, specs: list[tuple[str, str, list[int]]]) -> None:
        """Receive each (name, dtype, shape) broadcast by the trainer (rank 0) and load it."""
        for name, dtype, shape in specs:
            buf = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
            self._weight_comm.broadcast(buf, src=0, stream=torch.cuda.current_stream())
            self.model_runner.model.load_weights(weights=[(name, buf)])
            del buf
        torch.cuda.synchronize()
