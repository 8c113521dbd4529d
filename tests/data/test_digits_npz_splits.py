"""Digits, user npz files and the deterministic splits."""

import numpy as np
import pytest

from infovae.data import load_npz, make_digits, make_strategies, split_dataset, to_images


def test_digits_completion_task():
    data = make_digits(quadrants=1)
    assert data.x.shape == (1797, 16) and data.y.shape == (1797, 48)
    assert set(np.unique(data.y)) <= {0.0, 1.0} and set(np.unique(data.x)) <= {0.0, 1.0}
    assert data.labels.min() == 0 and data.labels.max() == 9 and data.likelihood == "bernoulli"
    images = to_images(data.x, data.y, data.info)
    assert images.shape == (1797, 8, 8)
    np.testing.assert_array_equal(images[:, :4, :4].reshape(1797, 16), data.x)
    assert make_digits(quadrants=3).x.shape == (1797, 48)
    with pytest.raises(ValueError, match="quadrants must be 1, 2 or 3"):
        make_digits(quadrants=4)


def test_splits_are_deterministic_disjoint_and_cover_the_data():
    data, _ = make_strategies(num_examples=200)
    a, b = split_dataset(data, 0.1, 0.2, seed=1), split_dataset(data, 0.1, 0.2, seed=1)
    for k in ("train", "val", "test"):
        np.testing.assert_array_equal(a.indices[k], b.indices[k])
    together = np.concatenate([a.indices[k] for k in ("train", "val", "test")])
    assert sorted(together) == list(range(200))
    assert (len(a.test), len(a.val), len(a.train)) == (40, 20, 140)
    np.testing.assert_array_equal(a.test.y, data.y[a.indices["test"]])
    assert not np.array_equal(split_dataset(data, 0.1, 0.2, seed=2).indices["test"], a.indices["test"])


def save(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y, labels = rng.normal(size=(30, 3)), rng.integers(0, 4, size=(30, 5)), rng.integers(0, 2, 30)
    data = load_npz(save(tmp_path, x=x, y=y, labels=labels), "categorical")
    assert data.x.dtype == np.float32 and data.y.dtype == np.int64 and data.num_classes == 4
    np.testing.assert_array_equal(data.labels, labels)
    assert load_npz(save(tmp_path, x=x, y=y[:, 0]), "categorical", num_classes=6).y.shape == (30, 1)
    assert load_npz(save(tmp_path, x=x, y=rng.normal(size=(30, 2))), "gaussian").labels is None


BAD = {
    "missing key": (dict(x=np.zeros((20, 2))), "gaussian", "has no array 'y'"),
    "lengths differ": (dict(x=np.zeros((20, 2)), y=np.zeros((19, 2))), "gaussian", "different lengths: x 20, y 19"),
    "NaN": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), np.nan)), "gaussian", "y contains NaN"),
    "non-binary y": (dict(x=np.zeros((20, 2)), y=np.full((20, 2), 0.5)), "bernoulli", "only 0 and 1"),
    "negative class": (dict(x=np.zeros((20, 2)), y=-np.ones((20, 2))), "categorical", "non-negative integer classes"),
    "3-D x": (dict(x=np.zeros((20, 2, 2)), y=np.zeros((20, 2))), "gaussian", "x must be 2-D"),
    "bad labels": (dict(x=np.zeros((20, 2)), y=np.zeros((20, 2)), labels=np.full(20, 0.5)), "gaussian", "labels must be non-negative integers"),
    "too few": (dict(x=np.zeros((3, 2)), y=np.zeros((3, 2))), "gaussian", "at least 10"),
    "extra array": (dict(x=np.zeros((20, 2)), y=np.zeros((20, 2)), z=np.zeros(20)), "gaussian", "unexpected arrays ['z']"),
}


@pytest.mark.parametrize("case", BAD)
def test_npz_errors_name_the_problem(tmp_path, case):
    arrays, likelihood, message = BAD[case]
    with pytest.raises(ValueError) as error:
        load_npz(save(tmp_path, **arrays), likelihood)
    assert message in str(error.value) and "d.npz" in str(error.value)


def test_npz_file_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_npz(tmp_path / "none.npz", "gaussian")
    not_zip = tmp_path / "text.npz"
    not_zip.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        load_npz(not_zip, "gaussian")
    with pytest.raises(ValueError, match="class 4 but num_classes is 3"):
        load_npz(save(tmp_path, x=np.zeros((20, 1)), y=np.full((20, 1), 4)), "categorical", num_classes=3)
