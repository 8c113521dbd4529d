"""A ``pyro.factor`` site is part of the model's log-density but neither an observation's likelihood
nor a latent's prior: InfoVAE_ELBO reports it as the term ``factor`` (not in ``recon``) and counts it in
the loss as Trace_ELBO / TraceEnum_ELBO do, whatever ``beta``."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO, config_enumerate

from infovae.errors import UnsupportedModelError
from infovae.objectives import InfoVAE_ELBO

N, B, K, D = 20, 5, 3, 2


def data():
    return torch.randn(B, 3, generator=torch.Generator().manual_seed(0))


def continuous_pair(with_factor=True):
    def model(y):
        with pyro.plate("data", N, subsample=torch.arange(B)):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, D), 1.0).to_event(1))
            pyro.sample("y", dist.Normal(z.sum(-1, keepdim=True).expand(B, 3), 1.0).to_event(1), obs=y)
            if with_factor:
                pyro.factor("f", -z.pow(2).sum(-1))

    def guide(y):
        with pyro.plate("data", N, subsample=torch.arange(B)):
            pyro.sample("z", dist.Normal(y[:, :D] * 0.5, 0.7).to_event(1))

    return model, guide


def discrete_pair():
    def model(y):
        with pyro.plate("data", N, subsample=torch.arange(B)):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(K)))
            loc = z.to(y.dtype).unsqueeze(-1).expand(z.shape + (3,))
            pyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)
            pyro.factor("f", -0.3 * z.to(y.dtype) ** 2)

    def guide(y):
        with pyro.plate("data", N, subsample=torch.arange(B)):
            pyro.sample("z", dist.Categorical(logits=y[:, :K]))

    return model, guide


def test_a_factor_is_its_own_term_and_the_loss_is_trace_elbos_at_beta_one(float64):
    y = data()
    model, guide = continuous_pair()
    pyro.set_rng_seed(1)
    expected = Trace_ELBO().loss(model, guide, y)
    pyro.set_rng_seed(1)
    terms = InfoVAE_ELBO().loss_terms(model, guide, y)
    assert terms["loss"] == pytest.approx(expected, rel=1e-12)
    assert terms["loss"] == pytest.approx(-N * (terms["recon"] + terms["factor"] - terms["kl"]), rel=1e-12)
    # recon is the likelihood of y alone: the model without the factor gives the same one.
    plain_model, _ = continuous_pair(with_factor=False)
    pyro.set_rng_seed(1)
    plain = InfoVAE_ELBO().loss_terms(plain_model, guide, y)
    assert terms["recon"] == pytest.approx(plain["recon"], rel=1e-12)
    assert "factor" not in plain


def test_a_factor_of_a_discrete_latent_is_its_expectation_and_not_weighed_by_beta(float64):
    y = data()
    model, guide = discrete_pair()
    expected = TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide), y)
    terms = InfoVAE_ELBO().loss_terms(model, guide, y)
    assert terms["loss"] == pytest.approx(expected, rel=1e-12)
    q = torch.softmax(y[:, :K], -1)
    assert terms["factor"] == pytest.approx(float((q * -0.3 * torch.arange(K) ** 2).sum() / B), rel=1e-12)
    half = InfoVAE_ELBO(beta=0.5).loss_terms(model, guide, y)
    assert half["factor"] == terms["factor"]
    assert half["loss"] == pytest.approx(-N * (half["recon"] + half["factor"] - 0.5 * half["kl"]), rel=1e-12)


def test_loss_differentiable_loss_and_loss_and_grads_agree_with_a_factor(float64):
    y = data()
    model, guide = continuous_pair()
    elbo = InfoVAE_ELBO(marginal="mmd", marginal_weight=1.0)
    pyro.set_rng_seed(2)
    loss = elbo.loss(model, guide, y)
    pyro.set_rng_seed(2)
    differentiable = elbo.differentiable_loss(model, guide, y)
    pyro.set_rng_seed(2)
    assert elbo.loss_and_grads(model, guide, y) == pytest.approx(loss, rel=1e-12)
    assert float(differentiable) == pytest.approx(loss, rel=1e-12)


def test_a_factor_named_in_obs_site_is_still_a_factor_and_the_jsd_leaves_it_out(float64):
    y = data()
    model, guide = discrete_pair()
    pyro.set_rng_seed(3)  # the JSD of a Normal decoder is a Monte-Carlo estimate
    named = InfoVAE_ELBO(obs_site=("y", "f"), jsd_weight=0.5).loss_terms(model, guide, y)
    pyro.set_rng_seed(3)
    plain = InfoVAE_ELBO(jsd_weight=0.5).loss_terms(model, guide, y)
    assert named == plain and "factor" in plain and "jsd" in plain


def test_a_model_whose_only_observation_is_a_factor_has_no_jsd(float64):
    y = data()

    def model(y):
        with pyro.plate("data", N, subsample=torch.arange(B)):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(K)))
            pyro.factor("f", dist.Normal(z.to(y.dtype).unsqueeze(-1), 1.0).log_prob(y).sum(-1))

    _, guide = discrete_pair()
    with pytest.warns(UserWarning, match="leaves out the term 'jsd'"):
        terms = InfoVAE_ELBO().loss_terms(model, guide, y)
    assert terms["loss"] == pytest.approx(TraceEnum_ELBO(max_plate_nesting=1).loss(model, config_enumerate(guide), y), rel=1e-12)
    assert terms["recon"] == 0.0
    with pytest.raises(UnsupportedModelError, match=r"only the factor site\(s\) \['f'\]: set jsd_weight=0"):
        InfoVAE_ELBO(jsd_weight=1.0).loss(model, guide, y)
