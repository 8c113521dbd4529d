"""The NumPyro twin of ``tests/objectives/test_subsampled_particles.py``: a plate that draws its
minibatch at random makes a discrete model random, so the loss averages ``num_particles`` passes, each
from its particle's key (as NumPyro's Trace_ELBO splits them); indices substituted into the plate (the
library's CVAE) stay exact in one pass. Float64, against a hand computation on the drawn minibatches."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro import handlers

from infovae.numpyro.objectives import InfoVAE_ELBO

N, B, K, C = 20, 4, 3, 4
BETA, GAMMA = 0.5, 2.0
RNG = np.random.default_rng(0)
Q, WD, Y = RNG.normal(size=(N, K)), RNG.normal(size=(K, C)) * 2, RNG.integers(0, C, N)


def pair(seen=None, substitute=False):
    Q_, Wd = jnp.asarray(Q), jnp.asarray(WD)

    def plate():
        return numpyro.plate("data", N, subsample_size=B)

    def model(y):
        with plate() as idx:
            z = numpyro.sample("z", dist.Categorical(logits=jnp.zeros(K)))
            numpyro.sample("y", dist.Categorical(logits=Wd[z]), obs=y[idx])

    def guide(y):
        with plate() as idx:
            if seen is not None:
                seen.append(np.asarray(idx))
            numpyro.sample("z", dist.Categorical(logits=Q_[idx]))

    if substitute:
        given = {"data": jnp.arange(B)}
        return handlers.substitute(model, data=given), handlers.substitute(guide, data=given)
    return model, guide


def hand_loss(idx):
    """One pass on the minibatch ``idx``: -(N/B) sum(recon - beta KL) + gamma N KL(mean q || p)."""
    logits = Q[idx]
    q = np.exp(logits - logits.max(-1, keepdims=True))
    q = q / q.sum(-1, keepdims=True)
    log_dec = WD - np.log(np.exp(WD).sum(-1, keepdims=True))
    log_lik = log_dec[:, Y[idx]].T  # [B, K]
    kl = (q * (np.log(q) - math.log(1 / K))).sum(-1)
    q_bar = q.mean(0)
    marginal = (q_bar * (np.log(q_bar) - math.log(1 / K))).sum()
    return float(-(N / len(idx)) * ((q * log_lik).sum(-1) - BETA * kl).sum() + GAMMA * N * marginal)


def elbo(num_particles, **kwargs):
    return InfoVAE_ELBO(beta=BETA, marginal="kl", marginal_weight=GAMMA, num_particles=num_particles, **kwargs)


@pytest.mark.parametrize("vectorize", [True, False])
def test_particles_of_a_random_minibatch_are_averaged(vectorize):
    key = jax.random.PRNGKey(3)
    # Each particle's pass alone, from its key, against the hand computation on the minibatch it drew.
    singles, drawn = [], []
    for particle_key in jax.random.split(key, 5):
        seen = []
        model, guide = pair(seen)
        singles.append(float(elbo(1).loss(particle_key, {}, model, guide, jnp.asarray(Y))))
        drawn.append(seen[-1])
        assert singles[-1] == pytest.approx(hand_loss(seen[-1]), rel=1e-12)
    assert len({tuple(idx.tolist()) for idx in drawn}) == 5
    model, guide = pair()
    loss = elbo(5, vectorize_particles=vectorize).loss(key, {}, model, guide, jnp.asarray(Y))
    assert float(loss) == pytest.approx(sum(singles) / 5, rel=1e-12)
    terms = elbo(5, vectorize_particles=vectorize).loss_terms(key, {}, model, guide, jnp.asarray(Y))
    assert float(terms["loss"]) == pytest.approx(sum(singles) / 5, rel=1e-12)


def test_substituted_indices_are_exact_in_one_pass():
    calls = []
    model, guide = pair(calls, substitute=True)
    objective = elbo(5)
    objective.max_plate_nesting = 1  # no guessing pass: every call is a pass of the loss
    loss = objective.loss(jax.random.PRNGKey(0), {}, model, guide, jnp.asarray(Y))
    assert float(loss) == pytest.approx(hand_loss(np.arange(B)), rel=1e-12)
    assert len(calls) == 1
