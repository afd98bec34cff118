import math

import torch

from sft.distill import cosine_hidden, forward_kl, global_kd_loss


def _pair():
    teacher = torch.tensor([[0.0, math.log(3.0)]])  # p = [1/4, 3/4]
    student = torch.tensor([[0.0, 0.0]])  # q = [1/2, 1/2]
    return student, teacher


def test_forward_kl_matches_hand_computation():
    s, t = _pair()
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert forward_kl(s, t).item() == pytest_approx(expected)
    assert forward_kl(t, t).item() == pytest_approx(0.0)


def test_forward_kl_temperature_scales_by_t_squared():
    s, t = _pair()
    r = math.sqrt(3.0)  # teacher logits / 2 -> p ∝ [1, sqrt 3]
    p = [1 / (1 + r), r / (1 + r)]
    expected = 4 * sum(pi * math.log(pi / 0.5) for pi in p)
    assert forward_kl(s, t, temperature=2.0).item() == pytest_approx(expected)


def test_forward_kl_top_k_uses_renormalised_teacher():
    s, t = _pair()
    # top-1 teacher = token 1 with probability 1; student puts 1/2 there -> KL = ln 2
    assert forward_kl(s, t, top_k=1).item() == pytest_approx(math.log(2))


def test_kl_mask_averages_selected_positions():
    s, t = _pair()
    s2 = torch.cat([s, t])  # position 2 has KL 0
    t2 = torch.cat([t, t])
    full = forward_kl(s2, t2)
    only_first = forward_kl(s2, t2, mask=torch.tensor([1, 0]))
    assert only_first.item() == pytest_approx(2 * full.item())


def test_cosine_hidden_sums_layers():
    hs = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])]
    ht = [torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 5.0]])]
    assert cosine_hidden(hs, ht).item() == pytest_approx(1 - 1 / math.sqrt(2))


def test_global_kd_is_zero_for_identical_models_and_has_gradient(tiny):
    model, _ = tiny
    ids = torch.randint(0, 500, (2, 12))
    with torch.no_grad():
        teacher = model(input_ids=ids, output_hidden_states=True)
    student = model(input_ids=ids, output_hidden_states=True)
    loss = global_kd_loss(student, teacher)
    assert abs(loss.item()) < 1e-5
    noisy = model(input_ids=ids, output_hidden_states=True)
    loss = global_kd_loss(noisy, type(teacher)(logits=teacher.logits + torch.randn_like(teacher.logits),
                                                hidden_states=teacher.hidden_states))
    loss.backward()
    assert loss.item() > 0.01 and model.lm_head.weight.grad.abs().sum() > 0


def pytest_approx(x):
    import pytest

    return pytest.approx(x, abs=1e-6)
