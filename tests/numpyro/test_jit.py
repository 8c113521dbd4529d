"""InfoVAE_ELBO under jax.jit: NumPyro's SVI compiles a step once per shape of the data, and the
Monte-Carlo terms of a continuous latent (MMD, JSD, several particles) are traceable."""

import jax
import numpy as np
import numpyro.optim
from numpyro.infer import SVI

from infovae.numpyro.objectives import InfoVAE_ELBO

from .twins import (
    NUM_DATA,
    assert_loss_is_the_per_example_objective,
    make_targets,
    make_twins,
)


def test_svi_compiles_a_step_once_per_shape():
    twins = make_twins("discrete", "categorical", "learned")
    traces = []

    def model(*args, **kwargs):
        traces.append(args[0].shape)  # Python runs only while JAX traces
        return twins.model(*args, **kwargs)

    elbo = InfoVAE_ELBO(beta=0.5, marginal="kl", marginal_weight=5.0, jsd_weight=0.1)
    svi = SVI(model, twins.guide, numpyro.optim.Adam(1e-3), elbo)
    state = svi.init(jax.random.PRNGKey(0), *twins.jax_data, num_data=NUM_DATA, init_params=twins.params)
    update = jax.jit(svi.update, static_argnames="num_data")
    rng = np.random.default_rng(0)

    def step(state, batch):
        x, y = rng.normal(size=(batch, twins.config.x_dim)), make_targets(rng, "categorical", (batch, twins.config.y_dim))
        state, loss = update(state, x, y, num_data=NUM_DATA)
        assert np.isfinite(float(loss))
        return state

    traces.clear()
    for _ in range(4):
        state = step(state, 8)
    # The first compilation may trace once more than later ones (the plate nesting is found once, then kept).
    assert len(traces) > 0 and {shape[0] for shape in traces} == {8}
    compiled = len(traces)
    state = step(state, 5)
    assert len(traces) > compiled and {shape[0] for shape in traces[compiled:]} == {5}
    compiled = len(traces)
    for _ in range(3):
        state = step(state, 8)
        state = step(state, 5)
    assert len(traces) == compiled  # both shapes compiled: no more tracing


def test_monte_carlo_terms_of_a_continuous_latent_under_jit():
    twins = make_twins("gaussian", "gaussian", "learned")
    kwargs = dict(beta=0.5, marginal="mmd", marginal_weight=5.0, jsd_weight=0.5, num_particles=2)
    elbo = InfoVAE_ELBO(**kwargs)
    terms = jax.jit(lambda key, p, x, y: elbo.loss_terms(key, p, twins.model, twins.guide, x, y, num_data=NUM_DATA))
    first = terms(jax.random.PRNGKey(0), twins.params, *twins.jax_data)
    assert all(np.isfinite(float(value)) for value in first.values())
    assert_loss_is_the_per_example_objective(first, kwargs)
    # The draws come from the key: another key, other draws; the same key, the same numbers.
    second = terms(jax.random.PRNGKey(1), twins.params, *twins.jax_data)
    assert float(second["marginal"]) != float(first["marginal"])
    assert float(second["jsd"]) != float(first["jsd"])
    again = terms(jax.random.PRNGKey(0), twins.params, *twins.jax_data)
    assert {k: float(v) for k, v in again.items()} == {k: float(v) for k, v in first.items()}
