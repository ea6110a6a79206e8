"""erf.probe.distributed in one process: shard arithmetic and its refusals, the shards' inputs,
bootstrap-group keying, a stop request, and a gloo process group of one rank.

The multi-process runs (two gloo ranks, torchrun) are in tests/e2e/test_distributed.py; the
CUDA paths (NCCL, one GPU per rank) need a GPU and are not tested here.
"""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist

from erf import ConvStack, measure_erf
from erf.probe import distributed
from erf.probe.distributed import (
    RankTimeout,
    all_reduce_result,
    init_from_env,
    is_main_process,
    measure_erf_sharded,
    rank_and_size,
    shard,
    shard_batches,
    shard_groups,
    wait_for_ranks,
)
from erf.probe.inputs import input_batches

SHAPE = (1, 8, 8)
KW = dict(device="cpu", dtype=torch.float64)


class _IndexSource:
    """A seeded source whose sample ``i`` is filled with ``i`` (seed added, to see it pass)."""

    def sample(self, shape, seed, index):
        return torch.full(shape, float(index + 100 * seed))


def _indices(batches) -> list[list[int]]:
    """The sample index held by each sample of each batch (``_IndexSource`` / loader)."""
    return [[int(x[0, 0, 0]) for x in batch] for batch in batches]


@pytest.mark.parametrize("rank, world", [(-1, 2), (2, 2), (0, 0)])
def test_a_rank_outside_the_world_is_refused(rank, world):
    with pytest.raises(ValueError, match=f"rank {rank} is outside 0..{world - 1}"):
        shard(10, 2, rank, world)


@pytest.mark.parametrize(
    "source", ["gaussian", _IndexSource(), "loader"], ids=["random", "seeded", "iterable"]
)
def test_the_shards_batches_are_the_single_process_batches_split_at_batch_boundaries(source):
    """Every sample of the run once, in order, with the batch boundaries of one process (an
    iterable is read from the start on every rank, and the samples before the shard skipped)."""
    n, b, world = 7, 2, 3
    whole = [torch.full(SHAPE, float(i)) for i in range(n)]
    loader = [torch.stack(whole[i : i + b]) for i in range(0, n, b)]
    make = (lambda: iter(loader)) if source == "loader" else (lambda: source)
    want = list(input_batches(make(), SHAPE, n, b, seed=2))
    got = [
        batch
        for rank in range(world)
        for batch in shard_batches(make(), SHAPE, shard(n, b, rank, world), b, seed=2)
    ]
    assert [x.shape[0] for x in got] == [x.shape[0] for x in want] == [2, 2, 2, 1]
    for a, w in zip(got, want):
        assert torch.equal(a, w)
    if source != "gaussian":
        offset = 200 if source != "loader" else 0  # the seed reaches a seeded source
        assert _indices(got) == [[offset + i for i in r] for r in ([0, 1], [2, 3], [4, 5], [6])]


def test_a_shard_starting_inside_a_loader_batch_keeps_the_rest_of_that_batch():
    loader = [torch.arange(4.0).view(4, 1, 1, 1).expand(4, *SHAPE)]
    got = list(shard_batches(iter(loader), SHAPE, range(1, 3), 2, seed=0))
    assert _indices(got) == [[1, 2]]


def test_shard_groups_leaves_a_result_without_bootstrap_groups_unchanged():
    model = ConvStack(2, init="uniform")
    part = measure_erf(model, SHAPE, n_samples=3, bootstrap_groups=0, **KW)
    assert part.groups is None
    assert shard_groups(part, 5, 4) is part
    grouped = measure_erf(model, SHAPE, n_samples=3, bootstrap_groups=2, **KW)
    assert shard_groups(grouped, 5, 0) is grouped  # no groups in the run: nothing to key


def test_a_stop_request_ends_a_sharded_run_naming_the_samples_done():
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) == 2  # after the second batch

    with pytest.raises(ValueError, match="rank 0 stopped on request after 4 of its 6 samples; "
                       "multi-process runs keep no checkpoint"):  # fmt: skip
        measure_erf_sharded(ConvStack(2), SHAPE, n_samples=6, batch_size=2, should_stop=stop, **KW)


def test_without_a_process_group_wait_for_ranks_meets_no_one(monkeypatch):
    def barrier(*args, **kwargs):
        raise AssertionError("a single process must not enter a collective")

    monkeypatch.setattr(dist, "monitored_barrier", barrier)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "not a number")  # not even read
    wait_for_ranks("the test")
    assert rank_and_size() == (0, 1) and is_main_process()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def one_rank_group(monkeypatch):
    """A gloo process group of one rank, joined as torchrun's environment describes it."""
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port())}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "30")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the gloo-only path
    saved = list(distributed._monitor)  # the module's record of the group it joined
    assert not dist.is_initialized()
    try:
        init_from_env()
        yield
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        distributed._monitor[:] = saved


def test_joining_twice_keeps_the_group_and_one_rank_is_not_a_distributed_run(one_rank_group):
    group = dist.group.WORLD
    init_from_env()  # already joined: a no-op
    assert dist.group.WORLD is group and dist.get_backend() == "gloo"
    assert rank_and_size() == (0, 1)
    assert not distributed.active() and is_main_process()


def test_all_reduce_in_a_group_of_one_gives_back_the_ranks_own_sums(one_rank_group):
    part = measure_erf(ConvStack(2, init="random"), SHAPE, n_samples=3, bootstrap_groups=0, **KW)
    got = all_reduce_result(part, SHAPE, torch.device("cpu"), n_groups=0)
    np.testing.assert_array_equal(got.total, part.total)
    np.testing.assert_array_equal(got.total_sq, part.total_sq)
    assert (got.n_samples, got.n_nonfinite, got.n_dead) == (3, 0, 0)
    assert got.groups is None and got.group_n is None
    assert (got.position, got.target_shape) == (part.position, part.target_shape)
    assert got.meta["world_size"] == 1 and got.meta["samples_seen"] == 3


def test_a_rank_that_loses_rank_zero_names_itself_in_the_timeout(one_rank_group, monkeypatch):
    """monitored_barrier on a rank > 0 only learns that the barrier went away: the message
    says which rank waited, and what sets the wait."""

    def barrier(*args, **kwargs):
        raise RuntimeError("Connection closed by peer")

    monkeypatch.setattr(distributed, "active", lambda: True)  # as if a second rank existed
    monkeypatch.setattr(dist, "monitored_barrier", barrier)
    with pytest.raises(RankTimeout, match=r"^rank 0: another rank did not answer within 30 s "
                       r"before the test .*ERF_DIST_TIMEOUT_S=30 sets the wait$"):  # fmt: skip
        wait_for_ranks("the test")


def test_a_group_joined_elsewhere_with_another_backend_skips_the_monitored_barrier(
    one_rank_group, monkeypatch
):
    """monitored_barrier needs gloo: in an NCCL group the collective's own timeout applies."""

    def barrier(*args, **kwargs):
        raise AssertionError("monitored_barrier needs a gloo group")

    distributed._monitor[:] = []  # joined elsewhere, not by init_from_env
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda *a: "nccl")
    monkeypatch.setattr(dist, "monitored_barrier", barrier)
    wait_for_ranks("the test")
    assert distributed._monitor == []  # nothing recorded: the next call decides again
