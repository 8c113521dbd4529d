"""Digits, user npz files and the deterministic splits."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from infovae.data import (
    load_npz,
    make_digits,
    make_strategies,
    split_dataset,
    to_images,
)


def test_digits_completion_task():
    data = make_digits(quadrants=1)
    assert data.x.shape == (1797, 16) and data.y.shape == (1797, 48)
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32 and data.labels.dtype == np.int64
    assert set(np.unique(data.y)) == {0.0, 1.0} and set(np.unique(data.x)) == {0.0, 1.0}
    assert data.labels.min() == 0 and data.labels.max() == 9 and data.likelihood == "bernoulli"
    assert data.num_classes == 2 and data.info["quadrants"] == ["top-left"]
    images = to_images(data.x, data.y, data.info)
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images[:, :4, :4].reshape(1797, 16), data.x)
    np.testing.assert_array_equal(images, load_digits().images >= 8)


@pytest.mark.parametrize("sklearn_found", [True, False])
def test_digits_are_scikit_learns(sklearn_found, monkeypatch):
    """Read from scikit-learn's bundled file without importing it, or, where that file is not found,
    through load_digits: the same intensities and digits either way."""
    import sklearn.datasets

    from infovae.data import digits as digits_module

    bunch = load_digits()
    if sklearn_found:  # the bundled file is read: load_digits is not called
        monkeypatch.setattr(sklearn.datasets, "load_digits", lambda: pytest.fail("load_digits was called"))
    else:
        monkeypatch.setattr(digits_module.importlib.util, "find_spec", lambda name: None)
    intensities, digits = digits_module._bundled_digits()
    np.testing.assert_array_equal(intensities, bunch.data)
    np.testing.assert_array_equal(digits, bunch.target)
    assert digits.dtype == np.int64


@pytest.mark.parametrize(
    "quadrants, given",
    [
        (2, ["top-left", "top-right"]),
        (3, ["top-left", "top-right", "bottom-left"]),
        (["bottom-right", 0], ["top-left", "bottom-right"]),
    ],
)
def test_digits_quadrants(quadrants, given):
    data = make_digits(quadrants=quadrants)
    assert data.info["quadrants"] == given and data.x.shape == (1797, 16 * len(given))
    mask = to_images(np.ones(data.x_dim), np.zeros(data.y_dim), data.info)
    expected = np.zeros((8, 8))
    for name in given:
        row, col = divmod(("top-left", "top-right", "bottom-left", "bottom-right").index(name), 2)
        expected[4 * row : 4 * row + 4, 4 * col : 4 * col + 4] = 1
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(to_images(data.x, data.y, data.info), load_digits().images >= 8)


@pytest.mark.parametrize("quadrants", [0, 4, ["middle"], ["top-left", "top-left"], [0, 1, 2, 3]])
def test_digits_bad_quadrants(quadrants):
    with pytest.raises(ValueError, match="quadrant"):
        make_digits(quadrants=quadrants)


def test_to_images_checks_widths():
    data = make_digits()
    with pytest.raises(ValueError, match="must end in 16 and 48 pixels"):
        to_images(data.y, data.x, data.info)


def test_splits_are_deterministic_disjoint_and_cover_the_data():
    data, generator = make_strategies(num_examples=200)
    a, b = split_dataset(data, 0.1, 0.2, seed=1, generator=generator), split_dataset(data, 0.1, 0.2, seed=1)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(a.indices[k], b.indices[k])
    together = np.concatenate([a.indices[k] for k in ("train", "val", "test")])
    assert sorted(together) == list(range(200))
    assert (len(a.test), len(a.val), len(a.train)) == (40, 20, 140)
    np.testing.assert_array_equal(a.test.y, data.y[a.indices["test"]])
    np.testing.assert_array_equal(a.train.labels, data.labels[a.indices["train"]])
    assert a.generator is generator and a.test.info == data.info
    assert not np.array_equal(split_dataset(data, 0.1, 0.2, seed=2).indices["test"], a.indices["test"])
    with pytest.raises(ValueError, match="too few"):
        split_dataset(data.subset(slice(0, 5)), 0.1, 0.2, seed=0)


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y, labels = rng.normal(size=(30, 3)), rng.integers(0, 4, size=(30, 5)), rng.integers(0, 2, 30)
    data = load_npz(save(tmp_path, x=x, y=y, labels=labels), "categorical")
    assert data.x.dtype == np.float32 and data.y.dtype == np.int64 and data.labels.dtype == np.int64
    assert data.num_classes == 4 and data.name == "d" and data.likelihood == "categorical"
    np.testing.assert_array_equal(data.x, x.astype(np.float32))
    np.testing.assert_array_equal(data.y, y)
    np.testing.assert_array_equal(data.labels, labels)
    one_column = load_npz(save(tmp_path, x=x, y=y[:, 0].astype(float)), "categorical", num_classes=6)
    assert one_column.y.shape == (30, 1) and one_column.num_classes == 6 and one_column.labels is None
    binary = load_npz(save(tmp_path, x=x, y=rng.random((30, 4)) > 0.5), "bernoulli")
    assert binary.y.dtype == np.float32 and binary.num_classes == 2
    # Intensities in [0, 1] (greyscale pixels) are soft Bernoulli targets.
    grey = rng.random((30, 4))
    np.testing.assert_array_equal(load_npz(save(tmp_path, x=x, y=grey), "bernoulli").y, grey.astype(np.float32))
    # Without x: an unconditional VAE's data, with a condition of width 0.
    unconditional = load_npz(save(tmp_path, y=grey), "bernoulli")
    assert unconditional.x.shape == (30, 0) and unconditional.x.dtype == np.float32
    gaussian = load_npz(save(tmp_path, x=x, y=rng.normal(size=(30, 2))), "gaussian")
    assert gaussian.y.dtype == np.float32 and gaussian.num_classes == 0


BAD = {
    "missing key": (dict(x=np.zeros((20, 2))), "gaussian", "has no array 'y'"),
    "y beyond [0, 1]": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), 1.5)), "bernoulli", "values in [0, 1]"),
    "negative y": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), -0.1)), "bernoulli", "values in [0, 1]"),
    "too large for float32": (
        dict(x=np.full((20, 2), 1e300), y=np.zeros((20, 2))),
        "gaussian",
        "x contains values too large for float32",
    ),
    "class id too large": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), 10**9)), "categorical", "at most 100000 classes"),
    "lengths differ": (dict(x=np.zeros((20, 2)), y=np.zeros((19, 2))), "gaussian", "different lengths: x 20, y 19"),
    "labels length": (dict(x=np.zeros((20, 2)), y=np.zeros(20), labels=np.zeros(21)), "gaussian", "labels 21"),
    "NaN": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), np.nan)), "gaussian", "y contains NaN"),
    "inf": (dict(x=np.full((20, 2), np.inf), y=np.zeros((20, 2))), "gaussian", "x contains NaN or infinite"),
    "negative class": (dict(x=np.zeros((20, 2)), y=-np.ones((20, 2))), "categorical", "non-negative integer classes"),
    "fractional class": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), 1.5)), "categorical", "non-negative integer classes"),
    "3-D x": (dict(x=np.zeros((20, 2, 2)), y=np.zeros((20, 2))), "gaussian", "x must be 2-D"),
    "3-D y": (dict(x=np.zeros((20, 2)), y=np.zeros((20, 2, 2))), "gaussian", "y must be 1-D [N] or 2-D"),
    "bad labels": (
        dict(x=np.zeros((20, 2)), y=np.zeros((20, 2)), labels=np.full(20, 0.5)),
        "gaussian",
        "labels must be non-negative integers",
    ),
    "negative labels": (
        dict(x=np.zeros((20, 2)), y=np.zeros((20, 2)), labels=-np.ones(20)),
        "gaussian",
        "labels must be non-negative integers",
    ),
    "too few": (dict(x=np.zeros((3, 2)), y=np.zeros((3, 2))), "gaussian", "at least 10"),
    "extra array": (dict(x=np.zeros((20, 2)), y=np.zeros((20, 2)), z=np.zeros(20)), "gaussian", "unexpected arrays ['z']"),
    "strings": (dict(x=np.zeros((20, 2)), y=np.array(["a"] * 20)), "gaussian", "y has dtype <U1"),
}


@pytest.mark.parametrize("case", BAD)
def test_npz_errors_name_the_problem(tmp_path, case):
    arrays, likelihood, message = BAD[case]
    with pytest.raises(ValueError) as error:
        load_npz(save(tmp_path, **arrays), likelihood)
    assert message in str(error.value) and "d.npz" in str(error.value)


def test_npz_file_errors(tmp_path):
    with pytest.raises(ValueError, match="none.npz: no such file"):
        load_npz(tmp_path / "none.npz", "gaussian")
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match=r"text.npz: is not an .npz \(zip\) file") as error:
        load_npz(not_zip, "gaussian")
    assert "pickle" not in str(error.value)
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((20, 2)))
    with pytest.raises(ValueError, match="single.npy: holds a single .npy array"):
        load_npz(single, "gaussian")
    objects = np.empty(20, dtype=object)
    with pytest.raises(ValueError, match="o.npz: has an array that cannot be read"):
        load_npz(save(tmp_path, "o.npz", x=np.zeros((20, 1)), y=objects), "gaussian")
    with pytest.raises(ValueError, match="class 4 but num_classes is 3"):
        load_npz(save(tmp_path, x=np.zeros((20, 1)), y=np.full((20, 1), 4)), "categorical", num_classes=3)


def test_npz_argument_errors(tmp_path):
    path = save(tmp_path, x=np.zeros((20, 1)), y=np.zeros((20, 1)))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        load_npz(path, "poisson")
    with pytest.raises(ValueError, match="num_classes=3 needs the categorical likelihood"):
        load_npz(path, "gaussian", num_classes=3)
