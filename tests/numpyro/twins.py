"""The same CVAE in both backends, on the same weights and data, for the parity tests.

Every test uses the sizes here, so that JAX compiles each operation once for the whole folder.
"""

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pyro
import torch
from numpyro import handlers
from pyro.poutine.messenger import Messenger

from infovae.core.architecture import CVAEConfig
from infovae.guides import CVAEGuide as TorchGuide
from infovae.models import CVAEModel as TorchModel
from infovae.numpyro.guides import CVAEGuide
from infovae.numpyro.models import CVAEModel
from infovae.numpyro.weights import numpyro_to_state_dicts, torch_to_numpyro

BATCH, NUM_DATA = 7, 30
SIZES = dict(x_dim=3, y_dim=4, num_classes=3, latent_size=4, hidden=16)
LIKELIHOODS = ("categorical", "bernoulli", "gaussian")
PRIORS = ("fixed", "learned")


def close(actual, expected, rtol=1e-8, atol=1e-11, err_msg=""):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=atol, err_msg=err_msg)


def assert_loss_is_the_per_example_objective(terms, kwargs, n=NUM_DATA):
    """``loss / N == -(recon - beta*kl - marginal_weight*marginal + jsd_weight*jsd)``."""
    objective = terms["recon"] - kwargs.get("beta", 1.0) * terms["kl"]
    objective = objective - kwargs.get("marginal_weight", 0.0) * terms["marginal"] + kwargs.get("jsd_weight", 0.0) * terms["jsd"]
    close(terms["loss"] / n, -objective)


def make_targets(rng, likelihood, shape):
    if likelihood == "categorical":
        return rng.integers(0, SIZES["num_classes"], shape)
    if likelihood == "bernoulli":
        return rng.integers(0, 2, shape).astype(float)
    return rng.normal(size=shape)


@dataclass
class Twins:
    """A Pyro model/guide, their NumPyro twins holding the same weights, and a batch of data."""

    config: CVAEConfig
    torch_model: TorchModel
    torch_guide: TorchGuide
    model: CVAEModel
    guide: CVAEGuide
    params: dict
    x: np.ndarray
    y: np.ndarray

    @property
    def torch_data(self):
        return torch.as_tensor(self.x), torch.as_tensor(self.y)

    @property
    def jax_data(self):
        return jnp.asarray(self.x), jnp.asarray(self.y)

    def assert_same_weights(self, params, rtol=1e-8, atol=1e-11):
        """The torch modules' weights equal NumPyro ``params``."""
        for module, expected in zip((self.torch_model, self.torch_guide), numpyro_to_state_dicts(params)):
            state = module.state_dict()
            assert set(state) == set(expected)
            for name, value in state.items():
                close(value, expected[name], rtol, atol)

    def assert_same_grads(self, grads, rtol=1e-7, atol=1e-10):
        """The torch modules' ``.grad`` equal NumPyro gradients (a params-shaped tree)."""
        for module, expected in zip((self.torch_model, self.torch_guide), numpyro_to_state_dicts(grads)):
            for name, p in module.named_parameters():
                close(p.grad, expected[name], rtol, atol)


def make_twins(latent, likelihood="categorical", prior="learned", batch=BATCH, seed=0, **options):
    config = CVAEConfig(latent=latent, prior=prior, likelihood=likelihood, **SIZES, **options)
    pyro.set_rng_seed(seed)
    torch_model, torch_guide = TorchModel(config), TorchGuide(config)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, config.x_dim))
    y = make_targets(rng, likelihood, (batch, config.y_dim))
    params = torch_to_numpyro(torch_model, torch_guide)
    return Twins(config, torch_model, torch_guide, CVAEModel(config), CVAEGuide(config), params, x, y)


# -- the same noise in both backends ------------------------------------------------------------


class TorchNoise(Messenger):
    """Sets the Normal latent ``site`` to ``loc + scale * eps``, keeping the reparameterised path."""

    def __init__(self, eps, site="z"):
        super().__init__()
        self.eps, self.site = eps, site

    def _pyro_sample(self, msg):
        if msg["name"] == self.site and msg["value"] is None:
            base = msg["fn"].base_dist
            msg["value"] = base.loc + base.scale * self.eps


def jax_noise(guide, eps, site="z"):
    """``guide`` with the Normal latent ``site`` set to ``loc + scale * eps``, as :class:`TorchNoise`."""

    def value(msg):
        if msg["type"] == "sample" and msg["name"] == site:
            base = msg["fn"].base_dist
            return base.loc + base.scale * eps
        return None

    return handlers.substitute(guide, substitute_fn=value)
