"""`DeciLMForCausalLM`: a Llama decoder whose layers each pick their own attention and FFN.

Per layer (METHODS §2.9): attention is GQA with `num_heads / n_heads_in_group` KV heads,
one Linear(hidden, hidden) (`replace_with_linear`, token attends only to itself) or
absent (`no_op`: no norm, no residual); the FFN is SwiGLU of the width given by
`ffn_mult`, one Linear, or absent. Weight names follow Llama, so converting a Llama
checkpoint is the identity. Self-contained (copied into saved checkpoints); RoPE
frequencies are computed in `forward` because transformers 5 builds models on the meta
device and would leave a non-persistent buffer uninitialised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_decilm import DeciLMConfig, ffn_mult_to_intermediate_size


class DeciLMRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(config: DeciLMConfig, position_ids: torch.Tensor, dtype: torch.dtype):
    theta = float((config.rope_parameters or {}).get("rope_theta", config.rope_theta))
    dim = config.head_dim
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=position_ids.device) / dim))
    freqs = position_ids.float()[..., None] * inv_freq  # (B, T, dim/2)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # (B, 1, T, dim)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class DeciLMAttention(nn.Module):
    """Grouped-query attention with this layer's own KV-head count."""

    def __init__(self, config: DeciLMConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.num_kv_heads = config.num_kv_heads(layer_idx)
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)

    def forward(self, x, cos, sin, mask, past_key_values=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if past_key_values is not None:
            k, v = past_key_values.update(k, v, self.layer_idx)
        rep = self.num_heads // self.num_kv_heads
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, :, :, -k.shape[2]:])
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class DeciLMLinearAttention(nn.Module):
    """Attention replaced by one linear map (each token attends only to itself)."""

    def __init__(self, config: DeciLMConfig):
        super().__init__()
        self.linear_attn = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, past_key_values=None):
        return self.linear_attn(x)


class DeciLMMLP(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DeciLMLinearMLP(nn.Module):
    def __init__(self, config: DeciLMConfig):
        super().__init__()
        self.linear_mlp = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(self, x):
        return self.linear_mlp(x)


def make_attention(config: DeciLMConfig, layer_idx: int) -> nn.Module | None:
    a = config.block_configs[layer_idx].attention
    if a.no_op:
        return None
    return DeciLMLinearAttention(config) if a.replace_with_linear else DeciLMAttention(config, layer_idx)


def make_mlp(config: DeciLMConfig, layer_idx: int) -> nn.Module | None:
    f = config.block_configs[layer_idx].ffn
    if f.no_op:
        return None
    if f.replace_with_linear:
        return DeciLMLinearMLP(config)
    return DeciLMMLP(config.hidden_size, ffn_mult_to_intermediate_size(f.ffn_mult, config.hidden_size),
                     config.mlp_bias)


class DeciLMDecoderLayer(nn.Module):
    def __init__(self, config: DeciLMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = make_attention(config, layer_idx)
        self.mlp = make_mlp(config, layer_idx)
        if self.self_attn is not None:
            self.input_layernorm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)
        if self.mlp is not None:
            self.post_attention_layernorm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)

    def attn_delta(self, x, cos, sin, mask, past_key_values=None):
        """What the attention sub-block adds to the residual stream (0 for no-op)."""
        if self.self_attn is None:
            return torch.zeros_like(x)
        return self.self_attn(self.input_layernorm(x), cos, sin, mask, past_key_values)

    def ffn_delta(self, x):
        if self.mlp is None:
            return torch.zeros_like(x)
        return self.mlp(self.post_attention_layernorm(x))

    def forward(self, x, cos, sin, mask, past_key_values=None):
        if self.self_attn is not None:
            x = x + self.attn_delta(x, cos, sin, mask, past_key_values)
        if self.mlp is not None:
            x = x + self.ffn_delta(x)
        return x


class DeciLMPreTrainedModel(PreTrainedModel):
    config_class = DeciLMConfig
    base_model_prefix = "model"
    _no_split_modules = ["DeciLMDecoderLayer"]
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, DeciLMRMSNorm):
            nn.init.ones_(module.weight)


def causal_mask(attention_mask: torch.Tensor | None, q_len: int, kv_len: int, batch: int,
                dtype: torch.dtype, device) -> torch.Tensor:
    """Additive (B, 1, q_len, kv_len) mask: causal, plus padding from a 2D attention mask.
    A 4D additive mask (packed SFT rows' block-diagonal mask) is taken as given."""
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask.to(dtype)
    past = kv_len - q_len
    qi = torch.arange(q_len, device=device)[:, None] + past
    allowed = torch.arange(kv_len, device=device)[None, :] <= qi
    allowed = allowed[None, None].expand(batch, 1, q_len, kv_len)
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, -kv_len:].bool()
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


class DeciLMModel(DeciLMPreTrainedModel):
    def __init__(self, config: DeciLMConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DeciLMDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = DeciLMRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, output_hidden_states=None, **kwargs):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        b, t, _ = x.shape
        if use_cache and past_key_values is None:
            from transformers import DynamicCache

            past_key_values = DynamicCache(config=self.config)
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=x.device)[None].expand(b, t)
        cos, sin = rope_cos_sin(self.config, position_ids, x.dtype)
        mask = causal_mask(attention_mask, t, past + t, b, x.dtype, x.device)
        hidden = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, cos, sin, mask, past_key_values if use_cache else None)
            if hidden is not None:
                hidden.append(x)
        x = self.norm(x)
        if hidden is not None:
            hidden[-1] = x  # the Llama convention: the last entry is after the final norm
        return BaseModelOutputWithPast(last_hidden_state=x, past_key_values=past_key_values if use_cache else None,
                                       hidden_states=tuple(hidden) if hidden is not None else None)


class DeciLMForCausalLM(DeciLMPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DeciLMConfig):
        super().__init__(config)
        self.model = DeciLMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_hidden_states=None,
                logits_to_keep: int = 0, **kwargs):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
                         output_hidden_states=output_hidden_states)
        h = out.last_hidden_state
        logits = self.lm_head(h[:, -logits_to_keep:] if logits_to_keep else h)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=out.past_key_values,
                                      hidden_states=out.hidden_states)
