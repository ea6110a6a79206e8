"""Input sources for the probe: seeded random batches, seeded sample sources (objects with a
``sample(shape, seed, index)`` method, such as ``erf.probe.photos.PhotoSource``), or any
iterable of batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from erf.normalization import IMAGENET_MEAN, IMAGENET_STD

RANDOM_SOURCES = ("gaussian", "uniform")


@runtime_checkable
class SeededSource(Protocol):
    """An input source whose sample ``index`` of ``seed`` is a pure function of the two (like
    the random sources), so runs can be resumed and sharded by sample index."""

    def sample(self, shape: tuple[int, int, int], seed: int, index: int) -> torch.Tensor:
        """Sample ``index`` of ``seed``: a float CPU tensor of ``shape`` (C, H, W)."""
        ...


def is_seeded(source: Any) -> bool:
    """Whether ``source`` makes every sample from (seed, index): a random source name or a
    ``SeededSource``; an iterable is read in order instead."""
    return isinstance(source, (str, SeededSource))


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of sample ``index`` of ``seed`` (one per sample, for every seeded
    source)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(index))


def random_sample(kind: str, shape: tuple[int, ...], seed: int, index: int) -> torch.Tensor:
    """Random input number ``index`` of ``seed``: a float64 CPU tensor of ``shape``.

    Every sample has its own generator seeded from (seed, index), so sample ``i`` is the same
    whatever the batch size, and a run can be split, resumed or sharded without changing any
    sample. "gaussian" is N(0, 1); "uniform" is U[-1, 1) (zero-mean like the Gaussian, so
    ReLU nets see both signs).
    """
    gen = sample_generator(seed, index)
    if kind == "gaussian":
        return torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "uniform":
        return torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0
    raise ValueError(f"unknown random input {kind!r}; allowed: {list(RANDOM_SOURCES)}")


def input_batches(
    source: str | SeededSource | Iterable,
    input_shape: tuple[int, int, int],
    n_samples: int,
    batch_size: int,
    seed: int = 0,
    start: int = 0,
) -> Iterator[torch.Tensor]:
    """Yield CPU batches ``[B, C, H, W]`` (``[B, *input_shape]``) holding samples
    ``start .. n_samples - 1`` (fewer if an iterable runs out). A random source name or a
    ``SeededSource`` makes each sample from (seed, index); an iterable may yield tensors or
    (input, label, ...) tuples, as a DataLoader does; each batch must match ``input_shape``.
    With ``start`` > 0 (a resumed run) the first ``start`` samples are skipped; seeded
    batches keep their boundaries at multiples of ``batch_size`` counted from ``start``.
    """
    if is_seeded(source):
        if isinstance(source, str) and source not in RANDOM_SOURCES:
            raise ValueError(f"unknown random input {source!r}; allowed: {list(RANDOM_SOURCES)}")
        make = (
            (lambda i: random_sample(source, input_shape, seed, i))
            if isinstance(source, str)
            else (lambda i: source.sample(tuple(input_shape), seed, i))
        )
        for first in range(start, n_samples, batch_size):
            yield torch.stack([make(i) for i in range(first, min(first + batch_size, n_samples))])
        return
    done, skip = 0, start
    for item in source:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input batches must be tensors, got {type(x).__name__}")
        if x.dim() == len(input_shape):  # one sample without its batch dim
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


def _as_rgb(im):
    """A PIL image as 8-bit RGB; 16- and 32-bit integer grey levels are scaled down to 0-255
    (``convert("RGB")`` would clip every value above 255 to white)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        import numpy as np
        from PIL import Image

        values = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return im.convert("RGB")


def _image_files(root: str):
    """ImageFolder's file check: an image suffix, a regular file (a named pipe called
    ``x.png`` would block the run) and each file once, by its real path (a symlink loop
    would list one image again at every level)."""
    import os
    import stat

    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension

    seen: set[str] = set()

    def valid(file: str) -> bool:
        if not has_file_allowed_extension(file, IMG_EXTENSIONS):
            return False
        try:
            regular = stat.S_ISREG(os.stat(file).st_mode)
        except OSError:  # a dangling link, a loop
            return False
        real = os.path.realpath(file)
        if not regular or real in seen:
            return False
        seen.add(real)
        return True

    return valid


def _image_loader(root: str):
    """ImageFolder's loader, with an image PIL cannot decode named in one ValueError."""

    def load(file: str):
        from PIL import Image

        try:
            with Image.open(file) as im:
                return _as_rgb(im)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            # PIL: truncated, corrupt, unknown format, or more pixels than PIL allows
            raise ValueError(
                f"inputs.root={root}: cannot read image {file} ({' '.join(str(exc).split())}); "
                "remove or replace it"
            ) from None

    return load


def image_folder(
    root: str,
    size: tuple[int, int],
    batch_size: int,
    normalize: bool = True,
    seed: int = 0,
    shuffle: bool = True,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    n_samples: int | None = None,
) -> Iterable:
    """A DataLoader over an ``ImageFolder`` (``root/<class>/<image>``), resized so the shorter
    side is max(size), centre-cropped to ``size`` (H, W), in [0, 1], then (``normalize``)
    normalised with ``mean``/``std`` (default ImageNet's; the app passes the model's own).
    The order is a seeded shuffle, so ``n_samples`` < dataset size takes a fixed random subset.

    Only regular files with an image suffix count, each once by its real path (no named
    pipes, no copies through symlink loops); 16-bit grey PNGs are scaled to 8 bits, not
    clipped. Refused in one line (ValueError): a folder with fewer images than ``n_samples`` (the
    probe would silently average fewer), and, when the loader reaches it, an image that
    cannot be decoded (corrupt or truncated), named by its path: a bad file fails the run
    rather than being skipped, so every map averages exactly the images it says.
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
        steps.append(transforms.Normalize(mean, std))
    try:
        dataset = datasets.ImageFolder(
            str(path),
            transform=transforms.Compose(steps),
            loader=_image_loader(root),
            is_valid_file=_image_files(root),
        )
    except (FileNotFoundError, RuntimeError) as exc:
        raise FileNotFoundError(f"inputs.root={root}: {exc}") from None
    if n_samples is not None and len(dataset) < int(n_samples):
        raise ValueError(
            f"inputs.root={root} has {len(dataset)} images but probe.n_samples={n_samples}: "
            f"set probe.n_samples={len(dataset)} or fewer, or add images"
        )
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen)
