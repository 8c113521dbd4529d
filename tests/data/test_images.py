"""Images as a data shape: the layout that puts x and y back in place, npz files of images (whole images
or completion with an x_mask) and their validation, and stratified splits."""

import re

import numpy as np
import pytest

from infovae.data import ImageLayout, load_npz, make_digits, split_dataset
from infovae.errors import ConfigError, DataError
from infovae.training.config import parse_config


def test_layout_from_a_mask_puts_x_and_y_back_in_place():
    rng = np.random.default_rng(0)
    images = rng.random((7, 2, 3, 4))
    given = rng.random((3, 4)) < 0.4  # the same pixels of both channels
    layout = ImageLayout.from_mask((2, 3, 4), given)
    flat = images.reshape(7, -1)
    x, y = flat[:, layout.x_pixels], flat[:, layout.y_pixels]
    assert x.shape[1] == 2 * given.sum() and x.shape[1] + y.shape[1] == 24
    np.testing.assert_array_equal(layout.to_images(x, y), images)
    np.testing.assert_array_equal(layout.given, np.broadcast_to(given, (2, 3, 4)))
    # Leading dims broadcast: one x against several decoder outputs.
    assert layout.to_images(x[0], np.stack([y[0], y[1]])).shape == (2, 2, 3, 4)
    with pytest.raises(DataError, match="must end in"):
        layout.to_images(y, x)


def test_whole_image_layout_ignores_a_condition_outside_the_image():
    layout = ImageLayout.whole((1, 2, 2))
    y = np.arange(8.0).reshape(2, 4)
    images = layout.to_images(np.ones((2, 5)), y)
    np.testing.assert_array_equal(images, y.reshape(2, 1, 2, 2))
    assert not layout.completes and not layout.given.any()


def save(tmp_path, **arrays):
    path = tmp_path / "images.npz"
    np.savez(path, **arrays)
    return path


@pytest.fixture
def images():
    return (np.random.default_rng(1).random((20, 1, 4, 6)) > 0.5).astype(np.float32)


def test_npz_whole_images(tmp_path, images):
    labels = np.arange(20) % 3
    data = load_npz(save(tmp_path, y=images.reshape(20, -1), labels=labels), "bernoulli", image_shape=(1, 4, 6))
    np.testing.assert_array_equal(data.info["image"].to_images(data.x, data.y), images)
    # With x a condition outside the image (a one-hot class, say) y is still the whole image.
    data = load_npz(save(tmp_path, x=np.eye(3)[labels], y=images.reshape(20, -1)), "bernoulli", image_shape=(1, 4, 6))
    assert not data.info["image"].completes and data.x_dim == 3


@pytest.mark.parametrize("mask_shape", [(4, 6), (1, 4, 6)])
def test_npz_completion_with_an_x_mask(tmp_path, images, mask_shape):
    given = np.zeros((4, 6), dtype=bool)
    given[:2] = True  # the top half is given
    flat = images.reshape(20, -1)
    x, y = flat[:, given.ravel()], flat[:, ~given.ravel()]
    data = load_npz(save(tmp_path, x=x, y=y, x_mask=given.reshape(mask_shape)), "bernoulli", image_shape=(1, 4, 6))
    layout = data.info["image"]
    assert layout.completes and layout.given[0].tolist() == given.tolist()
    np.testing.assert_array_equal(layout.to_images(data.x, data.y), images)


BAD = {
    "y not the image": (lambda im: dict(y=im.reshape(20, -1)[:, :20]), (1, 4, 6), "y has 20 columns but image_shape [1, 4, 6]"),
    "mask shape": (
        lambda im: dict(x=im.reshape(20, -1)[:, :12], y=im.reshape(20, -1)[:, 12:], x_mask=np.ones((6, 4), bool)),
        (1, 4, 6),
        "x_mask must have shape [1, 4, 6] or [4, 6]",
    ),
    "mask counts": (
        lambda im: dict(x=im.reshape(20, -1)[:, :10], y=im.reshape(20, -1)[:, 10:], x_mask=np.eye(4, 6, dtype=bool)),
        (1, 4, 6),
        "x_mask gives 4 pixels to x and 20 to y, but x has 10 columns and y 14",
    ),
    "mask values": (
        lambda im: dict(x=im.reshape(20, -1)[:, :12], y=im.reshape(20, -1)[:, 12:], x_mask=np.full((4, 6), 0.5)),
        (1, 4, 6),
        "x_mask must hold booleans",
    ),
    "mask without a shape": (
        lambda im: dict(y=im.reshape(20, -1), x_mask=np.ones((4, 6), bool)),
        None,
        "set data.image_shape",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_npz_image_errors_are_one_line(tmp_path, images, case):
    arrays, shape, message = BAD[case]
    with pytest.raises(DataError, match=re.escape(message)) as error:
        load_npz(save(tmp_path, **arrays(images)), "bernoulli", image_shape=shape)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("shape", [[28, 28], [1, 0, 28], [1, 28, 28, 1], "28x28"])
def test_config_refuses_bad_image_shapes(shape):
    with pytest.raises(ConfigError, match="data.image_shape") as error:
        parse_config({"data": {"kind": "npz", "path": "d.npz", "image_shape": shape}, "model": {"likelihood": "bernoulli"}})
    assert "\n" not in str(error.value)


def test_digits_carry_their_layout():
    layout = make_digits(quadrants=2).info["image"]
    assert layout.shape == (1, 8, 8) and layout.given[0, :4].all() and not layout.given[0, 4:].any()


def test_stratified_split_keeps_each_class_share():
    data = make_digits()
    labels = data.labels
    splits = split_dataset(data, 0.1, 0.2, seed=0, stratify=labels)
    for name, fraction in (("test", 0.2), ("val", 0.1)):
        counts = np.bincount(getattr(splits, name).labels, minlength=10)
        np.testing.assert_array_equal(counts, np.round(np.bincount(labels) * fraction))
    together = np.concatenate([splits.indices[k] for k in ("train", "val", "test")])
    assert sorted(together) == list(range(len(data)))
    plain = split_dataset(data, 0.1, 0.2, seed=0)
    assert not np.array_equal(plain.indices["test"], splits.indices["test"])
