"""Multi-process accumulation with torch.distributed, e.g. ``torchrun --nproc_per_node=N``.

The samples are split into contiguous shards aligned to batch boundaries, one per process
(rank); every sample keeps its own seed (``erf.probe.inputs.random_sample(kind, shape, seed, i)``),
so the union of the shards is exactly the single-process run's set of inputs. Each rank
probes its shard with ``erf.probe.measure.measure_erf``; the float64 sums, the bootstrap group
sums (keyed by run-wide sample index, ``shard_groups``), sample, dead and non-finite counts are
then all-reduced, so every rank holds the full result. The map equals
the single-process one up to float64 summation order (the shard sums are added as whole
numbers instead of batch after batch: relative differences of order 1e-16).

Backends: NCCL for CUDA tensors, gloo for CPU ones (one process group serves both). Only
rank 0 should write files (``is_main_process``). Knows nothing of files or config; the Hydra glue
(one output folder for all ranks) is ``erf.app.torchrun``.

A rank that stops answering (stopped, hung, dead) must not hang the others forever: every
collective waits at most ``ERF_DIST_TIMEOUT_S`` seconds (environment; default 300), and before
each exchange of results all ranks meet at a gloo ``monitored_barrier``, so that rank 0 fails
with ``RankTimeout`` naming the ranks that did not arrive (``wait_for_ranks``).
Test-only: ``ERF_TEST_SIGSTOP_RANK=R`` makes rank R stop itself (SIGSTOP) just before it
exchanges its results; never set it otherwise.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from erf.device import resolve_device
from erf.probe.accumulate import dead_warning, group_count
from erf.probe.inputs import input_batches, random_sample
from erf.probe.measure import ProbeInterrupted, probe_units
from erf.probe.options import BATCHED_SEEDINGS, ProbeOptions, source_name
from erf.result import ERFResult


def launched() -> bool:
    """True when this process was started as one of several by torchrun (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


TIMEOUT_ENV = "ERF_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
SIGSTOP_ENV = "ERF_TEST_SIGSTOP_RANK"  # test-only (module docstring)
_monitor: list[Any] = []  # the gloo group of monitored_barrier, once joined (init_from_env)


class RankTimeout(RuntimeError):
    """Some ranks did not reach a collective within the timeout (``wait_for_ranks``)."""


def collective_timeout() -> float:
    """Seconds a collective waits for the other ranks: ``ERF_DIST_TIMEOUT_S`` (default 300);
    a value that is not a number of seconds > 0 is a one-line ValueError."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{TIMEOUT_ENV}={raw} is not allowed: expected a number of seconds > 0")
    return value


def init_from_env() -> None:
    """Join the process group that torchrun's environment variables describe (RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT): gloo for CPU tensors and, when CUDA is available,
    NCCL for CUDA tensors, each rank on GPU ``LOCAL_RANK``; every collective waits at most
    ``collective_timeout()`` seconds. A no-op when already joined."""
    if dist.is_initialized():
        return
    timeout = timedelta(seconds=collective_timeout())
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank < torch.cuda.device_count():
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="cpu:gloo,cuda:nccl", timeout=timeout)
        _monitor[:] = [dist.new_group(backend="gloo", timeout=timeout)]
    else:
        dist.init_process_group(backend="gloo", timeout=timeout)
        _monitor[:] = [None]  # the default group is gloo
    atexit.register(_leave)


def wait_for_ranks(what: str) -> None:
    """All ranks meet here before ``what`` (a collective): rank 0 waits at most
    ``collective_timeout()`` seconds and raises ``RankTimeout`` naming the ranks that did not
    come (stopped, hung or dead) instead of hanging. Needs a gloo group: in a process group
    joined elsewhere with another backend, the collective's own timeout applies instead."""
    if not active():
        return
    if not _monitor:
        if dist.get_backend() != "gloo":
            return
        _monitor[:] = [None]
    seconds = collective_timeout()
    try:
        dist.monitored_barrier(
            group=_monitor[0], timeout=timedelta(seconds=seconds), wait_all_ranks=True
        )
    except RuntimeError as exc:
        raise RankTimeout(_timeout_message(str(exc), what, seconds)) from None


def _timeout_message(text: str, what: str, seconds: float) -> str:
    """One line from a monitored_barrier failure: which ranks did not answer."""
    found = re.search(r"Ranks? ([\d, ]+?) failed to pass", text)
    rank = dist.get_rank()
    if found:
        late = found.group(1).replace(" ", "").strip(",")
        who = f"rank {late} did" if "," not in late else f"ranks {late} did"
    else:  # a rank > 0 learns only that rank 0 (or the barrier) went away
        who = f"rank {rank}: another rank did"
    return (
        f"{who} not answer within {seconds:g} s before {what} (stopped, hung or dead); "
        f"{TIMEOUT_ENV}={seconds:g} sets the wait"
    )


def _stop_for_test() -> None:
    """The test-only hook (module docstring): this rank stops itself."""
    if os.environ.get(SIGSTOP_ENV, "") == str(dist.get_rank()):
        os.kill(os.getpid(), signal.SIGSTOP)


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_and_size() -> tuple[int, int]:
    """(rank, world size) of the joined process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def active() -> bool:
    """True inside a process group of more than one process."""
    return rank_and_size()[1] > 1


def is_main_process() -> bool:
    """True on rank 0 (and without a process group): the one process that writes files."""
    return rank_and_size()[0] == 0


def shard(n_samples: int, batch_size: int, rank: int, world_size: int) -> range:
    """Sample indices of ``rank``'s shard: the batches ``0 .. ceil(n / batch_size) - 1`` are
    split into ``world_size`` contiguous runs whose lengths differ by at most one, the longer
    runs first; with fewer batches than ranks, the last ranks get empty shards (rank 0 never)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside 0..{world_size - 1}")
    n_batches = -(-int(n_samples) // int(batch_size))
    per_rank, extra = divmod(n_batches, world_size)
    first = rank * per_rank + min(rank, extra)
    stop = first + per_rank + (rank < extra)
    return range(first * batch_size, min(stop * batch_size, n_samples))


def shard_batches(
    inputs: str | Iterable,
    input_shape: tuple[int, int, int],
    samples: range,
    batch_size: int,
    seed: int,
) -> Iterator[torch.Tensor]:
    """CPU batches of the samples in ``samples``, with the single-process batch boundaries.

    A random source builds only its own samples (each from its (seed, index) generator), and
    so does a ``SeededSource`` (photos, through ``input_batches`` from ``samples.start``); an
    iterable (e.g. a seeded DataLoader, the same order on every rank) is read from the start
    and the samples before the shard are skipped.
    """
    if isinstance(inputs, str):
        for first in range(samples.start, samples.stop, batch_size):
            stop = min(first + batch_size, samples.stop)
            yield torch.stack(
                [random_sample(inputs, input_shape, seed, i) for i in range(first, stop)]
            )
        return
    yield from input_batches(
        inputs, input_shape, samples.stop, batch_size, seed=seed, start=samples.start
    )


def _device_for_rank(device: str | torch.device) -> torch.device:
    """The probe device; a CUDA device becomes this rank's GPU (``LOCAL_RANK``)."""
    dev = resolve_device(device)
    if dev.type != "cuda":
        return dev
    local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if local_rank >= gpus:
        raise ValueError(
            f"process {local_rank} of this node has no GPU of its own ({gpus} visible): "
            f"start at most {gpus} processes per node (torchrun --nproc_per_node={gpus})"
        )
    return torch.device("cuda", local_rank)


def shard_groups(part: ERFResult, start: int, n_groups: int) -> ERFResult:
    """A shard's result with its bootstrap groups keyed by run-wide sample index: the shard
    probed its samples ``start, start + 1, ...`` as ``0, 1, ...`` (group ``j % K_shard``);
    sample ``start + j`` belongs to group ``(start + j) % n_groups`` of the whole run
    (``n_groups`` = ``group_count(bootstrap_groups, run's n_samples)``), so the shard's groups
    are padded to ``n_groups`` and rotated by ``start``. No groups: ``part`` unchanged."""
    if part.groups is None or not n_groups:
        return part
    k = len(part.groups)
    groups = np.zeros((n_groups, *part.groups.shape[1:]), dtype=np.float64)
    group_n = np.zeros(n_groups, dtype=np.int64)
    groups[:k], group_n[:k] = part.groups, part.group_n
    shift = int(start) % n_groups
    return replace(
        part, groups=np.roll(groups, shift, axis=0), group_n=np.roll(group_n, shift, axis=0)
    )


def all_reduce_result(
    part: ERFResult | None, input_shape: Sequence[int], device: torch.device, n_groups: int = 0
) -> ERFResult:
    """Sum the ranks' partial results (a rank with an empty shard passes None): float64
    ``total``, ``total_sq`` and the ``n_groups`` bootstrap groups (run-wide, ``shard_groups``),
    ``n_samples``, ``n_nonfinite``, ``n_dead``, the group counts and samples seen. Target
    shape and position come from rank 0, whose shard is never empty. Every rank gets the sum;
    ``meta`` is this rank's (rank 0's for a rank with an empty shard, which has none of its
    own: it takes part in the run all the same), plus ``world_size``."""
    _stop_for_test()
    wait_for_ranks("the exchange of the probe's sums")
    sizes = tuple(int(v) for v in input_shape[1:])  # (H, W); (L,) or (D, H, W)
    sums = torch.zeros(2 + n_groups, *sizes, dtype=torch.float64, device=device)
    counts = torch.zeros(4 + n_groups, dtype=torch.int64, device=device)
    if part is not None:
        sums[0] = torch.as_tensor(part.total, device=device)
        sums[1] = torch.as_tensor(part.total_sq, device=device)
        numbers = [part.n_samples, part.n_nonfinite, part.meta["samples_seen"], part.n_dead]
        if n_groups:
            sums[2:] = torch.as_tensor(part.groups, device=device)
            numbers.extend(int(v) for v in part.group_n)
        counts[:] = torch.tensor(numbers, device=device)
    dist.all_reduce(sums)
    dist.all_reduce(counts)
    fields = ("input_shape", "target", "target_shape", "position", "channel", "reduce")
    head: list[Any] = [None]
    if dist.get_rank() == 0:
        head = [({k: getattr(part, k) for k in fields}, dict(part.meta))]
    dist.broadcast_object_list(head, src=0, device=torch.device("cpu"))
    numbers = counts.cpu().numpy()
    n_used, n_bad, seen, n_dead = (int(v) for v in numbers[:4])
    shared, meta0 = head[0]
    meta = dict(part.meta) if part is not None else meta0  # an empty shard: rank 0's meta
    meta.update(samples_seen=seen, world_size=dist.get_world_size())
    if part is not None:  # the dead-input warning counts every rank's inputs
        mine = dead_warning(part.n_dead, part.n_samples)
        warnings = [w for w in meta.get("probe_warnings", []) if w != mine]
        warnings.extend(filter(None, [dead_warning(n_dead, n_used)]))
        meta.pop("probe_warnings", None)
        if warnings:
            meta["probe_warnings"] = warnings
    return ERFResult(
        total=sums[0].cpu().numpy(),
        total_sq=sums[1].cpu().numpy(),
        n_samples=n_used,
        n_nonfinite=n_bad,
        meta=meta,
        groups=sums[2:].cpu().numpy() if n_groups else None,
        group_n=numbers[4:].astype(np.int64) if n_groups else None,
        n_dead=n_dead,
        **shared,
    )


def measure_erf_sharded(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    target: str | None = None,
    position: str | tuple[int, int] = "center",
    options: ProbeOptions | None = None,
    should_stop: Callable[[], bool] | None = None,
    **settings: Any,
) -> ERFResult:
    """``measure_erf`` with the samples sharded over the process group's ranks.

    Every rank calls it with the same arguments; each probes its shard (``shard``) and all
    of them return the all-reduced result. ``options`` (``ProbeOptions``, or its settings by
    name in ``settings``) are measure_erf's, except ``batch_size="auto"`` (the shards are cut
    at fixed batch boundaries), which is refused. Checkpoints are not kept: a stop request
    ends the run with a ValueError. The progress bar shows on rank 0 only. Without a process
    group this is plain ``measure_erf``.
    """
    options = ProbeOptions.of(options, **settings)
    options.refuse(("batch_size",), "the sharded (multi-process) probe")
    if options.seeding in BATCHED_SEEDINGS:  # the dead-channel count is per rank
        options.refuse(("seeding",), "the sharded (multi-process) probe")
    n_samples, batch_size, inputs, seed = (
        options.n_samples, int(options.batch_size), options.inputs, options.seed
    )  # fmt: skip
    rank, world = rank_and_size()
    dev = _device_for_rank(options.device)
    samples = shard(n_samples, batch_size, rank, world)
    n_groups = group_count(options.bootstrap_groups, n_samples)
    start = time.perf_counter()
    part = None
    if len(samples):
        mine = ProbeOptions.of(
            options,
            n_samples=len(samples),
            inputs=shard_batches(inputs, input_shape, samples, batch_size, seed),
            device=dev,
            progress=options.progress if rank == 0 else False,
        )
        try:
            (part,) = probe_units(
                model, input_shape, [(target, position)], mine, should_stop=should_stop
            )
        except ProbeInterrupted as stop:
            raise ValueError(
                f"rank {rank} stopped on request after {stop.partial.meta['samples_seen']} of "
                f"its {len(samples)} samples; multi-process runs keep no checkpoint: run again"
            ) from None
        fingerprint = part.meta["fingerprint"]
        fingerprint.update(n_samples=int(n_samples), seed=int(seed))
        fingerprint["inputs"] = source_name(inputs)
        part.meta["inputs"] = fingerprint["inputs"]
        part = shard_groups(part, samples.start, n_groups)
    if world == 1:
        return part
    result = all_reduce_result(part, input_shape, dev, n_groups)
    result.meta.update(
        device=str(dev),
        batch_size=int(batch_size),
        shard=[samples.start, samples.stop],
        wall_time_s=time.perf_counter() - start,
    )
    return result
