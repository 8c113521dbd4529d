"""Model/guide pairs written here, not by the library, to test InfoVAE_ELBO on users' own code."""

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger


def plate(batch_size, num_data):
    if num_data is None:
        return pyro.plate("data", batch_size)
    return pyro.plate("data", num_data, subsample=torch.arange(batch_size))


def table_pair(q_logits, prior_logits, dec_logits, likelihood="categorical"):
    """A discrete latent over K values with every distribution a free table.

    ``q(z|i) = softmax(q_logits[i])``, ``p(z) = softmax(prior_logits)`` and ``p(y|z)``: categorical
    (``dec_logits [K, C]``), factorised categorical (``[K, T, C]``) or Bernoulli (``[K, D]``).
    """

    def decoder(z):
        logits = dec_logits[z]
        if likelihood == "bernoulli":
            return dist.Bernoulli(logits=logits).to_event(1)
        fn = dist.Categorical(logits=logits)
        return fn.to_event(1) if dec_logits.dim() == 3 else fn

    def model(idx, y, num_data=None):
        with plate(len(idx), num_data):
            z = pyro.sample("z", dist.Categorical(logits=prior_logits))
            pyro.sample("y", decoder(z), obs=y)

    def guide(idx, y, num_data=None):
        with plate(len(idx), num_data):
            pyro.sample("z", dist.Categorical(logits=q_logits[idx]))

    return model, guide


def linear_gaussian_pair(weight, enc, log_scale, learned_prior=None):
    """A continuous latent: ``p(z) = N(0, I)`` (or ``N(x @ learned_prior, I)``),
    ``p(y|z) = N(z @ weight, 1)``, ``q(z|y) = N(y @ enc, exp(log_scale))``."""

    def model(x, y, num_data=None):
        d = weight.shape[0]
        with plate(len(x), num_data):
            loc = x.new_zeros(len(x), d) if learned_prior is None else x @ learned_prior
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            pyro.sample("y", dist.Normal(z @ weight, 1.0).to_event(1), obs=y)

    def guide(x, y, num_data=None):
        with plate(len(x), num_data):
            pyro.sample("z", dist.Normal(y @ enc, log_scale.exp()).to_event(1))

    return model, guide


class InjectedNoise(Messenger):
    """Sets a Normal latent to ``loc + scale * eps`` (keeping the reparameterised path)."""

    def __init__(self, site, eps):
        super().__init__()
        self.site, self.eps = site, eps

    def _pyro_sample(self, msg):
        if msg["name"] == self.site and msg["value"] is None:
            base = msg["fn"].base_dist
            msg["value"] = base.loc + base.scale * self.eps
