"""The probe's input batches: fixed-size or "auto" batches (the largest that fits, halved after
an out-of-memory error), regenerated at the new size so batch boundaries stay those of a
fixed-size run."""

from __future__ import annotations

from pathlib import Path

import torch

from erf.probe.inputs import input_batches, is_seeded

AUTO_BATCH_MAX = 1024  # batch_size="auto" never starts above this (nor above n_samples)
AUTO_MEMORY_FRACTION = 0.5  # ... and aims at this fraction of the free memory


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA out-of-memory, or a CPU allocation failure."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        s in text for s in ("out of memory", "can't allocate memory", "not enough memory")
    )


def with_twin(x: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, int]:
    """``x`` and its number of samples along ``dim``; a batch of one gets a copy of its sample
    appended (the caller keeps the first sample's result only).

    Why: on CPU, torch 2.14.1 returns wrong input gradients through an eval-mode BatchNorm2d
    for a batch of one when the gradient reaching it is not contiguous: a token readout
    ``y.flatten(2).transpose(1, 2)[:, k].sum().backward()`` (OpenERF's way; off by up to
    100 % against the analytic gradient), and erf's per-channel seeds (a batched backward,
    ``seeding="per_channel_normalised"``), whose map came back shifted by a row
    (tests/probe/test_batches.py). Batches of two or more are right. The probe runs in eval
    mode, so the twin changes nothing else: every sample's gradient is its own.
    """
    n = x.shape[dim]
    if n != 1:
        return x, n
    return torch.cat([x, x], dim=dim), 1


def after_out_of_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class BatchStream:
    """The probe's input batches; after an out-of-memory error ``shrink`` serves the failed
    batch again in halves (seeded sources, random or photos, are regenerated from the failed
    sample on, at the new size, so the batch boundaries are those of a fixed-size run at that
    size).

    ``limit``: the batch size (None: an iterable's own batches); ``used``: the largest batch
    that went through; ``retries``: out-of-memory errors recovered from.
    """

    def __init__(self, source, input_shape, n_samples, batch_size, seed, start, auto):
        self.source, self.input_shape, self.n_samples, self.seed = (
            source,
            input_shape,
            n_samples,
            seed,
        )
        self.random = is_seeded(source)  # samples made from (seed, index): regenerable
        self.fixed_iterable = not self.random and not auto  # its batches, as they come
        if self.random:  # "auto" starts at the cap until estimate_batch_size resizes
            self.limit = min(n_samples, AUTO_BATCH_MAX) if batch_size == "auto" else int(batch_size)
        else:
            self.limit = None if auto else int(batch_size)
        self.index = start
        self.used = 0
        self.retries = 0
        self._open()

    def _open(self) -> None:
        self._iter = iter(
            input_batches(
                self.source,
                self.input_shape,
                self.n_samples,
                self.limit or 1,
                self.seed,
                start=self.index,
            )
        )
        self.pending: torch.Tensor | None = None

    def first_sample(self) -> torch.Tensor | None:
        """The next sample alone (a fresh draw for random sources; nothing is consumed)."""
        one = input_batches(self.source, self.input_shape, self.n_samples, 1, self.seed, self.index)
        return next(iter(one), None)

    def resize(self, size: int) -> None:
        self.limit = max(1, int(size))
        self._open()

    def next(self) -> torch.Tensor | None:
        if self.pending is None or not len(self.pending):
            self.pending = next(self._iter, None)
            if self.pending is None:
                return None
        if self.fixed_iterable or self.limit is None:
            return self.pending
        return self.pending[: self.limit]

    def done(self, n: int) -> None:
        self.pending = self.pending[n:]
        self.index += n
        self.used = max(self.used, n)

    def shrink(self, failed: int) -> None:
        self.retries += 1
        self.limit = max(1, failed // 2)
        if self.random:
            self._open()


def estimate_batch_size(step, stream: BatchStream, device: torch.device, n_samples: int) -> int:
    """Largest batch expected to fit: the bytes one sample's forward keeps for the backward
    (``saved_tensors_hooks``) plus its input, times two for the backward's buffers, into
    ``AUTO_MEMORY_FRACTION`` of the free memory (CUDA: ``mem_get_info``; CPU:
    ``cpu_available_bytes``, a container's limit included). Out-of-memory errors halve it
    later if it was too optimistic."""
    per_sample = _per_sample_bytes(step, stream)
    if per_sample is None:
        return 1
    free = _free_bytes(device)
    return max(1, min(n_samples, AUTO_BATCH_MAX, int(AUTO_MEMORY_FRACTION * free // per_sample)))


def _per_sample_bytes(step, stream: BatchStream) -> int | None:
    """Bytes a sample needs at the peak of its backward: what its forward keeps for the
    backward (``saved_tensors_hooks``), plus four of its largest saved tensor (the gradients
    in flight and the allocator's slack: calibrated against the measured peak of five real
    jobs, experiments/memory), plus its input; None without a sample to try."""
    x = stream.first_sample()
    if x is None:
        return None
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(x[:1])  # run as a pair (``with_twin``): what it keeps is two samples' worth
    kept, largest = sum(storages.values()) // 2, max(storages.values(), default=0) // 2
    return kept + 4 * largest + x[:1].nelement() * 8 + 1


def _free_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory plus what torch's caching allocator
    holds unused; on the CPU ``cpu_available_bytes``."""
    if device.type == "cuda":
        unused = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + unused
    return cpu_available_bytes()


def cpu_available_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes this process may still allocate on the CPU: the host's ``MemAvailable``, or less
    when its cgroup (a container's memory limit, v2 or v1) has less room left."""
    host = 4 << 30  # no /proc (macOS, Windows): assume 4 GiB
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    room = cgroup_room(cgroup_root)
    return host if room is None else min(host, room)


def cgroup_room(root: Path, self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The memory limit of this process's cgroup minus its usage, or None without a limit.
    The process's cgroup is read from ``/proc/self/cgroup``: v2 (line ``0::/path``):
    ``memory.max`` and ``memory.current`` in ``root/path``; v1 (line ``N:memory:/path``):
    ``memory.limit_in_bytes`` and ``memory.usage_in_bytes`` in ``root/memory/path`` (a limit
    near 2^63 means none). The root folders are tried too."""
    v2, v1 = [root], [root / "memory"]
    try:
        for line in self_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controllers == "":
                v2.insert(0, root / path.lstrip("/"))
            elif "memory" in controllers.split(","):
                v1.insert(0, root / "memory" / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    for folder in v2:
        limit, used = _read_int(folder / "memory.max"), _read_int(folder / "memory.current")
        if limit is not None and used is not None:
            return max(0, limit - used)
    for folder in v1:
        limit = _read_int(folder / "memory.limit_in_bytes")
        used = _read_int(folder / "memory.usage_in_bytes")
        if limit is not None and used is not None and limit < 1 << 62:
            return max(0, limit - used)
    return None


def _read_int(path: Path) -> int | None:
    """The integer in a cgroup file, None when missing or "max" (no limit)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_refusal(step, stream: BatchStream, device: torch.device, batch_size: int) -> str | None:
    """For a fixed ``batch_size``: why it would not fit (the estimate of ``estimate_batch_size``
    for that many samples against the free memory, the cgroup's limit included), with the
    batch size that would, or None. Only a random source can lend a sample for the estimate."""
    per_sample, free = _per_sample_bytes(step, stream), _free_bytes(device)
    if per_sample is None or batch_size * per_sample <= free:
        return None
    fits = max(1, int(free // per_sample))
    gib = 1 << 30
    return (
        f"probe.batch_size={batch_size} needs about {batch_size * per_sample / gib:.1f} GiB per "
        f"batch ({per_sample / gib:.2f} GiB a sample), more than the {free / gib:.1f} GiB free "
        f"on {device.type} (container limits included): use probe.batch_size={fits} or "
        "probe.batch_size=auto"
    )
