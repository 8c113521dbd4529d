"""Does the on-device probe (``infovae.diagnostics.jax_metrics.fit_probe``) reach its optimum, and what
does a fit cost? Its damped Newton iterations try a fixed grid of step sizes at once, and stop once a
step's decrease of the objective is below the arithmetic's resolution; the line search is most of an
iteration's time, so the grid is kept as small as convergence allows.

    python benchmarks/probe_convergence.py               # about 7 minutes on two cores
    python benchmarks/probe_convergence.py --time-only   # the timings alone

For each of 216 problems (examples 60 / 500 / 4000; features 2 / 8 / 64; classes 2 / 4 / 16; Gaussian
clusters 0.5, 3 and 10 apart, one-hot codes, pure noise, and a class of 2% of the examples; features
standardised, as the probe does) it fits the probe with the library's settings and with 100 iterations,
in float64, and reports the worst relative excess of the objective (penalised mean cross-entropy) over
the long fit's (100 iterations at ``tolerance=0``, where only a step that decreases nothing stops it) and the
most iterations the default fit took; then the float32 fit's excess over the float64 optimum (float32's
rounding). Then the
time of one jitted fit at 2000 examples with 8 one-hot features, and with 36 more (the probe from x and
z), 4 classes.
"""

import argparse
import itertools
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from infovae.diagnostics import jax_metrics  # noqa: E402


def _objective(probe, x, y, l2=1.0):
    """The probe's objective at its fitted weights, as fit_probe defines it."""
    seen = probe["seen"]
    n = x.shape[0]
    log_p = jax.nn.log_softmax(jnp.where(seen, x @ probe["weights"] + probe["bias"], -jnp.inf), -1)
    penalty = l2 * jnp.where(seen.sum() == 2, 2.0, 1.0) / n
    return float(-jnp.mean(jnp.take_along_axis(log_p, y[:, None], 1)) + 0.5 * penalty * jnp.sum(probe["weights"] ** 2))


def _problems(rng):
    for n, features, classes, kind, spread in itertools.product(
        [60, 500, 4000], [2, 8, 64], [2, 4, 16], ["gaussian", "one-hot", "noise", "small class"], [0.5, 3.0, 10.0]
    ):
        if kind in ("one-hot", "noise") and spread != 3.0:
            continue
        y = rng.integers(0, classes, n)
        if kind == "small class":
            y = np.where(rng.random(n) < 0.02, classes - 1, rng.integers(0, max(classes - 1, 1), n))
        if kind == "one-hot":
            x = np.eye(features)[np.where(rng.random(n) < 0.6, y % features, rng.integers(0, features, n))]
        elif kind == "noise":
            x = rng.normal(size=(n, features))
        else:
            x = spread * rng.normal(size=(classes, features))[y] + rng.normal(size=(n, features))
        std = x.std(0)
        yield (n, features, classes, kind, spread), (x - x.mean(0)) / np.where(std > 0, std, 1.0), y, classes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-only", action="store_true", help="only the timings, not the convergence study")
    args = parser.parse_args()
    fit = jax.jit(jax_metrics.fit_probe, static_argnames=("num_classes", "iterations"))
    if not args.time_only:
        _convergence(fit)
    _timings(fit)


def _convergence(fit):
    worst_iterations, worst_float32, count = (0.0, None), (0.0, None), 0
    steps = {"float64": (0, None), "float32": (0, None)}
    for name, x, y, classes in _problems(np.random.default_rng(0)):
        x64, y = jnp.asarray(x), jnp.asarray(y)
        optimum = _objective(fit(x64, y, num_classes=classes, iterations=100, tolerance=0.0), x64, y)
        scale = max(abs(optimum), 1e-30)
        fits = {"float64": fit(x64, y, num_classes=classes), "float32": fit(x64.astype(jnp.float32), y, num_classes=classes)}
        excess = (_objective(fits["float64"], x64, y) - optimum) / scale
        excess32 = (_objective(fits["float32"], x64, y) - optimum) / scale
        worst_iterations = max(worst_iterations, (excess, name), key=lambda w: w[0])
        worst_float32 = max(worst_float32, (excess32, name), key=lambda w: w[0])
        for dtype, probe in fits.items():
            steps[dtype] = max(steps[dtype], (int(probe["iterations"]), name), key=lambda w: w[0])
        count += 1
    print(f"{count} problems, at most {jax_metrics.PROBE_ITERATIONS} iterations, {jax_metrics._LINE_SEARCH_STEPS} step sizes")
    print(f"worst relative excess over 100 iterations, float64: {worst_iterations[0]:.1e} {worst_iterations[1]}")
    print(f"worst relative excess of the float32 fit over the float64 optimum: {worst_float32[0]:.1e} {worst_float32[1]}")
    for dtype, (most, name) in steps.items():
        print(f"most iterations taken, {dtype}: {most} {name}")


def _timings(fit):
    rng = np.random.default_rng(1)
    labels = jnp.asarray(rng.integers(0, 4, 2000))
    one_hot = np.eye(8)[rng.integers(0, 8, 2000)]
    for what, features in (
        ("8 one-hot", one_hot),
        ("8 one-hot + 36 Gaussian", np.hstack([one_hot, rng.normal(size=(2000, 36))])),
    ):
        features = jnp.asarray(features, jnp.float32)
        jax.block_until_ready(fit(features, labels, num_classes=4))
        start = time.perf_counter()
        for _ in range(10):
            jax.block_until_ready(fit(features, labels, num_classes=4))
        print(f"one float32 fit, 2000 examples, {what} features, 4 classes: {(time.perf_counter() - start) / 10 * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
