"""Two discrete latent sites, the second's posterior and prior depending on the first, summed out
jointly and exactly in both backends (float64): against a hand computation, against Pyro's
TraceEnum_ELBO at beta=1, and the ELBO surgery per site."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

from infovae import objectives as pt
from infovae.numpyro import objectives as jx

B, KA, KB, C = 5, 2, 3, 4
RNG = np.random.default_rng(0)
TABLES = dict(
    q_a=RNG.normal(size=(B, KA)),
    q_b=RNG.normal(size=(B, KA, KB)),
    p_a=RNG.normal(size=KA),
    p_b=RNG.normal(size=(KA, KB)),
    dec=RNG.normal(size=(KA, KB, C)) * 2,
)
Y = RNG.integers(0, C, B)


def log_softmax(a):
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def hand_elbo_and_mi():
    """Per-example ELBO summed, and the exact MI of each site and of both, from the definitions."""
    lqa, lqb = log_softmax(TABLES["q_a"]), log_softmax(TABLES["q_b"])  # [B, KA], [B, KA, KB]
    lpa, lpb, ldec = log_softmax(TABLES["p_a"]), log_softmax(TABLES["p_b"]), log_softmax(TABLES["dec"])
    joint = np.exp(lqa)[:, :, None] * np.exp(lqb)  # [B, KA, KB]
    inner = ldec[:, :, Y].transpose(2, 0, 1) + lpa[None, :, None] + lpb[None] - lqa[:, :, None] - lqb
    elbo = (joint * inner).sum()

    def mi(q):  # q [B, K]
        return (q * np.log(q / q.mean(0))).sum(-1).mean()

    qa, qb = joint.sum(2), joint.sum(1)
    return elbo, mi(joint.reshape(B, -1)), mi(qa), mi(qb)


def pyro_pair():
    t = {k: torch.as_tensor(v) for k, v in TABLES.items()}
    idx = torch.arange(B)

    def model(y):
        with pyro.plate("data", B):
            a = pyro.sample("a", pdist.Categorical(logits=t["p_a"]))
            b = pyro.sample("b", pdist.Categorical(logits=t["p_b"][a]))
            pyro.sample("y", pdist.Categorical(logits=t["dec"][a, b]), obs=y)

    def guide(y):
        with pyro.plate("data", B):
            a = pyro.sample("a", pdist.Categorical(logits=t["q_a"]))
            pyro.sample("b", pdist.Categorical(logits=t["q_b"][idx, a]))

    return model, guide


def numpyro_pair():
    t = {k: jnp.asarray(v) for k, v in TABLES.items()}
    idx = jnp.arange(B)

    def model(y):
        with numpyro.plate("data", B):
            a = numpyro.sample("a", ndist.Categorical(logits=t["p_a"]))
            b = numpyro.sample("b", ndist.Categorical(logits=t["p_b"][a]))
            numpyro.sample("y", ndist.Categorical(logits=t["dec"][a, b]), obs=y)

    def guide(y):
        with numpyro.plate("data", B):
            a = numpyro.sample("a", ndist.Categorical(logits=t["q_a"]))
            numpyro.sample("b", ndist.Categorical(logits=t["q_b"][idx, a]))

    return model, guide


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_two_discrete_sites_are_summed_out_jointly_and_exactly(backend):
    elbo, mi_joint, mi_a, mi_b = hand_elbo_and_mi()
    if backend == "pyro":
        model, guide = pyro_pair()
        y = torch.as_tensor(Y)
        terms = pt.InfoVAE_ELBO().loss_terms(model, guide, y)
        ref = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide, "parallel"), y)
        assert terms["loss"] == pytest.approx(ref, rel=1e-12)
    else:
        model, guide = numpyro_pair()
        terms = {
            k: float(v) for k, v in jx.InfoVAE_ELBO().loss_terms(jax.random.PRNGKey(0), {}, model, guide, jnp.asarray(Y)).items()
        }
    assert terms["loss"] == pytest.approx(-elbo, rel=1e-12)
    assert terms["mi"] == pytest.approx(mi_joint, rel=1e-10)
    assert terms["mi[a]"] == pytest.approx(mi_a, rel=1e-10)
    assert terms["mi[b]"] == pytest.approx(mi_b, rel=1e-10)
    assert terms["kl"] == pytest.approx(terms["kl[a]"] + terms["kl[b]"], rel=1e-12)
