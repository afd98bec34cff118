"""Weight updates inside vLLM's workers through its RLHF interfaces (`worker_extension_cls`
+ `collective_rpc`).

`core.engines.vllm_engine` mixes `WeightReceiver` into every vLLM worker (the in-process
worker on CPU, each tensor-parallel worker process on GPU). A worker joins the trainer's
weight group (core.engines.weight_group) and loads bucket after bucket with vLLM's
`reload_weights`, which also repacks weights for the CPU kernels. A bucket holds whole
decoder layers (rl.weight_stream), so each call completes every layer it touches; the
layers it does not touch keep their current weights.
"""
from __future__ import annotations

import contextlib
import logging

from core.engines.weight_group import TensorSpec, close_group, open_group, receive_buckets


@contextlib.contextmanager
def quiet_partial_reload():
    """vLLM warns for every layer a reload leaves untouched; a bucket touches only some."""
    log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


class WeightReceiver:
    """Mixed into vLLM's worker class; methods run in every worker via `collective_rpc`."""

    def open_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self._weight_group = open_group(host, port, rank_offset + self.rank, world_size, self.device)

    def receive_weight_buckets(self, buckets: list[list[TensorSpec]]) -> int:
        """Receive and load every bucket the trainer broadcasts; returns the bytes received."""
        def load(pairs):
            with quiet_partial_reload():
                self.reload_weights(weights_iterator=iter(pairs), is_checkpoint_format=True)

        return receive_buckets(self._weight_group, buckets, self.device, load)

    def close_weight_group(self) -> None:
        close_group(getattr(self, "_weight_group", None))
        self._weight_group = None
