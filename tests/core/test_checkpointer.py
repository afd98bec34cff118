"""core.checkpointer: atomic steps (an interrupted save is never resumed from), registered
components and the policy's training state round-trip, RNG restored, keep-last pruning."""
import random

import numpy as np
import pytest
import torch

from core.checkpoint import load_hf
from core.checkpointer import MARKER, Checkpointer
from core.training import TrainConfig, build_backend


class Counter:
    """A stateful part as the stages register them (sampler, hooks): state_dict/load_state_dict."""

    def __init__(self):
        self.n, self.history = 0, []

    def state_dict(self):
        return {"n": self.n, "history": list(self.history), "t": torch.arange(self.n)}

    def load_state_dict(self, state):
        self.n, self.history = state["n"], list(state["history"])
        assert torch.equal(state["t"], torch.arange(self.n))


class DiesOnSave:
    """A policy whose state write is killed half-way (files already written stay behind)."""

    def save_state(self, directory):
        from pathlib import Path

        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "half.bin").write_bytes(b"x" * 10)
        raise KeyboardInterrupt("killed mid-save")

    def load_state(self, directory):
        raise AssertionError("an interrupted checkpoint must never be loaded")


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3)


def test_interrupted_save_is_never_chosen_by_resume_auto(tmp_path):
    ck = Checkpointer(tmp_path)
    counter = Counter()
    ck.register("counter", counter)
    counter.n = 2
    ck.save(2, meta={"note": "good"})
    with pytest.raises(KeyboardInterrupt):
        ck.save(4, policy=DiesOnSave())
    assert ck.resolve("auto") == tmp_path / "step_2"
    assert not (tmp_path / "step_4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [".step_4.partial"]
    with pytest.raises(FileNotFoundError, match="no checkpoint.json"):
        ck.resolve(str(tmp_path / ".step_4.partial"))
    counter.n = 4
    ck.save(4)  # the next save of that step replaces the partial directory
    assert ck.resolve("auto") == tmp_path / "step_4"
    assert not (tmp_path / ".step_4.partial").exists()
    assert ck.resolve("never") is None


def test_components_meta_and_rng_round_trip(tmp_path):
    counter = Counter()
    ck = Checkpointer(tmp_path)
    ck.register("counter", counter)
    counter.n, counter.history = 3, ["a", "b"]
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    ck.save(3, meta={"accuracy_before": {"off": 0.25}})
    expected = _draws()
    _draws()  # the killed process moved on

    fresh = Counter()
    ck2 = Checkpointer(tmp_path)
    ck2.register("counter", fresh)
    info = ck2.load(ck2.resolve("auto"))
    assert (info["step"], info["meta"]) == (3, {"accuracy_before": {"off": 0.25}})
    assert (fresh.n, fresh.history) == (3, ["a", "b"])
    got = _draws()
    assert got[:2] == expected[:2] and torch.equal(got[2], expected[2])


def test_a_registered_component_missing_from_the_checkpoint_is_an_error(tmp_path):
    Checkpointer(tmp_path).save(1)
    ck = Checkpointer(tmp_path)
    ck.register("sampler", Counter())
    with pytest.raises(KeyError, match="sampler"):
        ck.load(tmp_path / "step_1")
    with pytest.raises(TypeError, match="state_dict"):
        ck.register("bad", object())


def test_policy_training_state_round_trips_through_the_backend(tiny_model_dir, tmp_path):
    """The real training backend's state (weights, optimizer, schedule) under policy_state/."""
    def setup():
        model, _ = load_hf(tiny_model_dir)
        return build_backend(TrainConfig(lr=1e-2, warmup_steps=1, total_steps=4), model)

    def step(backend):
        ids = torch.arange(2, 18).unsqueeze(0)
        loss = backend.model(input_ids=ids, labels=ids).loss
        backend.backward(loss)
        backend.optimizer_step()
        return loss.item()

    torch.manual_seed(0)
    a = setup()
    step(a)
    ck = Checkpointer(tmp_path / "ck")
    ck.save(1, policy=a)
    assert (tmp_path / "ck" / "step_1" / MARKER).is_file()
    expected = step(a)

    b = setup()
    ck.load(ck.latest(), policy=b)
    assert step(b) == expected
    sa, sb = a.full_state_dict(), b.full_state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_keep_last_prunes_older_complete_steps(tmp_path):
    ck = Checkpointer(tmp_path, keep_last=2)
    for s in (1, 2, 3, 4):
        ck.save(s)
    assert [p.name for p in ck.complete_steps()] == ["step_3", "step_4"]


def _two_rank_worker(rank: int, root: str, port: int) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        counter = Counter()
        ck = Checkpointer(root)
        ck.register("counter", counter)
        counter.n = 5
        torch.manual_seed(100 + rank)  # each rank's RNG differs
        ck.save(1)
        expected = torch.rand(4)
        torch.rand(4)
        fresh = Counter()
        ck2 = Checkpointer(root)
        ck2.register("counter", fresh)
        assert ck2.load(ck2.latest())["world_size"] == 2 and fresh.n == 5
        assert torch.equal(torch.rand(4), expected), rank  # this rank's own RNG came back
    finally:
        dist.destroy_process_group()


def test_two_ranks_save_once_and_each_restores_its_own_rng(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_two_rank_worker, args=(str(tmp_path), port), nprocs=2)
    names = sorted(p.name for p in (tmp_path / "step_1").iterdir())
    assert names == ["checkpoint.json", "components.pt", "policy_state", "rng_rank0.pt", "rng_rank1.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["step_1"]
