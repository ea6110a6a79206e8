"""Real-image inputs from a folder (erf.probe.inputs.image_folder): only regular image files,
each once; 16-bit grey levels scaled, not clipped."""

import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from erf.probe.inputs import image_folder


def _folder(root, n=2):
    (root / "a").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            root / "a" / f"{i}.png"
        )
    return root


def _count(root):
    return len(image_folder(str(root), (8, 8), batch_size=4).dataset)


def test_a_named_pipe_called_png_is_not_an_image(tmp_path):
    root = _folder(tmp_path / "images")
    os.mkfifo(root / "a" / "pipe.png")  # opening it would block until a writer comes
    assert _count(root) == 2


def test_a_symlink_loop_lists_each_image_once(tmp_path):
    root = _folder(tmp_path / "images")
    os.symlink(root / "a", root / "a" / "loop")  # a/loop -> a: a/loop/loop/... to ELOOP
    assert _count(root) == 2
    with pytest.raises(ValueError, match="has 2 images but probe.n_samples=3"):
        image_folder(str(root), (8, 8), batch_size=4, n_samples=3)


def test_a_16_bit_grey_png_is_scaled_to_the_unit_range_not_clipped_to_white(tmp_path):
    (tmp_path / "g" / "a").mkdir(parents=True)
    level = np.full((8, 8), 32768, dtype=np.uint16)  # half of 65535
    Image.fromarray(level).save(tmp_path / "g" / "a" / "half.png")
    loader = image_folder(str(tmp_path / "g"), (8, 8), batch_size=1, normalize=False)
    (x, _) = next(iter(loader))
    torch.testing.assert_close(x, torch.full_like(x, 128 / 255))


def test_a_decompression_bomb_is_refused_in_one_line_naming_the_file(tmp_path, monkeypatch):
    from PIL import Image

    root = _folder(tmp_path / "images", n=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 8 x 8 = 64 > 2 x 10: a "bomb"
    loader = image_folder(str(root), (8, 8), batch_size=1)
    with pytest.raises(ValueError, match=r"cannot read image .*0\.png") as e:
        next(iter(loader))
    assert "\n" not in str(e.value)


def test_a_dangling_symlink_called_png_is_not_an_image(tmp_path):
    root = _folder(tmp_path / "images")
    os.symlink(tmp_path / "gone.png", root / "a" / "dead.png")
    assert _count(root) == 2


@pytest.mark.parametrize(
    "tree, message",
    [([], "Couldn't find any class folder"), (["a"], "Found no valid file for the classes a")],
    ids=["no-class-folder", "no-image"],
)
def test_a_folder_without_images_is_refused_in_one_line_naming_the_root(tmp_path, tree, message):
    for folder in tree:
        (tmp_path / "images" / folder).mkdir(parents=True)
    (tmp_path / "images").mkdir(exist_ok=True)
    with pytest.raises(
        FileNotFoundError, match=f"inputs.root={re.escape(str(tmp_path))}/images: {message}"
    ) as e:
        image_folder(str(tmp_path / "images"), (8, 8), batch_size=4)
    assert "\n" not in str(e.value)
