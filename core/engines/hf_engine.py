"""HF transformers `generate` as an engine: the fallback, and the reference in tests."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from core.engines.base import Completion, SamplingSettings
from core.engines.weight_group import close_group, open_group, receive_buckets


class HFEngine:
    def __init__(self, model_dir: str, dtype: torch.dtype = torch.float32, device: str = "cpu",
                 batch_size: int = 64):
        from core.checkpoint import load_hf

        from core.tokenization import stop_token_ids

        self.model, self.tokenizer = load_hf(model_dir, dtype=dtype, device=device)
        self.stop_ids = stop_token_ids(self.tokenizer, model_dir)  # generation config eos + template end of turn
        self.model.eval()
        self.device = device
        self.batch_size = batch_size

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], sampling: SamplingSettings) -> list[Completion]:
        jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(sampling.n)]
        out: list[Completion] = []
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        for start in range(0, len(jobs), self.batch_size):
            out += self._generate_batch(jobs[start:start + self.batch_size], sampling)
        return out

    def _generate_batch(self, jobs: list[tuple[int, list[int]]], sampling: SamplingSettings) -> list[Completion]:
        tok = self.tokenizer
        width = max(len(p) for _, p in jobs)
        ids = torch.full((len(jobs), width), tok.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for row, (_, p) in enumerate(jobs):  # left padding
            ids[row, width - len(p):] = torch.tensor(p)
            attn[row, width - len(p):] = 1
        kwargs = dict(max_new_tokens=sampling.max_tokens, output_logits=True, return_dict_in_generate=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=self.stop_ids)
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        res = self.model.generate(input_ids=ids.to(self.device), attention_mask=attn.to(self.device), **kwargs)
        new = res.sequences[:, width:].cpu()
        logps = torch.stack([F.log_softmax(step.float(), -1) for step in res.logits], 1).cpu()
        out = []
        for row, (idx, p) in enumerate(jobs):
            toks, lps = [], []
            finish = "length"
            for t in range(new.shape[1]):
                tid = int(new[row, t])
                toks.append(tid)
                lps.append(float(logps[row, t, tid]))
                if tid in self.stop_ids:
                    finish = "stop"
                    break
            text = tok.decode(toks, skip_special_tokens=True)
            for s in sampling.stop:
                if s in text:
                    text, finish = text.split(s, 1)[0], "stop"
            out.append(Completion(list(p), toks, lps, text, finish, idx))
        return out

    @torch.no_grad()
    def prompt_logprobs(self, sequences: list[list[int]], prompt_lens: list[int]) -> list[list[float]]:
        out = []
        for seq, plen in zip(sequences, prompt_lens):
            x = torch.tensor([seq], device=self.device)
            logits = self.model(input_ids=x).logits[0, :-1].float()
            lp = F.log_softmax(logits, -1).gather(-1, x[0, 1:, None])[:, 0]
            out.append(lp[plen - 1:].tolist())
        return out

    def update_weights(self, named_tensors: dict) -> None:
        """Load HF-named weights: the whole model or a bucket of it (the rest keep theirs)."""
        unknown = self.model.load_state_dict(named_tensors, strict=False).unexpected_keys
        if unknown:
            raise KeyError(f"weights the model does not have: {unknown[:5]}")

    group_ranks = 1  # ranks this engine takes in a weight group

    def open_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        self._weight_group = open_group(host, port, rank_offset, world_size, torch.device(self.device))

    def receive_weight_buckets(self, buckets: list) -> int:
        return receive_buckets(self._weight_group, buckets, torch.device(self.device),
                               lambda pairs: self.update_weights(dict(pairs)))

    def close_weight_group(self) -> None:
        close_group(getattr(self, "_weight_group", None))
        self._weight_group = None
