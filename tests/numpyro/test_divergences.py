"""The NumPyro divergences against the torch ones on the same inputs, in float64, and the same errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from infovae.numpyro.objectives import divergences as jx
from infovae.objectives import divergences as pt

from .twins import close

RNG = np.random.default_rng(0)
X, Y = RNG.normal(size=(9, 3)), RNG.normal(1.0, 2.0, size=(7, 3))
Q, P = RNG.dirichlet(np.ones(5), size=4), RNG.dirichlet(np.ones(5), size=4)
LOC, SCALE = RNG.normal(size=(6, 2)), RNG.uniform(0.3, 2.0, size=(6, 2))
PRIOR_LOC, PRIOR_SCALE = RNG.normal(size=(6, 2)), RNG.uniform(0.3, 2.0, size=(6, 2))
PROBS = RNG.dirichlet(np.ones(4), size=(3, 5, 2))  # [K, B, F, C]
CROSS = RNG.normal(size=(3, 3, 5))  # [K, K, B]
WEIGHTS = {"[K]": RNG.dirichlet(np.ones(3)), "[K, B]": RNG.dirichlet(np.ones(3), size=5).T}


def both(fn_name, *arrays, **kwargs):
    """``fn_name`` of both backends on the same float64 arrays."""
    torch_value = getattr(pt, fn_name)(*(torch.as_tensor(a) for a in arrays), **kwargs)
    jax_value = getattr(jx, fn_name)(*(jnp.asarray(a) for a in arrays), **kwargs)
    return torch_value, jax_value


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
@pytest.mark.parametrize("bandwidth", [None, "median", 0.8])
def test_mmd(kernel, bandwidth):
    close(*both("mmd", X, Y, kernel=kernel, bandwidth=bandwidth))


def test_mmd_with_other_scales_and_coincident_points():
    x = np.concatenate([X[:4], X[:4]])
    close(*both("mmd", x, x[::-1].copy(), kernel="imq", scales=(0.3, 3.0), bandwidth="median"))


def test_categorical_kl():
    close(*both("categorical_kl", Q, P))
    # 0 log 0 = 0 and q > 0 = p gives inf, in both.
    q, p = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5])
    close(*both("categorical_kl", q, q[::-1].copy()))
    assert np.isinf(np.asarray(both("categorical_kl", q, p)[1]))


def test_moment_matched_kl_against_the_standard_normal():
    close(*both("moment_matched_kl", LOC, SCALE))


def test_moment_matched_kl_against_a_conditional_prior():
    close(*both("moment_matched_kl", LOC, SCALE, PRIOR_LOC, PRIOR_SCALE))


@pytest.mark.parametrize("weights", WEIGHTS, ids=str)
def test_jensen_shannon(weights):
    close(*both("jensen_shannon", PROBS, WEIGHTS[weights]))


def test_jensen_shannon_from_log_probabilities():
    log_probs = np.log(PROBS)
    torch_value = pt.jensen_shannon(torch.as_tensor(PROBS), torch.as_tensor(WEIGHTS["[K]"]), log_probs=torch.as_tensor(log_probs))
    jax_value = jx.jensen_shannon(jnp.asarray(PROBS), jnp.asarray(WEIGHTS["[K]"]), log_probs=jnp.asarray(log_probs))
    close(torch_value, jax_value)


@pytest.mark.parametrize("weights", WEIGHTS, ids=str)
def test_monte_carlo_jensen_shannon(weights):
    close(*both("monte_carlo_jensen_shannon", CROSS, WEIGHTS[weights]))


def test_random_feature_mmd_agrees_on_the_same_frequencies():
    # Compiled, as random draws are slow to run op by op.
    frequencies = jax.jit(jx.kernel_frequencies, static_argnums=(0, 2, 3))("imq", (1.0, 4.0), 3, 16, jax.random.PRNGKey(0))
    close(*both("random_feature_mmd", X, Y, np.array(frequencies)))
    with pytest.raises(ValueError, match="needs an rng_key"):
        jx.mmd(jnp.asarray(X), jnp.asarray(Y), num_features=4)
    features_mmd = jax.jit(lambda x, y, key: jx.mmd(x, y, num_features=4, rng_key=key))
    assert np.isfinite(float(features_mmd(jnp.asarray(X), jnp.asarray(Y), jax.random.PRNGKey(1))))


def test_gradients_agree():
    """Through the MMD (median bandwidth held constant in both) and the moment-matched KL."""
    x, loc = torch.tensor(X, requires_grad=True), torch.tensor(LOC, requires_grad=True)
    (pt.mmd(x, torch.as_tensor(Y), bandwidth="median") + pt.moment_matched_kl(loc, torch.as_tensor(SCALE))).backward()
    # Compiled: one program is cheaper to build than JAX's op-by-op backward pass.
    grads = jax.jit(
        jax.grad(
            lambda a, m: jx.mmd(a, jnp.asarray(Y), bandwidth="median") + jx.moment_matched_kl(m, jnp.asarray(SCALE)),
            argnums=(0, 1),
        )
    )
    grad_x, grad_loc = grads(jnp.asarray(X), jnp.asarray(LOC))
    close(x.grad, grad_x)
    close(loc.grad, grad_loc)


@pytest.mark.parametrize(
    "fn_name, arrays, kwargs",
    [
        ("mmd", (np.zeros((1, 2)), np.zeros((3, 2))), {}),
        ("mmd", (np.zeros((3, 2)), np.zeros((3, 4))), {}),
        ("mmd", (np.zeros((3, 2)), np.zeros((3, 2))), {"kernel": "laplace"}),
        ("mmd", (np.zeros((3, 2)), np.zeros((3, 2))), {"bandwidth": -1.0}),
        ("mmd", (np.zeros((3, 2)), np.zeros((3, 2))), {"scales": ()}),
        ("jensen_shannon", (np.ones((1, 3)) / 3, np.ones(1)), {}),
        ("jensen_shannon", (np.ones((2, 3)) / 3, np.ones(3) / 3), {}),
        ("monte_carlo_jensen_shannon", (np.zeros((1, 1, 2)), np.ones(1)), {}),
        ("monte_carlo_jensen_shannon", (np.zeros((2, 3, 2)), np.ones(2) / 2), {}),
        ("moment_matched_kl", (np.zeros(3), np.ones(3)), {}),
        ("moment_matched_kl", (np.zeros((3, 2)), np.ones((3, 2)), np.zeros((3, 2))), {}),
    ],
)
def test_the_same_bad_input_gives_the_same_error(fn_name, arrays, kwargs):
    with pytest.raises(ValueError) as torch_error:
        getattr(pt, fn_name)(*(torch.as_tensor(a) for a in arrays), **kwargs)
    with pytest.raises(ValueError) as jax_error:
        getattr(jx, fn_name)(*(jnp.asarray(a) for a in arrays), **kwargs)
    assert str(jax_error.value) == str(torch_error.value)
