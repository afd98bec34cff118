import torch

from core.data.synth import code_rows, math_rows
from sft.loss import batch_loss_sum
from sft.packing import IGNORE, collate, encode_rows, pack, pack_documents


def _docs(tok):
    return encode_rows(tok, math_rows(6, seed=3) + code_rows(3, seed=3))


def test_loss_only_on_assistant_tokens(tiny):
    _, tok = tiny
    rows = math_rows(2, seed=1, modes=("on",))
    doc = encode_rows(tok, rows)[0]
    packed = pack_documents([doc], 256, tok.pad_token_id)[0]
    targets = [i for i, lab in enumerate(packed.labels) if lab != IGNORE]
    # exactly the assistant content + its <|eot_id|> are predicted, nothing from system/user
    predicted = tok.decode([packed.labels[i] for i in targets], skip_special_tokens=False)
    assert predicted == rows[0]["messages"][-1]["content"] + "<|eot_id|>"
    assert targets[0] == doc.prompt_len - 1
    assert len(targets) == sum(doc.loss_mask)


def test_pack_next_fit_and_too_long():
    assert pack([3, 3, 5, 2, 4], 8) == [[0, 1], [2, 3], [4]]
    try:
        pack([9], 8)
    except ValueError as e:
        assert "pack_len" in str(e)
    else:
        raise AssertionError("too-long document accepted")


def test_packed_loss_equals_unpacked(tiny):
    model, tok = tiny
    model.eval()
    docs = _docs(tok)
    packed = collate(pack_documents(docs, 512, tok.pad_token_id))
    assert packed.input_ids.shape[0] < len(docs)  # several documents share a row
    with torch.no_grad():
        packed_sum = batch_loss_sum(model, packed)
        single = [collate(pack_documents([d], len(d.input_ids), tok.pad_token_id)) for d in docs]
        unpacked_sum = sum(batch_loss_sum(model, b) for b in single)
    n = packed.num_loss_tokens
    assert n == sum(b.num_loss_tokens for b in single) == sum(sum(d.loss_mask) for d in docs)
    assert abs(packed_sum.item() / n - unpacked_sum.item() / n) < 1e-5
    # without isolation the documents would leak into each other: the check has teeth
    with torch.no_grad():
        leaky = model(input_ids=packed.input_ids, use_cache=False).logits
    from sft.loss import token_ce_sum
    assert abs(token_ce_sum(leaky, packed.labels).item() / n - unpacked_sum.item() / n) > 1e-3
