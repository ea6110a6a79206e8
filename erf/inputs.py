"""Input sources for the probe: seeded random batches, or any iterable of batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

RANDOM_SOURCES = ("gaussian", "uniform")


def random_sample(kind: str, shape: tuple[int, ...], seed: int, index: int) -> torch.Tensor:
    """Random input number ``index`` of ``seed``: a float64 CPU tensor of ``shape``.

    Every sample has its own generator seeded from (seed, index), so sample ``i`` is the same
    whatever the batch size, and a run can be split, resumed or sharded without changing any
    sample. "gaussian" is N(0, 1); "uniform" is U[-1, 1) (zero-mean like the Gaussian, so
    ReLU nets see both signs).
    """
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))
    if kind == "gaussian":
        return torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "uniform":
        return torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0
    raise ValueError(f"unknown random input {kind!r}; allowed: {list(RANDOM_SOURCES)}")


def input_batches(
    source: str | Iterable,
    input_shape: tuple[int, int, int],
    n_samples: int,
    batch_size: int,
    seed: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield CPU batches ``[B, C, H, W]`` holding ``n_samples`` inputs in total (fewer if an
    iterable runs out). An iterable may yield tensors or (input, label, ...) tuples, as a
    DataLoader does; each batch must match ``input_shape``.
    """
    if isinstance(source, str):
        if source not in RANDOM_SOURCES:
            raise ValueError(f"unknown random input {source!r}; allowed: {list(RANDOM_SOURCES)}")
        for start in range(0, n_samples, batch_size):
            stop = min(start + batch_size, n_samples)
            yield torch.stack(
                [random_sample(source, input_shape, seed, i) for i in range(start, stop)]
            )
        return
    done = 0
    for item in source:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input batches must be tensors, got {type(x).__name__}")
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"input batch has shape {tuple(x.shape[1:])}, expected {tuple(input_shape)}"
            )
        x = x[: n_samples - done]
        done += x.shape[0]
        yield x
        if done >= n_samples:
            return
