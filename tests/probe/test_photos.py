"""inputs=photos: the colour photographs shipped in scikit-image, as a seeded source.

Sample i of seed s is photo i % n_photos under a random resized crop drawn from (s, i), in
[0, 1] and then normalised with the given mean/std; the probe takes the source like a random
one (resumable by sample index)."""

import builtins
import json

import numpy as np
import pytest
import torch
from helpers.cli import last_line, run_module
from torch import nn

from erf import measure_erf
from erf.probe.photos import PHOTOS, PhotoSource, crop_box, load_photo

pytest.importorskip("skimage")  # erf.probe.photos imports it only when a photo is loaded

SHAPE = (3, 32, 48)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


def test_the_same_seed_and_index_give_the_identical_sample():
    a = PhotoSource().sample(SHAPE, seed=3, index=5)
    b = PhotoSource().sample(SHAPE, seed=3, index=5)
    assert torch.equal(a, b)


def test_different_indices_or_seeds_give_different_samples():
    source = PhotoSource()
    base = source.sample(SHAPE, 0, 0)
    assert not torch.equal(base, source.sample(SHAPE, 0, 1))
    assert not torch.equal(base, source.sample(SHAPE, 1, 0))


def test_more_samples_than_photos_are_distinct_crops_of_the_same_photo():
    source = PhotoSource()
    n = source.n_photos
    assert n == len(PHOTOS) >= 5
    first, again = source.sample(SHAPE, 0, 0), source.sample(SHAPE, 0, n)
    assert not torch.equal(first, again)


def test_sample_i_is_cropped_from_photo_i_mod_n_photos():
    index = len(PHOTOS) + 2  # photo number 2
    mixed = PhotoSource().sample(SHAPE, 0, index)
    alone = PhotoSource(names=(PHOTOS[2],)).sample(SHAPE, 0, index)
    assert torch.equal(mixed, alone)


def test_unnormalised_samples_are_float_images_of_the_probe_shape_in_0_1():
    x = PhotoSource().sample(SHAPE, 0, 1)
    assert x.shape == SHAPE and x.dtype == torch.float64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x.std()) > 0.01  # an image, not a constant


def test_normalised_samples_are_the_unnormalised_ones_minus_mean_over_std():
    raw = PhotoSource().sample(SHAPE, 2, 3).numpy()
    normalised = PhotoSource(mean=MEAN, std=STD).sample(SHAPE, 2, 3).numpy()
    expected = np.stack([(raw[c] - MEAN[c]) / STD[c] for c in range(3)])
    np.testing.assert_allclose(normalised, expected, rtol=1e-12, atol=1e-12)


def test_crops_keep_the_output_aspect_at_half_to_full_scale_inside_the_photo():
    gen = torch.Generator().manual_seed(0)
    photo, out = (300, 451), (32, 48)
    fit = min(300 / 32, 451 / 48)  # the largest 2:3 box in the photo is 288 x 432
    for _ in range(200):
        top, left, h, w, _flip = crop_box(photo, out, gen)
        assert top >= 0 and top + h <= 300 and left >= 0 and left + w <= 451
        assert 0.5 * 32 * fit - 1 <= h <= 32 * fit + 1
        assert abs(w / h - 48 / 32) < 0.02


def test_photos_are_rgb_only():
    with pytest.raises(ValueError, match="inputs.channels must be 3"):
        PhotoSource().sample((1, 16, 16), 0, 0)


def test_an_unknown_photo_name_is_one_line():
    with pytest.raises(ValueError, match="unknown photos \\['camera'\\]"):
        PhotoSource(names=("camera",))


def test_without_scikit_image_the_error_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_skimage(name, *args, **kwargs):
        if name.startswith("skimage"):
            raise ImportError("no skimage")
        return real_import(name, *args, **kwargs)

    load_photo.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_skimage)
    try:
        with pytest.raises(ImportError, match=r"pip install 'erf-lab\[photos\]'"):
            load_photo("coffee")
    finally:
        load_photo.cache_clear()


def _three_convs():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
    )  # fmt: skip


KW = dict(n_samples=4, batch_size=2, device="cpu", dtype=torch.float64, seed=1)


def test_measure_erf_on_photos_gives_a_finite_map_inside_the_7x7_trf():
    result = measure_erf(_three_convs(), (3, 32, 32), inputs=PhotoSource(mean=MEAN, std=STD), **KW)
    assert result.n_samples == 4
    assert np.isfinite(result.map).all() and result.map.sum() > 0
    rows, cols = np.nonzero(result.map)
    assert rows.min() >= 16 - 3 and rows.max() <= 16 + 3  # centre unit (16, 16), 3 convs 3x3
    assert cols.min() >= 16 - 3 and cols.max() <= 16 + 3


def test_a_photo_probe_resumed_from_a_checkpoint_gives_the_bitwise_same_map():
    source = PhotoSource(mean=MEAN, std=STD)
    whole = measure_erf(_three_convs(), (3, 32, 32), inputs=source, **KW)
    partials = []
    measure_erf(
        _three_convs(), (3, 32, 32), inputs=source, on_checkpoint=partials.append,
        checkpoint_every=1, **KW,
    )  # fmt: skip
    assert partials[0].meta["samples_seen"] == 2
    resumed = measure_erf(_three_convs(), (3, 32, 32), inputs=source, resume=partials[0], **KW)
    assert np.array_equal(resumed.total, whole.total)
    assert np.array_equal(resumed.total_sq, whole.total_sq)


def test_erf_run_with_inputs_photos_records_the_photos_and_normalisation(tmp_path):
    out = tmp_path / "photos"
    proc = run_module(
        "erf.run", "inputs=photos", "model=conv_stack", "model.depth=2", "model.channels=2",
        "model.in_channels=3", "inputs.size=[32,32]", "probe.n_samples=2", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert last_line(proc.stdout) == f"results: {out}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["inputs"] == "photos"
    assert metrics["photos"] == list(PHOTOS) and metrics["n_photos"] == len(PHOTOS)
    assert metrics["crops"] == "random resized, scale [0.5, 1], flip"
    assert metrics["inputs_normalization"] == {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "source": "ImageNet default",  # a ConvStack records no normalisation of its own
    }
    assert metrics["trf_size"] == 5.0
