"""Generator workers: a core engine (vLLM or HF) behind the Generator role, ready for Ray.

Weights arrive as buckets of tensors in the Ray object store (CPU) and are loaded with
the engine's `update_weights`; the parity probe asks the engine for per-token logprobs of
fixed sequences so the driver can compare them with the trainer's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from core.config import check_choice
from core.engines.base import Completion, SamplingSettings
from core.engines.vllm_engine import VLLMSettings


@dataclass
class GeneratorConfig:
    """Which engine generates rollouts and how it is sized."""

    engine: str = "vllm"  # vllm | hf ("vllm" falls back to hf where vllm does not import)
    num_engines: int = 1
    max_model_len: int = 512
    kv_cache_gib: float = 1.0
    cpu_threads: str = "all"
    num_cpus_per_engine: float = 1.0  # Ray resource request per engine actor
    num_gpus_per_engine: float = 0.0  # = tensor_parallel_size on GPU clusters
    hf_batch_size: int = 64
    tensor_parallel_size: int = 1  # CUDA only
    gpu_memory_utilization: float = 0.5  # CUDA only
    # Weights and compute of the engine. bfloat16 is faster on AVX512-BF16 CPUs and GPUs, but its
    # logprobs then differ from a float32 trainer's: loosen sync.parity_tolerance and take pi_old
    # from the trainer (algorithm.old_logprobs: trainer).
    dtype: str = "float32"  # float32 | bfloat16

    def __post_init__(self) -> None:
        check_choice("generator.dtype", self.dtype, ("float32", "bfloat16"))


def vllm_importable() -> bool:
    try:
        import vllm  # noqa: F401
    except ImportError:
        return False
    return True


class GeneratorWorker:
    def __init__(self, model_dir: str, cfg: GeneratorConfig, seed: int = 0):
        self.engine_name = cfg.engine if (cfg.engine != "vllm" or vllm_importable()) else "hf"
        if self.engine_name == "vllm":
            from core.engines.vllm_engine import VLLMEngine

            from core.engines.vllm_engine import cuda_available

            extension = "core.engines.vllm_rlhf.NcclWeightReceiver" if cuda_available() else ""
            self.engine = VLLMEngine(model_dir, VLLMSettings(
                max_model_len=cfg.max_model_len, kv_cache_gib=cfg.kv_cache_gib, seed=seed,
                cpu_threads=cfg.cpu_threads, tensor_parallel_size=cfg.tensor_parallel_size,
                gpu_memory_utilization=cfg.gpu_memory_utilization, worker_extension_cls=extension, dtype=cfg.dtype))
        else:
            from core.engines.hf_engine import HFEngine

            self.engine = HFEngine(model_dir, dtype=getattr(torch, cfg.dtype), batch_size=cfg.hf_batch_size)

    def engine_kind(self) -> str:
        return self.engine_name

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        return self.engine.generate(prompts, sampling)

    def update_weights(self, buckets: list[Any]) -> dict[str, float]:
        """Load weights from object-store buckets (refs) or plain dicts; returns time/bytes."""
        import ray

        start = time.perf_counter()
        state, nbytes = {}, 0
        for b in buckets:
            part = ray.get(b) if isinstance(b, ray.ObjectRef) else b
            state.update(part)
            nbytes += sum(t.numel() * t.element_size() for t in part.values())
        self.engine.update_weights(state)
        return {"seconds": time.perf_counter() - start, "bytes": float(nbytes)}

    def init_weight_receiver(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self.engine.init_weight_receiver(host, port, rank_offset, world_size)

    def receive_weights(self, specs: list) -> None:
        self.engine.receive_weights(specs)

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        return self.engine.prompt_logprobs(sequences, prompt_lens)

    def shutdown(self) -> None:
        if hasattr(self.engine, "shutdown"):
            self.engine.shutdown()
