"""LoRA policy: merged exports load as plain HF models that compute the adapted policy."""
import torch

from core.checkpoint import load_hf
from core.training import TrainConfig
from rl.policy_worker import PolicyWorker
from sft.config import AdapterConfig


def test_saved_lora_policy_is_a_plain_hf_model_with_the_adapters_merged(tiny_model_dir, tmp_path):
    worker = PolicyWorker(tiny_model_dir, TrainConfig(lr=1e-2), adapter=AdapterConfig(method="lora", rank=4, alpha=8.0))
    torch.manual_seed(0)
    for name, p in worker.backend.model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)  # a trained adapter (B starts at zero)
    plain, _ = load_hf(worker.save_hf(str(tmp_path / "policy")))
    ids = torch.tensor([[1, 5, 9, 30, 44, 2]])
    adapted = worker.backend.model(input_ids=ids).logits
    with torch.no_grad():
        base = load_hf(tiny_model_dir)[0](input_ids=ids).logits
    assert (plain(input_ids=ids).logits - adapted).abs().max() < 1e-5
    assert (adapted - base).abs().max() > 1e-2  # the adapters did change the policy
