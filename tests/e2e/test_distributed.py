"""Multi-process accumulation (erf.probe.distributed) against the single-process probe.

Two gloo processes on CPU. "Equal" means: the same samples (each from its (seed, index)
generator), the same per-batch sums, and the shard sums added once at the end instead of batch
after batch, so float64 results differ by summation order only (relative 1e-16; tested at
1e-12).
"""

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers.cli import run_module
from helpers.paths import REPO

from erf.io.store import load_result
from erf.nets.luo import ConvStack
from erf.probe.distributed import measure_erf_sharded, shard
from erf.probe.measure import measure_erf

SHAPE = (2, 16, 16)


def _net(depth: int = 3) -> ConvStack:
    return ConvStack(depth, 3, channels=2, activation="relu", init="random", seed=0)


CASES = [  # (n_samples, batch_size, extra options)
    (6, 2, {}),  # 3 batches: rank 0 gets one, rank 1 two
    (3, 4, {}),  # 1 batch: rank 1's shard is empty
    (5, 2, {"target": "2", "channel": 1, "reduce": "square", "inputs": "uniform"}),
]


@pytest.mark.parametrize("n_samples", [1, 5, 16, 17])
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_are_contiguous_batch_aligned_and_cover_every_sample_once(
    n_samples, batch_size, world
):
    shards = [shard(n_samples, batch_size, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n_samples))
    assert all(s.start % batch_size == 0 for s in shards if len(s))
    assert len(shards[0]) > 0
    sizes = [-(-len(s) // batch_size) for s in shards]  # batches per rank
    assert max(sizes) - min(sizes) <= 1


def _worker(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        results = [
            measure_erf_sharded(
                _net(), SHAPE, n_samples=n, batch_size=b, dtype=torch.float64, device="cpu", **opts
            )
            for n, b, opts in CASES
        ]
        Path(out, f"rank{rank}.pkl").write_bytes(pickle.dumps(results))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return [pickle.loads((out / f"rank{r}.pkl").read_bytes()) for r in range(2)]


def test_two_gloo_processes_give_the_single_process_sums(two_ranks):
    for (n, b, opts), got in zip(CASES, two_ranks[0]):
        want = measure_erf(_net(), SHAPE, n_samples=n, batch_size=b, dtype=torch.float64,
                           device="cpu", **opts)  # fmt: skip
        np.testing.assert_allclose(got.total, want.total, rtol=1e-12, atol=0)
        np.testing.assert_allclose(got.total_sq, want.total_sq, rtol=1e-12, atol=0)
        assert (got.n_samples, got.n_nonfinite, got.meta["samples_seen"]) == (n, 0, n)
        assert (got.position, got.target_shape, got.target, got.channel, got.reduce) == (
            want.position,
            want.target_shape,
            want.target,
            want.channel,
            want.reduce,
        )
        assert got.meta["fingerprint"] == want.meta["fingerprint"]
        assert got.meta["world_size"] == 2


def test_two_gloo_processes_give_the_single_process_bootstrap_groups_and_dead_counts(two_ranks):
    for (n, b, opts), got in zip(CASES, two_ranks[0]):
        want = measure_erf(_net(), SHAPE, n_samples=n, batch_size=b, dtype=torch.float64,
                           device="cpu", **opts)  # fmt: skip
        np.testing.assert_allclose(got.groups, want.groups, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(got.group_n, want.group_n)
        assert got.n_dead == want.n_dead


def test_every_rank_holds_the_same_reduced_result(two_ranks):
    for a, b in zip(*two_ranks):
        np.testing.assert_array_equal(a.total, b.total)
        assert (a.n_samples, a.position) == (b.n_samples, b.position)
        # a rank whose shard was empty (the 3-sample case) has a whole meta all the same
        for key in ("dtype", "fingerprint", "inputs", "world_size"):
            assert a.meta[key] == b.meta[key], key


@pytest.mark.slow
def test_torchrun_sweep_writes_one_folder_from_rank_zero_equal_to_one_process(tmp_path):
    """Two ranks under torchrun, a 2-job sweep in the default timestamped folder."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = run_module(
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "erf.run",
        "experiment=depth_sweep",
        "model.depth=2,3",
        "model.init=random",
        "model.activation=relu",
        "model.channels=2",
        "inputs.size=[16,16]",
        "probe.n_samples=6",
        "probe.batch_size=2",
        "probe.dtype=float64",
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    (sweep,) = (tmp_path / "outputs" / "depth_sweep").iterdir()  # one folder for both ranks
    assert proc.stdout.count("results: ") == 1  # the sweep summary ran on rank 0 only
    assert (sweep / "summary.csv").read_text().count("\n") == 3  # header + 2 jobs
    for depth in (2, 3):
        (job,) = sweep.glob(f"*_depth{depth}_random_relu")
        got = load_result(job / "erf.npz")
        want = measure_erf(_net(depth), SHAPE, n_samples=6, batch_size=2, dtype=torch.float64,
                           device="cpu")  # fmt: skip
        np.testing.assert_allclose(got.total, want.total, rtol=1e-12, atol=0)
        assert got.n_samples == 6 and got.meta["world_size"] == 2
