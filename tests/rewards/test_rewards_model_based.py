"""Model-based rewards against real models built here (nothing downloaded): a tiny randomly
initialised LlamaForSequenceClassification reward model."""
from __future__ import annotations

import pytest

from rewards import RewardPool, RewardSample, get_reward


def _tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = ["user: what is two plus two", "assistant: the answer is four",
              "assistant: it is five", "<think> reasoning </think>"]
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                   eos_token="</s>")
    fast.save_pretrained(path)
    return fast


@pytest.fixture(scope="module")
def tiny_rm(tmp_path_factory):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    path = tmp_path_factory.mktemp("rm")
    tok = _tokenizer(path)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         num_labels=1, pad_token_id=tok.pad_token_id, max_position_embeddings=128)
    LlamaForSequenceClassification(config).save_pretrained(path)
    return str(path)


def S(completion: str, sid: str) -> RewardSample:
    return RewardSample(sid, [{"role": "user", "content": "what is two plus two"}], completion,
                        {"type": "math", "answer": "4"}, "off")


def test_reward_model_scores_a_batch_like_a_direct_forward_pass(tiny_rm):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    samples = [S("the answer is four", "a"), S("it is five", "b"), S("four", "c")]
    results = get_reward("reward_model").fn(samples, model_path=tiny_rm)
    tok = AutoTokenizer.from_pretrained(tiny_rm)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_rm).eval()
    for sample, result in zip(samples, results):
        text = f"user: what is two plus two\nassistant: {sample.completion}"
        with torch.no_grad():
            expected = model(**tok(text, return_tensors="pt")).logits[0, 0].item()
        assert result.score == pytest.approx(expected, abs=1e-4)
    assert len({round(r.score, 6) for r in results}) == 3  # different texts, different scores


def test_reward_model_in_a_weighted_pool(tiny_rm):
    pool = RewardPool([{"name": "reward_model", "weight": 2.0, "options": {"model_path": tiny_rm}},
                       {"name": "format", "weight": 1.0}])
    out = pool.score([S("the answer is four", "a"), S("<think>", "b")])
    rm = [d["reward_model"]["score"] for d in out.details]
    assert out.scores == [pytest.approx(2 * rm[0] + 1.0), pytest.approx(2 * rm[1])]
    assert out.metrics["reward_model"].failures == 0


def test_reward_model_without_a_path_is_a_counted_failure():
    pool = RewardPool(["reward_model"])
    out = pool.score([S("x", "a")])
    assert out.scores == [0.0] and out.metrics["reward_model"].failures == 1
    assert "options.model_path" in out.details[0]["reward_model"]["info"]["error"]
