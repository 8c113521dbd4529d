"""Two discrete latent sites, the second's posterior and prior depending on the first, summed out
jointly and exactly in both backends (float64): against a hand computation, against Pyro's
TraceEnum_ELBO at beta=1, and the ELBO surgery per site (each site's MI given the sites before it) on
ground truths: a site that copies another, sites independent in the aggregate, a hand enumeration."""

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
TABLES["y"] = Y


def log_softmax(a):
    return a - np.log(np.exp(a).sum(-1, keepdims=True))


def plogp(p, log_ratio):
    """``p * log_ratio`` with ``0 log 0 = 0`` (a configuration that q rules out counts nothing)."""
    return np.where(p > 0, p * np.where(p > 0, log_ratio, 0.0), 0.0)


def hand_terms(t):
    """The per-example ELBO summed, the joint MI and the ELBO surgery per site from the definitions:
    ``mi[b] = I(x; b | a)`` with the minibatch's aggregate posterior ``qbar(b|a) = mean_i q(a,b|x_i) /
    mean_i q(a|x_i)``, and ``marginal_kl[b] = E_qbar(a) KL(qbar(b|a) || p(b|a))``."""
    lqa, lqb = log_softmax(t["q_a"]), log_softmax(t["q_b"])  # [B, KA], [B, KA, KB]: q(a|x_i), q(b|a,x_i)
    lpa, lpb, ldec = log_softmax(t["p_a"]), log_softmax(t["p_b"]), log_softmax(t["dec"])
    qa, joint = np.exp(lqa), np.exp(lqa)[:, :, None] * np.exp(lqb)  # [B, KA], [B, KA, KB]
    with np.errstate(invalid="ignore", divide="ignore"):
        inner = ldec[:, :, t["y"]].transpose(2, 0, 1) + lpa[None, :, None] + lpb[None] - lqa[:, :, None] - lqb
        qbar_a, qbar_ab = qa.mean(0), joint.mean(0)
        qbar_b = qbar_ab / qbar_a[:, None]  # qbar(b|a)
        out = dict(
            elbo=plogp(joint, inner).sum(),
            mi=plogp(joint, np.log(joint / qbar_ab)).sum((1, 2)).mean(),
            kl_a=plogp(qa, lqa - lpa).sum(-1).mean(),
            kl_b=plogp(joint, lqb - lpb).sum((1, 2)).mean(),
            mi_a=plogp(qa, np.log(qa / qbar_a)).sum(-1).mean(),
            mi_b=plogp(joint, lqb - np.log(qbar_b)).sum((1, 2)).mean(),
            marginal_kl_a=plogp(qbar_a, np.log(qbar_a) - lpa).sum(),
            marginal_kl_b=(qbar_a * plogp(qbar_b, np.log(qbar_b) - lpb).sum(-1)).sum(),
        )
    return out


def pyro_pair(tables=TABLES):
    t = {k: torch.as_tensor(v) for k, v in tables.items()}
    idx = torch.arange(len(t["q_a"]))

    def model(y):
        with pyro.plate("data", len(idx)):
            a = pyro.sample("a", pdist.Categorical(logits=t["p_a"]))
            b = pyro.sample("b", pdist.Categorical(logits=t["p_b"][a]))
            pyro.sample("y", pdist.Categorical(logits=t["dec"][a, b]), obs=y)

    def guide(y):
        with pyro.plate("data", len(idx)):
            a = pyro.sample("a", pdist.Categorical(logits=t["q_a"]))
            pyro.sample("b", pdist.Categorical(logits=t["q_b"][idx, a]))

    return model, guide


def numpyro_pair(tables=TABLES):
    t = {k: jnp.asarray(v) for k, v in tables.items()}
    idx = jnp.arange(len(t["q_a"]))

    def model(y):
        with numpyro.plate("data", len(idx)):
            a = numpyro.sample("a", ndist.Categorical(logits=t["p_a"]))
            b = numpyro.sample("b", ndist.Categorical(logits=t["p_b"][a]))
            numpyro.sample("y", ndist.Categorical(logits=t["dec"][a, b]), obs=y)

    def guide(y):
        with numpyro.plate("data", len(idx)):
            a = numpyro.sample("a", ndist.Categorical(logits=t["q_a"]))
            numpyro.sample("b", ndist.Categorical(logits=t["q_b"][idx, a]))

    return model, guide


def reported(backend, tables):
    if backend == "pyro":
        model, guide = pyro_pair(tables)
        return pt.InfoVAE_ELBO().loss_terms(model, guide, torch.as_tensor(tables["y"]))
    model, guide = numpyro_pair(tables)
    terms = jx.InfoVAE_ELBO().loss_terms(jax.random.PRNGKey(0), {}, model, guide, jnp.asarray(tables["y"]))
    return {k: float(v) for k, v in terms.items()}


def assert_surgery_per_site(terms, hand):
    """Each site's terms are the definitions', and they sum to the totals."""
    for site in ("a", "b"):
        for term in ("kl", "mi", "marginal_kl"):
            assert terms[f"{term}[{site}]"] == pytest.approx(hand[f"{term}_{site}"], rel=1e-10, abs=1e-12), (term, site)
    assert terms["mi"] == pytest.approx(hand["mi"], rel=1e-10)
    assert terms["mi"] == pytest.approx(terms["mi[a]"] + terms["mi[b]"], rel=1e-12)
    assert terms["kl"] == pytest.approx(terms["kl[a]"] + terms["kl[b]"], rel=1e-12)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_two_discrete_sites_are_summed_out_jointly_and_exactly(backend):
    hand = hand_terms(TABLES)
    terms = reported(backend, TABLES)
    if backend == "pyro":
        model, guide = pyro_pair()
        ref = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide, "parallel"), torch.as_tensor(Y))
        assert terms["loss"] == pytest.approx(ref, rel=1e-12)
    assert terms["loss"] == pytest.approx(-hand["elbo"], rel=1e-12)
    assert_surgery_per_site(terms, hand)
    assert hand["marginal_kl_b"] > 0.01 and hand["mi_b"] > 0.01  # neither is trivially zero here


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_a_second_site_that_copies_the_first_has_nothing_of_its_own(backend):
    """``b = a`` in guide and prior: I(x; b | a) = 0, and b's KL and marginal KL are 0 (with b's MI
    taken unconditionally, I(x; b) = I(x; a), its marginal KL would be -I(x; a))."""
    K = 3
    copy = np.where(np.eye(K, dtype=bool), 0.0, -1e4)  # logits of b given a: b = a (exp(-1e4) is 0)
    tables = dict(TABLES, q_a=RNG.normal(size=(B, K)), q_b=np.broadcast_to(copy, (B, K, K)).copy(), p_a=RNG.normal(size=K))
    tables.update(p_b=copy, dec=RNG.normal(size=(K, K, C)), y=Y)
    hand = hand_terms(tables)
    terms = reported(backend, tables)
    assert (hand["mi_b"], hand["kl_b"], hand["marginal_kl_b"]) == (0.0, 0.0, 0.0)
    assert hand["mi"] == pytest.approx(hand["mi_a"], rel=1e-12) and hand["mi_a"] > 0.1
    assert_surgery_per_site(terms, hand)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_sites_independent_in_the_aggregate_have_their_single_site_numbers(backend):
    """Examples on a grid (u, v), ``q(a|x) = Qa[u]``, ``q(b|a,x) = Qb[v]``, ``p(b|a) = p(b)``: a and b
    are independent under the aggregate posterior, so I(x; b | a) = I(v; b), and each site's terms
    are those of the site alone, from its own posterior probabilities."""
    U, V, KA, KB = 3, 4, 2, 3
    u, v = np.repeat(np.arange(U), V), np.tile(np.arange(V), U)
    Qa, Qb, pb = RNG.normal(size=(U, KA)), RNG.normal(size=(V, KB)), RNG.normal(size=KB)
    tables = dict(
        q_a=Qa[u],
        q_b=np.broadcast_to(Qb[v][:, None], (U * V, KA, KB)).copy(),
        p_a=RNG.normal(size=KA),
        p_b=np.broadcast_to(pb, (KA, KB)).copy(),
        dec=RNG.normal(size=(KA, KB, C)),
        y=RNG.integers(0, C, U * V),
    )
    terms = reported(backend, tables)

    def single_site(logits, prior_logits):
        q, log_p = np.exp(log_softmax(logits)), log_softmax(prior_logits)
        qbar = q.mean(0)
        mi = (q * np.log(q / qbar)).sum(-1).mean()
        return {"kl": (q * (np.log(q) - log_p)).sum(-1).mean(), "mi": mi, "marginal_kl": (qbar * (np.log(qbar) - log_p)).sum()}

    for site, alone in (("a", single_site(Qa[u], tables["p_a"])), ("b", single_site(Qb[v], pb))):
        for term, value in alone.items():
            assert terms[f"{term}[{site}]"] == pytest.approx(value, rel=1e-10), (term, site)
    assert terms["mi"] == pytest.approx(terms["mi[a]"] + terms["mi[b]"], rel=1e-12)
