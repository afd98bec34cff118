import math

import pytest
import torch

from core.training import TrainConfig, build_backend
from core.training.schedule import lr_lambda


def test_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=4, total_steps=14)
    f = lr_lambda(cfg)
    assert [f(s) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert f(4) == pytest.approx(1.0)
    assert f(9) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(14) == pytest.approx(0.1) and f(100) == pytest.approx(0.1)


def test_warmup_ratio_linear_and_constant():
    assert TrainConfig(warmup_ratio=0.1, total_steps=50).num_warmup_steps() == 5
    lin = lr_lambda(TrainConfig(lr=1.0, warmup_ratio=0.0, schedule="linear", total_steps=10))
    assert [lin(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    const = lr_lambda(TrainConfig(lr=1.0, warmup_steps=1, schedule="constant", total_steps=10))
    assert [const(s) for s in (0, 1, 9)] == pytest.approx([0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="schedule"):
        lr_lambda(TrainConfig(schedule="step"))


def test_optimizer_step_clips_reports_and_steps_schedule():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    cfg = TrainConfig(lr=0.1, warmup_steps=1, total_steps=4, grad_clip=0.5, weight_decay=0.1)
    b = build_backend(cfg, model)
    groups = b.optimizer.param_groups
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
    b.backward(b.model(torch.randn(8, 4)).pow(2).sum() * 10)
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    stats = b.optimizer_step()
    assert stats["grad_norm"] == pytest.approx(norm, rel=1e-5) and norm > 0.5
    assert stats["lr"] == pytest.approx(0.05)  # warmup step 0 of 1
    assert b.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    assert all(p.grad is None for p in model.parameters())
    full = b.full_state_dict()
    assert set(full) == set(model.state_dict()) and full["0.weight"].data_ptr() != model[0].weight.data_ptr()


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        build_backend(TrainConfig(backend="ddp"), torch.nn.Linear(2, 2))
