"""What the training loop and the diagnostics need from a backend, and how to make one.

A backend owns the networks, the objective and the optimiser of one run, and speaks numpy at its
boundary so that the loop (:mod:`infovae.training.loop`) and the diagnostics (:mod:`infovae.diagnostics`)
are the same for Pyro and NumPyro. Latent distributions cross the boundary as their parameters:
``{"probs": [n, K]}`` for a discrete latent, ``{"loc": [n, d], "scale": [n, d]}`` for a Gaussian one.
"""

from abc import ABC, abstractmethod

from infovae.core.architecture import CVAEConfig

__all__ = ["Backend", "make_backend"]


class Backend(ABC):
    """One run's model, guide, objective and optimiser."""

    name: str
    arch: CVAEConfig
    # How many steps :meth:`train_steps` is given at a time, at most.
    chunk_size: int

    @abstractmethod
    def train_steps(self, xs, ys):
        """Optimisation steps on the minibatches ``xs [S, B, ...]``, ``ys [S, B, ...]``; returns, per
        step, the per-example ``loss`` and the terms it used (``recon``, ``kl`` and those with
        non-zero weight), as arrays ``[S]``."""

    @abstractmethod
    def loss_terms(self, x, y, seed):
        """Every term of the objective on ``(x, y)`` as one batch, per example, as floats; ``seed``
        fixes the latent draws and leaves the training stream of random numbers untouched."""

    @abstractmethod
    def posterior(self, x, y):
        """Parameters of ``q(z|x,y)``, numpy."""

    @abstractmethod
    def prior(self, x):
        """Parameters of ``p(z|x)``, numpy."""

    @abstractmethod
    def log_likelihood(self, x, y, z, pointwise=False):
        """``log p(y|x,z)`` for latents ``z`` with leading dims ``[*S, n]`` (integers for a discrete
        latent, ``[*S, n, d]`` for a Gaussian one); returns ``[*S, n]``, or ``[*S, n, y_dim]`` per
        factor of ``y`` with ``pointwise``."""

    @abstractmethod
    def decoder_mean(self, x, z):
        """The decoder's mean: class probabilities ``[..., y_dim, C]`` (categorical), ``[..., y_dim]``
        (Bernoulli) or locations ``[..., y_dim]`` (Gaussian)."""

    @abstractmethod
    def generate(self, x, seed, z=None):
        """Draw ``z ~ p(z|x)`` (unless ``z`` is given, with leading dims ``[*S, n]``) then
        ``y ~ p(y|x,z)``; returns ``(z, y)``."""

    @abstractmethod
    def state_dict(self):
        """Everything needed to continue training exactly: weights, optimiser, random state."""

    @abstractmethod
    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned."""

    @abstractmethod
    def weights(self):
        """The network weights alone, as numpy arrays in the Pyro layout (for reports and transfer)."""


def make_backend(config, arch, num_data):
    """The backend named by ``config.backend`` for the architecture ``arch`` and ``num_data`` training examples."""
    if config.backend == "pyro":
        from infovae.training.pyro_backend import PyroBackend

        return PyroBackend(arch, config.objective, config.train, num_data)
    from infovae.training.numpyro_backend import NumPyroBackend

    return NumPyroBackend(arch, config.objective, config.train, num_data)
