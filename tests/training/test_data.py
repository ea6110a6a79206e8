"""Datasets: generated tasks (pure, context-needing labels), CIFAR-10 and CamVid from small
files in their real on-disk formats, augmentation, and one-line errors for missing data."""

import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from erf.training.data import (
    CAMVID_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PALETTE,
    blobs_sample,
    build_data,
    crop_flip,
    keys_sample,
)

# --------------------------------------------------------------------------- generated data


def test_generated_samples_are_pure_functions_of_seed_split_and_index():
    a = build_data("generated_classification", train_size=5, val_size=5, seed=3)
    b = build_data("generated_classification", train_size=9, val_size=2, seed=3)
    x, y = a.train[4]
    x2, y2 = b.train[4]
    assert torch.equal(x, x2) and y == y2
    assert not torch.equal(a.train[4][0], a.val[4][0])  # splits differ
    c = build_data("generated_classification", train_size=5, val_size=5, seed=4)
    assert not torch.equal(c.train[4][0], x)  # seeds differ


def test_a_single_blob_has_the_area_and_extent_of_a_disc_of_the_labelled_radius():
    radii = (2.0, 3.5, 5.5, 8.0)
    seen = set()
    for index in range(24):
        x, label = blobs_sample(0, "train", index, noise=0.0, jitter=0.0, blobs=(1, 1))
        assert np.array_equal(x[0].numpy(), x[2].numpy())  # the same blob in every channel
        bright = x[0].numpy() > 0.5
        r = radii[label]
        # Oracle (geometry): a disc of radius r, whatever its centre, covers between
        # pi (r - 1/sqrt2)^2 and pi (r + 1/sqrt2)^2 pixel centres, and spans 2r - 1 .. 2r + 1
        # rows and columns.
        half_diagonal = math.sqrt(0.5)
        assert (
            math.pi * (r - half_diagonal) ** 2 <= bright.sum() <= math.pi * (r + half_diagonal) ** 2
        )
        rows, cols = np.nonzero(bright)
        for span in (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1):
            assert 2 * r - 1 <= span <= 2 * r + 1
        seen.add(label)
    assert seen == {0, 1, 2, 3}


def test_generated_classes_are_balanced_and_blob_area_does_not_give_the_class_away():
    data = build_data("generated_classification", train_size=400, val_size=1, noise=0.0)
    labels = np.array([data.train[i][1] for i in range(400)])
    areas = np.array([(data.train[i][0][0] > 0.5).sum().item() for i in range(400)])
    assert np.bincount(labels, minlength=4).min() > 70
    for c in range(3):  # neighbouring classes share bright areas (the count is random)
        lo, hi = areas[labels == c], areas[labels == c + 1]
        assert hi.min() < lo.max()


def test_keys_labels_are_the_class_of_the_nearest_key_and_ties_are_void():
    for index in range(6):
        x, y = keys_sample(1, "val", index, noise=0.0, size=48, min_separation=12, marker=3)
        img = x.numpy()
        # Recover the keys from the noise-free image: 3x3 squares of a palette colour.
        centres, classes = [], []
        for r in range(46):
            for c in range(46):
                patch = img[:, r : r + 3, c : c + 3]
                colour = patch[:, 1, 1]
                if np.abs(colour).min() > 0 and (patch == colour[:, None, None]).all():
                    cls = [i for i, (_, p) in enumerate(PALETTE) if np.allclose(np.sign(colour), p)]
                    centres.append((r + 1, c + 1))
                    classes.append(cls[0])
        assert centres
        labels = y.numpy()
        for r in range(0, 48, 5):
            for c in range(0, 48, 5):
                d = [math.dist((r, c), k) for k in centres]
                best = int(np.argmin(d))
                rival = min(
                    (d[i] for i in range(len(d)) if classes[i] != classes[best]), default=math.inf
                )
                if rival - d[best] < 1.0:
                    assert labels[r, c] == 255
                else:
                    assert labels[r, c] == classes[best]


def test_bad_generator_options_fail_with_a_value_error_naming_them():
    with pytest.raises(ValueError, match="radii"):
        build_data("generated_classification", radii=[20.0, 2.0])
    with pytest.raises(ValueError, match="ignore_index"):
        build_data("generated_segmentation", ignore_index=2)
    with pytest.raises(ValueError, match="unknown dataset"):
        build_data("imagenet")


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("generated_classification", {"blobs": [0, 2]}, r"^blobs=\[0, 2\] must be \[min, max\]"),
        ("generated_classification", {"blobs": [3, 2]}, r"^blobs=\[3, 2\] must be \[min, max\]"),
        ("generated_classification", {"jitter": -0.1}, r"^jitter=-0.1 must be in \[0, 1\)"),
        ("generated_classification", {"train_size": 0}, r"^dataset size must be >= 1, got 0"),
        ("generated_segmentation", {"classes": 8}, r"^classes=8: generated_segmentation has 2..7"),
        ("generated_segmentation", {"keys": [2, 1]}, r"^keys=\[2, 1\] must be \[min, max\]"),
    ],
)
def test_generator_options_out_of_range_are_refused_naming_the_option(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_data(name, **{"train_size": 2, "val_size": 2, **options})


def test_a_sample_of_an_unknown_split_is_refused():
    with pytest.raises(ValueError, match=r"^unknown split 'holdout'; allowed: \['train', 'val'"):
        blobs_sample(0, "holdout", 0)


def test_a_generated_dataset_holds_exactly_its_items():
    data = build_data("generated_classification", train_size=2, val_size=3)
    items = list(data.val)  # iteration stops at the IndexError past the end
    assert len(items) == 3
    for index, (x, y) in enumerate(items):
        expected, label = blobs_sample(0, "val", index)  # item i is sample i of the val split
        assert torch.equal(x, expected) and y == label
    for index in (3, -1):
        with pytest.raises(IndexError):
            data.val[index]


def test_with_a_single_key_every_pixel_takes_its_class_and_none_is_void():
    for index in range(3):
        x, y = keys_sample(2, "train", index, keys=(1, 1), noise=0.0, size=24, marker=3)
        # Oracle: the only coloured pixels are the key's; its colour's signs name its class.
        coloured = x.abs().sum(0) > 0
        assert coloured.sum() == 9
        colour = np.sign(x[:, coloured][:, 0].numpy())
        cls = [i for i, (_, p) in enumerate(PALETTE) if np.array_equal(colour, p)]
        assert torch.equal(y, torch.full((24, 24), cls[0]))


def test_bundles_state_plainly_that_the_data_is_generated():
    for name in ("generated_classification", "generated_segmentation"):
        data = build_data(name, train_size=2, val_size=2)
        assert data.generated and data.description.startswith("GENERATED data")
        assert data.summary()["generated"] is True


# --------------------------------------------------------------------------- augmentation


def test_crop_flip_moves_image_and_label_map_together():
    h = w = 6
    coords = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    x = coords.repeat(4, 2, 1, 1)
    y = coords.long().squeeze(1).repeat(4, 1, 1)
    augment = crop_flip(crop=(4, 4), flip=True)
    gen = torch.Generator().manual_seed(0)
    xa, ya = augment(x, y, gen)
    assert xa.shape == (4, 2, 4, 4) and ya.shape == (4, 4, 4)
    assert torch.equal(xa[:, 0].long(), ya)


def test_an_augmentation_that_would_do_nothing_is_none():
    assert crop_flip(pad=0, crop=None, flip=False) is None


def test_padded_crops_keep_the_size_and_are_reproducible():
    x = torch.randn(3, 3, 8, 8)
    y = torch.tensor([0, 1, 2])
    augment = crop_flip(pad=2)
    a = augment(x, y, torch.Generator().manual_seed(5))
    b = augment(x, y, torch.Generator().manual_seed(5))
    assert a[0].shape == x.shape and torch.equal(a[0], b[0]) and torch.equal(a[1], y)


# --------------------------------------------------------------------------- CIFAR-10


def _write_cifar(root, n_train=4, n_test=3):
    """Tiny CIFAR-10 python batches: the real pickle layout, with few images."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {}
    for i, name in enumerate(["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                              "data_batch_5", "test_batch"]):  # fmt: skip
        n = n_test if name == "test_batch" else n_train
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(n)]
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        images[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return images


def test_cifar10_reads_the_python_batches_when_md5_checks_are_off(tmp_path):
    images = _write_cifar(tmp_path)
    data = build_data("cifar10", root=str(tmp_path), verify=False, augment=False)
    assert (len(data.train), len(data.val)) == (20, 3)
    assert data.class_names[3] == "class3" and data.num_classes == 10
    x, y = data.val[1]
    raw, labels = images["test_batch"]
    assert y == labels[1]
    # Oracle: CHW layout of the flat row, scaled and normalised by hand.
    pixel = raw[1].reshape(3, 32, 32)[:, 5, 7] / 255.0
    expected = (pixel - np.array(CIFAR10_MEAN)) / np.array(CIFAR10_STD)
    np.testing.assert_allclose(x[:, 5, 7].numpy(), expected, rtol=1e-5)
    assert data.augment is None and not data.generated


class _WritesMarker:
    """Unpickling it creates the file ``path`` (what a crafted batch file would do)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_crafted_cifar10_batch_is_refused_before_anything_in_it_runs(tmp_path):
    _write_cifar(tmp_path)
    marker = tmp_path / "ran"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"data": _WritesMarker(marker), "labels": [0]}, f)
    with pytest.raises(ValueError, match="data_batch_3 refused, nothing in it was run") as e:
        build_data("cifar10", root=str(tmp_path), verify=False)
    assert not marker.exists() and "io.open" in str(e.value) and "\n" not in str(e.value)


def test_cifar10_subsets_are_seeded(tmp_path):
    _write_cifar(tmp_path)
    a = build_data("cifar10", root=str(tmp_path), verify=False, train_size=5, seed=1)
    b = build_data("cifar10", root=str(tmp_path), verify=False, train_size=5, seed=1)
    assert len(a.train) == 5 and torch.equal(a.train.images, b.train.images)


def test_cifar10_with_md5_checks_rejects_files_that_are_not_the_real_ones(tmp_path):
    _write_cifar(tmp_path)
    with pytest.raises(FileNotFoundError, match="data.verify=false"):
        build_data("cifar10", root=str(tmp_path))


def test_an_empty_cifar10_subset_is_refused(tmp_path):
    _write_cifar(tmp_path)
    with pytest.raises(ValueError, match="^subset size must be >= 1, got 0"):
        build_data("cifar10", root=str(tmp_path), verify=False, train_size=0)


def test_a_failed_cifar10_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    from urllib.error import URLError

    from torchvision.datasets import CIFAR10

    def offline(self):
        raise URLError("no network")  # what torchvision's download raises offline

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(FileNotFoundError) as info:
        build_data("cifar10", root=str(tmp_path), download=True)
    message = str(info.value)
    assert message.startswith(f"CIFAR-10 download into {tmp_path} failed (URLError)")
    assert f"put the python batches in {tmp_path / 'cifar-10-batches-py'}" in message
    assert list(tmp_path.iterdir()) == []


def test_cifar10_batches_of_the_wrong_shape_are_refused(tmp_path):
    _write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((3, 1024), np.uint8), "labels": [0, 1, 2]}, f)
    with pytest.raises(FileNotFoundError, match=r"hold \(3, 1024\) images and 3 labels, not"):
        build_data("cifar10", root=str(tmp_path), verify=False)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"data_batch_2 cannot be read \(EOFError"),  # an interrupted copy
        (pickle.dumps([1, 2]), r"data_batch_2 holds a list, not a dict"),
    ],
    ids=["empty", "not_a_dict"],
)
def test_a_cifar10_file_that_is_no_batch_is_refused_naming_it(tmp_path, content, message):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(content)
    with pytest.raises(FileNotFoundError, match=message) as info:
        build_data("cifar10", root=str(tmp_path), verify=False)
    assert "\n" not in str(info.value)


def test_missing_cifar10_says_where_to_put_it_and_how_to_download(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build_data("cifar10", root=str(tmp_path / "nope"))
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "data.download=true" in message
    assert "\n" not in message


# --------------------------------------------------------------------------- CamVid


def _write_camvid(root, splits=("train", "val"), n=2, size=(12, 16), mode="L"):
    rng = np.random.default_rng(1)
    masks = {}
    for split in splits:
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        for i in range(n):
            image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            mask = rng.integers(0, 12, size, dtype=np.uint8)  # 0..10 classes, 11 void
            Image.fromarray(image).save(root / split / f"f{i}.png")
            Image.fromarray(mask).convert(mode).save(root / f"{split}annot" / f"f{i}.png")
            masks[(split, i)] = (image, mask)
    return masks


def test_camvid_pairs_images_with_index_masks_and_ignores_void(tmp_path):
    files = _write_camvid(tmp_path)
    data = build_data("camvid", root=str(tmp_path), size=None)
    assert data.num_classes == 11 and data.class_names == CAMVID_CLASSES
    assert data.ignore_index == 11 and data.image_size == (12, 16)
    x, y = data.val[1]
    image, mask = files[("val", 1)]
    assert np.array_equal(y.numpy(), mask.astype(np.int64))  # 11 stays 11 = ignored
    expected = (image[3, 4] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[:, 3, 4].numpy(), expected, rtol=1e-5)


def test_camvid_with_fewer_classes_maps_other_labels_to_the_ignore_index(tmp_path):
    files = _write_camvid(tmp_path)
    data = build_data(
        "camvid", root=str(tmp_path), size=None, class_names=["a", "b", "c"], ignore_index=255
    )
    _, y = data.train[0]
    mask = files[("train", 0)][1].astype(np.int64)
    assert np.array_equal(y.numpy(), np.where(mask < 3, mask, 255))


def test_camvid_resizes_images_bilinearly_and_masks_by_nearest_neighbour(tmp_path):
    _write_camvid(tmp_path, size=(12, 16))
    data = build_data("camvid", root=str(tmp_path), size=[6, 8])
    x, y = data.train[0]
    assert x.shape == (3, 6, 8) and y.shape == (6, 8)
    assert set(y.unique().tolist()) <= set(range(12))  # nearest neighbour: no new values


def test_camvid_random_crops_for_training(tmp_path):
    _write_camvid(tmp_path)
    data = build_data("camvid", root=str(tmp_path), size=None, crop=[8, 8])
    x = torch.stack([data.train[i][0] for i in range(2)])
    y = torch.stack([data.train[i][1] for i in range(2)])
    xa, ya = data.augment(x, y, torch.Generator().manual_seed(0))
    assert xa.shape == (2, 3, 8, 8) and ya.shape == (2, 8, 8)


def test_missing_camvid_folder_says_what_layout_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        build_data("camvid", root=str(tmp_path / "CamVid"))
    message = str(info.value)
    assert "trainannot/" in message and str(tmp_path / "CamVid") in message
    assert "\n" not in message


def test_colour_masks_are_rejected_with_one_line(tmp_path):
    _write_camvid(tmp_path, mode="RGB")
    data = build_data("camvid", root=str(tmp_path), size=None)
    with pytest.raises(ValueError, match="class indices"):
        data.train[0]


def test_images_without_masks_are_named(tmp_path):
    _write_camvid(tmp_path)
    (tmp_path / "trainannot" / "f1.png").unlink()
    with pytest.raises(FileNotFoundError, match="f1.png"):
        build_data("camvid", root=str(tmp_path))


def test_a_mask_of_another_size_is_refused_not_resized(tmp_path):
    _write_camvid(tmp_path)
    Image.fromarray(np.zeros((6, 8), dtype=np.uint8)).save(tmp_path / "trainannot" / "f0.png")
    data = build_data("camvid", root=str(tmp_path), size=[6, 8])
    with pytest.raises(ValueError, match=r"f0.png is 8x6 but its image is 16x12"):
        data.train[0]


def test_all_void_masks_are_refused_in_one_line(tmp_path):
    _write_camvid(tmp_path)
    for i in range(2):
        Image.fromarray(np.full((12, 16), 11, np.uint8)).save(tmp_path / "trainannot" / f"f{i}.png")
    with pytest.raises(ValueError, match="CamVid train: all 2 masks .* are void") as err:
        build_data("camvid", root=str(tmp_path), size=None)
    assert "\n" not in str(err.value)


def test_a_camvid_split_without_images_is_named(tmp_path):
    _write_camvid(tmp_path)
    for png in (tmp_path / "val").glob("*.png"):
        png.unlink()
    with pytest.raises(
        FileNotFoundError, match=f"^CamVid: no \\*.png images in {tmp_path / 'val'}$"
    ):
        build_data("camvid", root=str(tmp_path))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"eval_split": "train"}, r"^eval_split='train'; allowed: val, test"),
        ({"ignore_index": 3}, r"^ignore_index=3 collides with a class index"),
        (
            {"size": None, "crop": [8, 20]},
            r"^data.crop=\[8, 20\] is larger than the images \(12, 16\)",
        ),
    ],
)
def test_camvid_options_that_cannot_hold_are_refused(tmp_path, options, message):
    _write_camvid(tmp_path)
    with pytest.raises(ValueError, match=message):
        build_data("camvid", root=str(tmp_path), **options)


def test_camvid_images_of_different_sizes_need_data_size(tmp_path):
    _write_camvid(tmp_path, splits=("train",), size=(12, 16))
    _write_camvid(tmp_path, splits=("val",), size=(10, 16))
    with pytest.raises(
        ValueError, match=r"different sizes \[\(10, 16\), \(12, 16\)\]; set data.size"
    ):
        build_data("camvid", root=str(tmp_path), size=None)
    data = build_data("camvid", root=str(tmp_path), size=[6, 8])
    assert data.image_size == (6, 8) and data.val[0][0].shape == (3, 6, 8)
