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
    start: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield CPU batches ``[B, C, H, W]`` holding samples ``start .. n_samples - 1`` (fewer if
    an iterable runs out). An iterable may yield tensors or (input, label, ...) tuples, as a
    DataLoader does; each batch must match ``input_shape``. With ``start`` > 0 (a resumed
    run) the first ``start`` samples are skipped; random batches keep their boundaries at
    multiples of ``batch_size`` counted from ``start``.
    """
    if isinstance(source, str):
        if source not in RANDOM_SOURCES:
            raise ValueError(f"unknown random input {source!r}; allowed: {list(RANDOM_SOURCES)}")
        for first in range(start, n_samples, batch_size):
            stop = min(first + batch_size, n_samples)
            yield torch.stack(
                [random_sample(source, input_shape, seed, i) for i in range(first, stop)]
            )
        return
    done, skip = 0, start
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
        if skip:
            dropped = min(skip, x.shape[0])
            x, skip, done = x[dropped:], skip - dropped, done + dropped
            if not x.shape[0]:
                continue
        x = x[: n_samples - done]
        done += x.shape[0]
        yield x
        if done >= n_samples:
            return


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_folder(
    root: str,
    size: tuple[int, int],
    batch_size: int,
    normalize: bool = True,
    seed: int = 0,
    shuffle: bool = True,
) -> Iterable:
    """A DataLoader over an ``ImageFolder`` (``root/<class>/<image>``), resized so the shorter
    side is max(size), centre-cropped to ``size`` (H, W), optionally ImageNet-normalised.
    The order is a seeded shuffle, so ``n_samples`` < dataset size takes a fixed random subset.
    """
    from pathlib import Path

    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"inputs.root={root} does not exist: put images in {path}/<class>/<image>.jpg "
            "(the torchvision ImageFolder layout)"
        )
    steps = [
        transforms.Resize(max(size)),
        transforms.CenterCrop(tuple(size)),
        transforms.ToTensor(),
    ]
    if normalize:
        steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    try:
        dataset = datasets.ImageFolder(str(path), transform=transforms.Compose(steps))
    except (FileNotFoundError, RuntimeError) as exc:
        raise FileNotFoundError(f"inputs.root={root}: {exc}") from None
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen)
