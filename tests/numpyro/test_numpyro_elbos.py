"""InfoVAE_ELBO(beta=1) is the ordinary negative ELBO: NumPyro's TraceEnum_ELBO with the guide's
latent enumerated (discrete), an exact sum written out here (discrete), and Trace_ELBO with the same
key (continuous)."""

import jax
import jax.numpy as jnp
import pytest
from jax.nn import log_softmax
from numpyro.infer import Trace_ELBO, TraceEnum_ELBO

from infovae.numpyro.objectives import InfoVAE_ELBO

from .twins import NUM_DATA, close, make_twins


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_discrete_equals_traceenum_elbo_with_an_enumerated_guide(prior):
    # NumPyro's enumeration runs on funsor, an optional dependency of NumPyro.
    pytest.importorskip("funsor")
    from numpyro.contrib.funsor import config_enumerate

    twins = make_twins("discrete", "bernoulli", prior)
    key = jax.random.PRNGKey(0)
    for num_data in (None, NUM_DATA):
        ours = InfoVAE_ELBO().loss(key, twins.params, twins.model, twins.guide, *twins.jax_data, num_data=num_data)
        enumerated = config_enumerate(twins.guide)
        theirs = TraceEnum_ELBO(max_plate_nesting=1).loss(
            key, twins.params, twins.model, enumerated, *twins.jax_data, num_data=num_data
        )
        close(ours, theirs, rtol=1e-12)


def test_discrete_equals_the_exact_sum_over_latent_values():
    r""":math:`-\frac NB \sum_i \sum_k q_{ik}(\log p(y_i|x_i,k) + \log p(k|x_i) - \log q_{ik})`,
    from the model's and guide's distributions directly."""
    twins = make_twins("discrete", "categorical", "learned")
    x, y = twins.jax_data
    K = twins.config.latent_size
    log_q = log_softmax(twins.guide.posterior(twins.params, x, y).logits)  # [B, K]
    log_p = log_softmax(twins.model.prior(twins.params, x).logits)  # [B, K]
    log_lik = twins.model.decoder(twins.params, x, jnp.arange(K)[:, None]).log_prob(y).T  # [B, K]
    elbo = (jnp.exp(log_q) * (log_lik + log_p - log_q)).sum() * NUM_DATA / x.shape[0]
    ours = InfoVAE_ELBO().loss(jax.random.PRNGKey(0), twins.params, twins.model, twins.guide, x, y, num_data=NUM_DATA)
    close(ours, -elbo, rtol=1e-12)


@pytest.mark.parametrize("num_particles", [1, 3])
def test_continuous_equals_trace_elbo_with_the_same_key(num_particles):
    twins = make_twins("gaussian", "gaussian", "learned")
    key = jax.random.PRNGKey(5)
    args = (key, twins.params, twins.model, twins.guide, *twins.jax_data)
    ours = InfoVAE_ELBO(num_particles=num_particles).loss(*args, num_data=NUM_DATA)
    theirs = Trace_ELBO(num_particles=num_particles).loss(*args, num_data=NUM_DATA)
    close(ours, theirs, rtol=1e-12)
