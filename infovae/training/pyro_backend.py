"""The Pyro backend: :class:`~infovae.models.CVAEModel`, :class:`~infovae.guides.CVAEGuide` and
:class:`~infovae.objectives.InfoVAE_ELBO`, optimised with Pyro's Adam."""

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer.util import zero_grads

from infovae.guides import CVAEGuide
from infovae.models import CVAEModel
from infovae.objectives import InfoVAE_ELBO
from infovae.training.backend import Backend

__all__ = ["PyroBackend"]


class PyroBackend(Backend):
    name = "pyro"
    # One step at a time: Pyro runs eagerly, so chunks would only delay the progress bar.
    chunk_size = 1

    def __init__(self, arch, objective, train, num_data):
        self.arch = arch
        self.num_data = num_data
        pyro.clear_param_store()
        pyro.set_rng_seed(train.seed)
        self.model, self.guide = CVAEModel(arch), CVAEGuide(arch)
        self.elbo = InfoVAE_ELBO(**objective.elbo_kwargs())
        self.optim = pyro.optim.Adam({"lr": train.lr})

    def _x(self, x):
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())

    def _y(self, y):
        y = np.asarray(y)
        return torch.as_tensor(y) if self.arch.likelihood == "categorical" else self._x(y)

    def _z(self, z):
        z = np.asarray(z)
        return torch.as_tensor(z) if self.arch.latent == "discrete" else self._x(z)

    def train_steps(self, xs, ys):
        steps = [self._step(x, y) for x, y in zip(xs, ys)]
        return {name: np.array([s[name] for s in steps]) for name in steps[0]}

    def _step(self, x, y):
        with poutine.trace(param_only=True) as capture:
            terms = self.elbo.differentiable_terms(self.model, self.guide, self._x(x), self._y(y), num_data=self.num_data)
            terms["loss"].backward()
        params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
        self.optim(params)
        zero_grads(params)
        out = {name: value.item() for name, value in terms.items()}
        out["loss"] /= self.num_data
        return out

    def loss_terms(self, x, y, seed):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            terms = self.elbo.loss_terms(self.model, self.guide, self._x(x), self._y(y))
        terms["loss"] /= len(x)
        return terms

    @staticmethod
    def _params(fn):
        base = fn.base_dist if hasattr(fn, "base_dist") else fn
        if isinstance(base, torch.distributions.Categorical):
            return {"probs": base.probs.numpy()}
        return {"loc": base.loc.numpy(), "scale": base.scale.numpy()}

    @torch.no_grad()
    def posterior(self, x, y):
        return self._params(self.guide.posterior(self._x(x), self._y(y)))

    @torch.no_grad()
    def prior(self, x):
        return self._params(self.model.prior(self._x(x)))

    @torch.no_grad()
    def log_likelihood(self, x, y, z, pointwise=False):
        fn = self.model.decoder(self._x(x), self._z(z))
        return (fn.base_dist if pointwise else fn).log_prob(self._y(y)).numpy()

    @torch.no_grad()
    def decoder_mean(self, x, z):
        fn = self.model.decoder(self._x(x), self._z(z)).base_dist
        return (fn.loc if self.arch.likelihood == "gaussian" else fn.probs).numpy()

    @torch.no_grad()
    def generate(self, x, seed, z=None):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            x = self._x(x)
            z = self.model.prior(x).sample() if z is None else self._z(z)
            y = self.model.decoder(x, z).sample()
        return z.numpy(), y.numpy()

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "guide": self.guide.state_dict(),
            "optim": self.optim.get_state(),
            "rng": pyro.util.get_rng_state(),
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.guide.load_state_dict(state["guide"])
        self.optim.set_state(state["optim"])
        pyro.util.set_rng_state(state["rng"])

    def weights(self):
        return {
            "model": {k: v.numpy().copy() for k, v in self.model.state_dict().items()},
            "guide": {k: v.numpy().copy() for k, v in self.guide.state_dict().items()},
        }
