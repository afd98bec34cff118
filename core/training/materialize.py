"""Build a model without memory, shard it, then read each rank's part of the weights.

`meta_model` builds the architecture on the meta device (no storage). The backend shards it
(FSDP2) or places it, `materialize` allocates only the rank's shard, and `load_weights`
fills it from the HF safetensors files, reading only the rows that rank owns (a safetensors
slice read touches only those bytes of the memory-mapped file). No rank ever holds the full
fp32 model; a world size of 1 runs the same code and holds it once.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig

WEIGHTS = "model.safetensors"
INDEX = "model.safetensors.index.json"


@contextlib.contextmanager
def _parameters_on_meta():
    """Every parameter registered inside goes to the meta device; buffers stay real. This is
    accelerate's `init_empty_weights(include_buffers=False)`, kept here so the policy worker
    needs only torch + transformers."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None:
            empty = type(param)(param.to("meta"), requires_grad=param.requires_grad)
            vars(empty).update(vars(param))  # attributes HF sets on parameters
            module._parameters[name] = empty

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def meta_model(model_dir: str | Path) -> nn.Module:
    """The HF causal LM of `model_dir`, parameters on the meta device (see `meta_from_config`)."""
    return meta_from_config(AutoConfig.from_pretrained(str(model_dir), local_files_only=True, trust_remote_code=True))


def meta_from_config(config: PretrainedConfig) -> nn.Module:
    """An fp32 causal LM with parameters on the meta device; buffers (rotary frequencies) are
    real, because they are computed from the config, not loaded."""
    remote = bool(getattr(config, "auto_map", None))
    with _parameters_on_meta():
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=remote)


def is_meta(model: nn.Module) -> bool:
    return any(p.is_meta for p in model.parameters())


def materialize(model: nn.Module, device: torch.device) -> nn.Module:
    """Allocate (uninitialised) storage for every meta parameter on `device`, keeping the real
    buffers. Under FSDP2 this allocates only the local shard."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers() if not b.is_meta}
    model.to_empty(device=device)
    with torch.no_grad():
        for name, value in buffers.items():
            model.get_buffer(name).copy_(value)
    return model


def _weight_files(model_dir: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it."""
    index = model_dir / INDEX
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: model_dir / file for name, file in weight_map.items()}
    single = model_dir / WEIGHTS
    if not single.exists():
        raise FileNotFoundError(f"{model_dir}: no {WEIGHTS} or {INDEX}")
    with safe_open(str(single), framework="pt") as f:
        return {name: single for name in f.keys()}


def _local_box(tensor: torch.Tensor) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """The storage this rank owns and which slice of the full tensor it is."""
    if hasattr(tensor, "device_mesh"):  # DTensor (FSDP2)
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        shape, offset = compute_local_shape_and_global_offset(tensor.shape, tensor.device_mesh, tensor.placements)
        return tensor.to_local(), tuple(slice(o, o + s) for o, s in zip(offset, shape))
    return tensor, tuple(slice(0, s) for s in tensor.shape)


def _checkpoint_names(model: nn.Module, names) -> dict[str, str]:
    """Model parameter name -> the name in the checkpoint, through transformers' plain
    renamings for the architecture (NemotronH stores `model.*` as `backbone.*`)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming

        renames = [(src, dst) for w in get_model_conversion_mapping(model) if type(w) is WeightRenaming
                   for src, dst in zip(w.source_patterns, w.target_patterns)]
    except (ImportError, AttributeError):
        renames = []
    out = {}
    for name in names:
        new = name
        for src, dst in renames:
            new = re.sub(src, dst, new)
        out.setdefault(new, name)
        out.setdefault(name, name)
    return out


@torch.no_grad()
def load_weights(model: nn.Module, model_dir: str | Path) -> None:
    """Fill `model`'s (possibly sharded) parameters and persistent buffers from `model_dir`'s
    safetensors, one tensor at a time, reading only the local shard of each."""
    model_dir = Path(model_dir)
    files = _weight_files(model_dir)
    stored = _checkpoint_names(model, files)
    handles: dict[Path, object] = {}
    loaded: set[int] = set()
    try:
        for name, tensor in model.state_dict(keep_vars=True).items():
            if id(tensor) in loaded:  # tied weights (e.g. lm_head = embed_tokens) appear twice
                continue
            if name not in stored:
                raise KeyError(f"{model_dir}: no tensor {name!r} in the checkpoint")
            name = stored[name]
            path = files[name]
            if path not in handles:
                handles[path] = safe_open(str(path), framework="pt").__enter__()
            local, box = _local_box(tensor)
            if local.numel():
                part = handles[path].get_slice(name)[box] if box else handles[path].get_tensor(name)
                if tuple(part.shape) != tuple(local.shape):
                    raise ValueError(f"{path}: {name!r} has shape {tuple(part.shape)} here, the model wants "
                                     f"{tuple(local.shape)}")
                local.copy_(part.to(local.dtype))
            loaded.add(id(tensor))
    finally:
        for h in handles.values():
            h.__exit__(None, None, None)
