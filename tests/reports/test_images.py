"""Image figures: the arrays behind them put the given pixels and the model's pixels where they belong,
the plots draw given and drawn pixels apart, and a run report on images (built-in or an npz declared with
data.image_shape) has its image figures and says which it leaves out and why."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

import infovae
from infovae.reports import images, plots
from infovae.reports.report import RUN_CAPTIONS, write_report
from infovae.training.runs import open_run


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def canvas(fig):
    return fig.axes[0].images[0].get_array()


def test_tiles_draw_given_pixels_blue_the_model_black_and_hidden_grey():
    given = np.zeros((1, 2, 2), dtype=bool)
    given[0, 0, 0] = True
    true = np.array([[[[1.0, 1.0], [0.0, 0.5]]]])  # [n=1, C, H, W]
    drawn = np.array([[[[1.0, 1.0], [1.0, 0.0]]]])[None]  # [S=1, n, C, H, W]
    fig = plots.plot_completions(true, drawn, given)
    rgb = np.asarray(canvas(fig))
    gap = 1  # between tiles of a 2-pixel image
    rows = [rgb[r * (2 + gap) : r * (2 + gap) + 2, :2] for r in range(3)]  # given, true, completion
    np.testing.assert_allclose(rows[0][0, 0], plots.GIVEN_INK)  # a given pixel at full ink
    np.testing.assert_allclose(rows[0][1, 1], plots.HIDDEN)  # hidden from the model: grey
    np.testing.assert_allclose(rows[1][0, 1], plots.DRAWN_INK)  # ink outside the given region: black
    np.testing.assert_allclose(rows[1][1, 1], 0.5 * np.ones(3))  # half ink: mid grey
    np.testing.assert_allclose(rows[2][1, 1], np.ones(3))  # no ink: white
    # The outline runs along the given pixel's four edges, in every tile of the column.
    from matplotlib.collections import LineCollection

    outline = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in outline) == 3 * 4


def test_titles_and_legends_stay_inside_the_figure():
    rng = np.random.default_rng(0)
    given = np.zeros((1, 8, 8), dtype=bool)
    given[0, :4, :4] = True
    figures = [
        plots.plot_completions(rng.random((10, 1, 8, 8)), rng.random((4, 10, 1, 8, 8)), given, [f"digit {i}" for i in range(10)]),
        plots.plot_image_samples(rng.random((6, 10, 1, 28, 28)), None, title="Samples " * 30),
        plots.plot_latent_values(rng.random((10, 1, 1, 28, 28)), np.full(10, 0.1), title="Per value " * 20),
    ]
    for fig in figures:
        fig.canvas.draw()
        box = fig.bbox
        for artist in [fig._suptitle, *fig.legends]:
            extent = artist.get_window_extent()
            assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1 and extent.y1 <= box.y1 + 1, artist


def image_run(tmp_path, name, image_shape, y, x=None, **model):
    arrays = {"y": y} | ({"x": x} if x is not None else {})
    np.savez(tmp_path / f"{name}.npz", **arrays, labels=np.arange(len(y)) % 3)
    config = {
        "data": {"kind": "npz", "path": str(tmp_path / f"{name}.npz"), "image_shape": image_shape},
        "model": {"likelihood": "bernoulli", "latent": "gaussian", "latent_size": 3, "hidden": 16, **model},
        "train": {"steps": 10, "batch_size": 32, "eval_every": 10, "eval_examples": 60},
    }
    return open_run(infovae.train(config, out=tmp_path / name, progress=False).dir)


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory):
    """An unconditional model of 6x5 images from an npz declared with data.image_shape."""
    rng = np.random.default_rng(0)
    y = (rng.random((120, 30)) < 0.3).astype(np.float32)
    return image_run(tmp_path_factory.mktemp("npz"), "whole", [1, 6, 5], y)


@pytest.mark.slow
def test_arrays_put_x_and_the_decoder_where_they_belong(runs):
    run = open_run(runs / "digits")
    test = run.splits.test
    layout = test.info["image"]
    index, labels = images.chosen_examples(test, 10)
    # One example of each digit, in order.
    assert test.labels[index].tolist() == list(range(10)) and labels[3] == "digit 3"
    rng = np.random.default_rng(0)
    true, drawn = images.completions(run, test.subset(index), 3, rng)
    assert drawn.shape == (3, 10, 1, 8, 8)
    given = np.broadcast_to(layout.given, drawn.shape)
    # The given pixels are x itself in every completion; elsewhere the decoder's probabilities.
    np.testing.assert_array_equal(drawn[given], np.broadcast_to(true, drawn.shape)[given])
    assert drawn.min() >= 0 and drawn.max() <= 1 and len(np.unique(drawn[~given])) > 2
    values = images.latent_values(run, test.subset(index[:2]), [0, 3])
    expected = run.backend.decoder_mean(test.x[index[:2]], np.array([[3]]))[0]
    np.testing.assert_allclose(values[1].reshape(2, -1)[:, layout.y_pixels], expected, rtol=1e-6)


@pytest.mark.slow
def test_traversal_rows_move_one_dimension(npz_run):
    test = npz_run.splits.test
    one = test.subset([0])
    grid = images.traversals(npz_run, one, [2, 0])
    assert grid.shape == (2, len(images.OFFSETS), 1, 6, 5)
    middle = len(images.OFFSETS) // 2  # offset 0: every row at the prior mean
    np.testing.assert_allclose(grid[0, middle], grid[1, middle], rtol=1e-6)
    assert not np.allclose(grid[0, 0], grid[0, -1])
    p = npz_run.backend.prior(one.x)
    z = p.loc.copy()
    z[0, 2] += images.OFFSETS[0] * p.scale[0, 2]
    np.testing.assert_allclose(grid[0, 0].ravel(), npz_run.backend.decoder_mean(one.x, z[None])[0, 0], rtol=1e-5)


@pytest.mark.slow
def test_report_of_an_npz_of_images_draws_them_and_says_what_it_leaves_out(npz_run):
    out = write_report(npz_run.dir, draws=5, examples=10)
    names = {p.stem for p in out["figures"]}
    assert {"reconstructions", "samples", "traversals"} <= names and "completions" not in names
    text = out["report"].read_text()
    assert "The data are 6×5 images: y is the whole image (30 pixels)." in text
    assert "No `completions` figure: x holds no pixel of the image" in text
    assert "No `latent_values` figure: the latent is Gaussian" in text
    for name in ("reconstructions", "samples", "traversals"):
        assert RUN_CAPTIONS[name] in text


@pytest.mark.slow
def test_report_of_digits_names_the_given_quadrant(runs):
    text = write_report(runs / "digits", draws=5, examples=10)["report"].read_text()
    assert "The data are 8×8 images: x holds 16 given pixels, y the other 48. Given quadrants: top-left." in text
    assert "No `traversals` figure: the latent is discrete" in text


@pytest.mark.slow
def test_report_of_an_npz_not_declared_images_says_how(runs):
    text = write_report(runs / "nolabels", draws=5, examples=10)["report"].read_text()
    assert "No image figures: the data are not declared images (for an npz of images, give data.image_shape" in text


@pytest.mark.slow
def test_completion_npz_with_an_x_mask_gets_completions(tmp_path):
    rng = np.random.default_rng(1)
    pictures = (rng.random((90, 4, 4)) < 0.4).astype(np.float32)
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, :2] = True  # the left half is given
    flat = pictures.reshape(90, -1)
    path = tmp_path / "half.npz"
    np.savez(path, x=flat[:, mask.ravel()], y=flat[:, ~mask.ravel()], x_mask=mask)
    config = {
        "data": {"kind": "npz", "path": str(path), "image_shape": [1, 4, 4]},
        "model": {"likelihood": "bernoulli", "latent": "discrete", "latent_size": 3, "hidden": 8},
        "train": {"steps": 5, "batch_size": 16, "eval_every": 5},
    }
    run = open_run(infovae.train(config, out=tmp_path / "run", progress=False).dir)
    figures = images.image_figures(run, run.splits.test)
    assert set(figures) == {"reconstructions", "completions", "samples", "latent_values"}


def test_chosen_examples_take_the_label_ids_that_occur_named_by_their_ids():
    from infovae.data.base import Dataset

    labels = np.array([8, 8, 3, 8, 3, 3, 8])
    data = Dataset(
        x=np.zeros((7, 0)), y=np.zeros((7, 4)), labels=labels, likelihood="bernoulli", num_classes=2, name="t", info={}
    )
    index, names = images.chosen_examples(data, 5)
    # The first of each id in id order (3, then 8), then the next of each: no column for an id that does not occur.
    assert index.tolist() == [2, 0, 4, 1, 5]
    assert names == ["label 3", "label 8", "label 3", "label 8", "label 3"]
