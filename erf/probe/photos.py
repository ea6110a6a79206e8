"""Real photographs without a download: the colour photos scikit-image ships in its wheel.

``PhotoSource`` is a seeded sample source (``erf.probe.inputs.SeededSource``): sample ``i`` of
seed ``s`` is photo ``i % n_photos`` under a random resized crop drawn from the (s, i)
generator, so ``n_samples`` above the number of photos gives distinct crops, and a run can be
split, resumed or sharded by sample index exactly as with the random sources.

scikit-image is optional (``pip install 'erf-lab[photos]'``) and imported only when a photo
is first loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from erf.probe.inputs import sample_generator

# skimage.data colour photographs that load from the wheel (no pooch download), as
# (name, loader). "cat" is the same picture as "chelsea", so only chelsea is used; the
# grayscale images (camera, coins, moon, ...) and the synthetic ones are left out.
# motorcycle is the left view of skimage.data.stereo_motorcycle().
PHOTO_LOADERS: dict[str, tuple[str, int | None]] = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),
    "rocket": ("rocket", None),
    "motorcycle": ("stereo_motorcycle", 0),
    "hubble_deep_field": ("hubble_deep_field", None),
    "immunohistochemistry": ("immunohistochemistry", None),
}
PHOTOS = tuple(PHOTO_LOADERS)
MIN_SCALE = 0.5  # a crop's side is between MIN_SCALE and 1 of the largest box that fits
CROPS = f"random resized, scale [{MIN_SCALE:g}, 1], flip"
MISSING = "inputs=photos needs scikit-image: pip install 'erf-lab[photos]'"


@functools.cache
def load_photo(name: str) -> torch.Tensor:
    """Photo ``name`` of ``PHOTOS`` as a float64 [3, H, W] tensor in [0, 1] (cached)."""
    if name not in PHOTO_LOADERS:
        raise ValueError(f"unknown photo {name!r}; allowed: {list(PHOTOS)}")
    try:
        from skimage import data
    except ImportError:
        raise ImportError(MISSING) from None
    attr, part = PHOTO_LOADERS[name]
    image = getattr(data, attr)()
    if part is not None:
        image = image[part]
    pixels = torch.from_numpy(image[..., :3].copy()).permute(2, 0, 1)
    return pixels.to(torch.float64) / 255.0


def crop_box(
    photo_hw: tuple[int, int], out_hw: tuple[int, int], gen: torch.Generator
) -> tuple[int, int, int, int, bool]:
    """A random crop (top, left, height, width, flip) of a ``photo_hw`` photo for an
    ``out_hw`` output: the largest box of the output's aspect ratio that fits the photo,
    scaled by U[MIN_SCALE, 1] (so for a square output its side is that fraction of the photo's
    shorter side), at a uniform random position, flipped left-right with probability 1/2."""
    (ph, pw), (oh, ow) = photo_hw, out_hw
    fit = min(ph / oh, pw / ow)  # the largest box of the output's aspect: (oh * fit, ow * fit)
    scale = MIN_SCALE + (1.0 - MIN_SCALE) * torch.rand((), generator=gen, dtype=torch.float64)
    h = max(1, min(ph, round(float(scale) * oh * fit)))
    w = max(1, min(pw, round(float(scale) * ow * fit)))
    top = int(torch.randint(0, ph - h + 1, (), generator=gen))
    left = int(torch.randint(0, pw - w + 1, (), generator=gen))
    flip = bool(torch.rand((), generator=gen) < 0.5)
    return top, left, h, w, flip


@dataclass(frozen=True)
class PhotoSource:
    """The scikit-image photos as probe inputs (pass it as ``inputs=``).

    ``names``: the photos used, in order (default all of ``PHOTOS``); ``mean``/``std``: per
    channel normalisation ``(x - mean) / std`` of the [0, 1] crops (the model's own,
    ``erf.nets.zoo.input_normalization``), or None for none.
    """

    names: tuple[str, ...] = PHOTOS
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        names = tuple(self.names)
        unknown = [n for n in names if n not in PHOTO_LOADERS]
        if not names or unknown:
            raise ValueError(f"unknown photos {unknown or '(none)'}; allowed: {list(PHOTOS)}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("PhotoSource needs both mean and std, or neither")
        object.__setattr__(self, "names", names)
        if self.mean is not None:
            object.__setattr__(self, "mean", _channels(self.mean, "mean"))
            object.__setattr__(self, "std", _channels(self.std, "std"))
            if min(self.std) <= 0:
                raise ValueError(f"PhotoSource std must be > 0, got {list(self.std)}")

    @property
    def n_photos(self) -> int:
        return len(self.names)

    def sample(self, shape: tuple[int, int, int], seed: int, index: int) -> torch.Tensor:
        """Sample ``index`` of ``seed``: photo ``index % n_photos``, cropped (``crop_box``
        from the (seed, index) generator), resized to ``shape`` (3, H, W) with antialiased
        bilinear interpolation, normalised; float64, CPU."""
        c, h, w = (int(v) for v in shape)
        if c != 3:
            raise ValueError(f"photos are RGB: inputs.channels must be 3, got {c}")
        photo = load_photo(self.names[int(index) % self.n_photos])
        top, left, ch, cw, flip = crop_box(
            tuple(photo.shape[1:]), (h, w), sample_generator(seed, index)
        )
        crop = photo[:, top : top + ch, left : left + cw]
        if flip:
            crop = crop.flip(-1)
        x = F.interpolate(crop[None], size=(h, w), mode="bilinear", antialias=True)[0]
        x = x.clamp(0.0, 1.0)
        if self.mean is not None:
            mean = torch.tensor(self.mean, dtype=x.dtype).view(3, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype).view(3, 1, 1)
            x = (x - mean) / std
        return x

    def describe(self) -> dict[str, Any]:
        """What the inputs were, for metrics.json: photos, n_photos and the crops."""
        return {"photos": list(self.names), "n_photos": self.n_photos, "crops": CROPS}


def _channels(values: Sequence[float], key: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise ValueError(f"PhotoSource {key} needs 3 values (RGB), got {list(values)}")
    return values
