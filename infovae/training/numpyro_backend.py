"""The NumPyro backend: the flax twins of the CVAE, the NumPyro :class:`InfoVAE_ELBO`, and optax's
Adam, with training steps jit-compiled and run in chunks by :func:`jax.lax.scan` so that Python is
out of the hot path.

A run starts from the same weights as the Pyro backend with the same seed (the torch initialisation,
transferred), so that the two backends can be compared run for run.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from infovae.numpyro.guides import CVAEGuide
from infovae.numpyro.models import CVAEModel
from infovae.numpyro.objectives import InfoVAE_ELBO
from infovae.numpyro.weights import numpyro_to_state_dicts, state_dicts_to_numpyro
from infovae.training.backend import Backend

__all__ = ["NumPyroBackend"]


def _initial_state_dicts(arch, seed):
    """The Pyro backend's initial weights for ``seed``."""
    import pyro

    from infovae.guides import CVAEGuide as TorchGuide
    from infovae.models import CVAEModel as TorchModel

    pyro.set_rng_seed(seed)
    model, guide = TorchModel(arch), TorchGuide(arch)
    return model.state_dict(), guide.state_dict()


class NumPyroBackend(Backend):
    name = "numpyro"
    # Steps per compiled chunk (a chunk never crosses an evaluation).
    chunk_size = 100

    def __init__(self, arch, objective, train, num_data):
        self.arch = arch
        self.num_data = num_data
        self.model, self.guide = CVAEModel(arch), CVAEGuide(arch)
        self.elbo = InfoVAE_ELBO(**objective.elbo_kwargs())
        self.optimizer = optax.adam(train.lr)
        self.params = state_dicts_to_numpyro(*_initial_state_dicts(arch, train.seed), dtype=jnp.float32)
        self.opt_state = self.optimizer.init(self.params)
        self.rng_key = jax.random.PRNGKey(train.seed)
        self._train = jax.jit(self._train_impl)
        self._loss_terms = jax.jit(self._loss_terms_impl)

    # -- arrays in -------------------------------------------------------------------------------

    def _x(self, x):
        return jnp.asarray(np.asarray(x, dtype=np.float32))

    def _y(self, y):
        return jnp.asarray(np.asarray(y, dtype=np.int32 if self.arch.likelihood == "categorical" else np.float32))

    def _z(self, z):
        return jnp.asarray(np.asarray(z, dtype=np.int32 if self.arch.latent == "discrete" else np.float32))

    # -- training ----------------------------------------------------------------------------------

    def _step(self, carry, batch):
        params, opt_state, key = carry
        key, step_key = jax.random.split(key)
        x, y = batch

        def loss(p):
            terms = self.elbo.differentiable_terms(step_key, p, self.model, self.guide, x, y, num_data=self.num_data)
            return terms["loss"], terms

        grads, terms = jax.grad(loss, has_aux=True)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        terms = {**terms, "loss": terms["loss"] / self.num_data}
        return (optax.apply_updates(params, updates), opt_state, key), terms

    def _train_impl(self, params, opt_state, key, xs, ys):
        (params, opt_state, key), terms = jax.lax.scan(self._step, (params, opt_state, key), (xs, ys))
        return params, opt_state, key, terms

    def train_steps(self, xs, ys):
        self.params, self.opt_state, self.rng_key, terms = self._train(self.params, self.opt_state, self.rng_key, self._x(xs), self._y(ys))
        return {name: np.asarray(values, dtype=np.float64) for name, values in terms.items()}

    # -- evaluation --------------------------------------------------------------------------------

    def _loss_terms_impl(self, params, key, x, y):
        return self.elbo.loss_terms(key, params, self.model, self.guide, x, y)

    def loss_terms(self, x, y, seed):
        terms = {k: float(v) for k, v in self._loss_terms(self.params, jax.random.PRNGKey(seed), self._x(x), self._y(y)).items()}
        terms["loss"] /= len(x)
        return terms

    @staticmethod
    def _latent_params(fn):
        base = fn.base_dist if hasattr(fn, "base_dist") else fn
        if hasattr(base, "probs"):
            return {"probs": np.asarray(base.probs, dtype=np.float64)}
        return {"loc": np.asarray(base.loc, dtype=np.float64), "scale": np.asarray(base.scale, dtype=np.float64)}

    def posterior(self, x, y):
        return self._latent_params(self.guide.posterior(self.params, self._x(x), self._y(y)))

    def prior(self, x):
        return self._latent_params(self.model.prior(self.params, self._x(x)))

    def log_likelihood(self, x, y, z, pointwise=False):
        fn = self.model.decoder(self.params, self._x(x), self._z(z))
        return np.asarray((fn.base_dist if pointwise else fn).log_prob(self._y(y)), dtype=np.float64)

    def decoder_mean(self, x, z):
        fn = self.model.decoder(self.params, self._x(x), self._z(z)).base_dist
        return np.asarray(fn.loc if self.arch.likelihood == "gaussian" else fn.probs, dtype=np.float64)

    @partial(jax.jit, static_argnums=0)
    def _generate(self, params, key, x, z):
        prior_key, decoder_key = jax.random.split(key)
        if z is None:
            z = self.model.prior(params, x).sample(prior_key)
        return z, self.model.decoder(params, x, z).sample(decoder_key)

    def generate(self, x, seed, z=None):
        z, y = self._generate(self.params, jax.random.PRNGKey(seed), self._x(x), None if z is None else self._z(z))
        return np.asarray(z), np.asarray(y)

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self):
        return jax.device_get({"params": self.params, "opt_state": self.opt_state, "rng_key": self.rng_key})

    def load_state_dict(self, state):
        self.params = jax.tree.map(jnp.asarray, state["params"])
        self.opt_state = jax.tree.map(jnp.asarray, state["opt_state"])
        self.rng_key = jnp.asarray(state["rng_key"])

    def weights(self):
        model, guide = numpyro_to_state_dicts(self.params)
        return {"model": model, "guide": guide}
