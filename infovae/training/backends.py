"""What the training loop and the reports need from a backend, the registry of backends, and the
schedules every backend follows.

A backend trains a *group* of T >= 1 trials that share every shape (data, model sizes, batch size,
steps) and differ only in per-trial scalars: the objective's weights, the learning rate, the seed (so
the initial weights, the random stream and the data order), warm-up lengths, the gradient clip. The
Pyro backend trains one trial at a time; the NumPyro backend maps one compiled program over the trial
axis. The backend speaks NumPy at its boundary, so that the loop (:mod:`infovae.training.loop_group`) is the
same for every backend. Adding a backend is one module with a :class:`Backend` subclass and one
:func:`register_backend` line below.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

from infovae.registry import LazyCode, Registry

if TYPE_CHECKING:
    import numpy as np

    from infovae.core.architecture import CVAEConfig
    from infovae.data.base import Dataset
    from infovae.training.config import RunConfig  # the config names the backends: it imports this module

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendSpec",
    "Hyper",
    "backend_class",
    "learning_rate",
    "register_backend",
    "scheduled_weights",
    "shape_key",
    "warmup_factor",
    "weighted_terms",
]

# Config keys that may differ between the trials of one group: scalars that enter the compiled
# program as values (or only the host's bookkeeping), not as shapes or code.
PER_TRIAL_KEYS = {
    "objective": ("beta", "marginal_weight", "jsd_weight"),
    "train": ("lr", "seed", "warmup", "grad_clip", "lr_schedule", "early_stopping", "select", "monitor", "device"),
}


class BackendSpec(LazyCode):
    """A registered backend: its ``name``, its ``target`` ``"module:Class"`` (imported when first used,
    so that the command line starts without torch or JAX), a one-line ``description``, and the
    ``extra`` that installs what it needs."""


BACKENDS: Registry[BackendSpec] = Registry("backend", BackendSpec)


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Add ``spec`` to the registry (a name may be registered once)."""
    return BACKENDS.register(spec)


register_backend(BackendSpec("pyro", "infovae.training.pyro_backend:PyroBackend", "Pyro on PyTorch, one trial at a time", ""))
register_backend(BackendSpec(
    "numpyro", "infovae.training.numpyro_backend:NumPyroBackend",
    "NumPyro on JAX, jit-compiled, trials vectorised, diagnostics on the device", "numpyro",
))  # fmt: skip


def backend_class(name: str) -> type[Backend]:
    """The class of the backend ``name``; a clear error if it is unknown or its libraries are missing."""
    return BACKENDS.lookup(name).load("backend")


class Hyper(NamedTuple):
    """The per-trial scalars of a group, each an array ``[T]`` (a NamedTuple, so that JAX maps over it)."""

    beta: np.ndarray
    marginal_weight: np.ndarray
    jsd_weight: np.ndarray
    lr: np.ndarray
    # Warm-up lengths in steps (0: none) of beta, marginal_weight and jsd_weight.
    warmup_beta: np.ndarray
    warmup_marginal_weight: np.ndarray
    warmup_jsd_weight: np.ndarray
    # The largest global gradient norm (inf: no clipping).
    grad_clip: np.ndarray
    # 1.0 for a cosine learning-rate schedule, 0.0 for a constant one.
    cosine: np.ndarray

    @classmethod
    def of(cls, configs: Sequence[RunConfig]) -> Hyper:
        """The scalars of ``configs``, one entry per trial."""
        # Here, not at the top: the command line lists the backends without importing NumPy.
        import numpy as np

        def column(get):
            return np.array([get(c) for c in configs], dtype=np.float64)

        return cls(
            beta=column(lambda c: c.objective.beta),
            marginal_weight=column(lambda c: c.objective.marginal_weight),
            jsd_weight=column(lambda c: c.objective.jsd_weight),
            lr=column(lambda c: c.train.lr),
            warmup_beta=column(lambda c: c.train.warmup.beta),
            warmup_marginal_weight=column(lambda c: c.train.warmup.marginal_weight),
            warmup_jsd_weight=column(lambda c: c.train.warmup.jsd_weight),
            grad_clip=column(lambda c: math.inf if c.train.grad_clip is None else c.train.grad_clip),
            cosine=column(lambda c: float(c.train.lr_schedule == "cosine")),
        )


def shape_key(config: RunConfig, split_terms: bool = False) -> str:
    """What trials must share to train in one group: the config without its per-trial scalars. A group
    computes every optional term some trial weighs (a trial with that weight at zero adds it times zero,
    exactly nothing), so one program serves a whole grid over the weights; with ``split_terms``, trials
    that weigh different optional terms go to different groups instead, which saves their computation
    where it costs more than a compilation (long runs on a CPU)."""
    raw = config.to_dict()
    for section, keys in PER_TRIAL_KEYS.items():
        for key in keys:
            raw[section].pop(key, None)
    if split_terms:
        raw["terms"] = sorted(weighted_terms(config))
    return json.dumps(raw, sort_keys=True)


def weighted_terms(config: RunConfig) -> frozenset[str]:
    """The terms a trial's loss uses: ``recon``, ``kl`` and the optional ones it weighs."""
    optional = {"marginal": config.objective.marginal_weight, "jsd": config.objective.jsd_weight}
    return frozenset({"loss", "recon", "kl"} | {name for name, weight in optional.items() if weight > 0})


def warmup_factor(xp, step, length):
    """How far a linear warm-up of ``length`` steps has come at ``step`` (the steps done before this
    one): ``min(1, step / length)``, 1 without warm-up. ``xp`` is NumPy or ``jax.numpy``."""
    return xp.where(length > 0, xp.minimum(1.0, step / xp.maximum(length, 1.0)), 1.0)


def learning_rate(xp, step, base, cosine, total_steps):
    """The learning rate of step ``step``: ``base``, or on the cosine schedule
    ``base (1 + cos(pi step / total_steps)) / 2`` where ``cosine`` is 1."""
    decayed = 0.5 * base * (1.0 + xp.cos(math.pi * step / total_steps))
    return xp.where(cosine > 0, decayed, base)


def scheduled_weights(xp, step, hyper):
    """``(beta, marginal_weight, jsd_weight)`` of step ``step``, after warm-up."""
    return (
        hyper.beta * warmup_factor(xp, step, hyper.warmup_beta),
        hyper.marginal_weight * warmup_factor(xp, step, hyper.warmup_marginal_weight),
        hyper.jsd_weight * warmup_factor(xp, step, hyper.warmup_jsd_weight),
    )


class Backend(ABC):
    """A group of trials: their networks, objective, optimiser and random streams.

    :param configs: the trials' run configs (the same :func:`shape_key`).
    :param arch: the CVAE's shape.
    :param train_data: the training split (the examples minibatches index into).
    """

    name: str
    #: How many steps :meth:`train_steps` is given at a time, at most.
    chunk_size: int
    #: The most trials one instance trains together.
    max_trials: int

    def __init__(self, configs: Sequence[RunConfig], arch: CVAEConfig, train_data: Dataset):
        if len(configs) > self.max_trials:
            raise ValueError(f"the {self.name} backend trains at most {self.max_trials} trial(s) together, got {len(configs)}")
        self.configs, self.arch, self.num_data = list(configs), arch, len(train_data)
        self.hyper = Hyper.of(configs)
        self._per_data: dict[tuple[int, ...], tuple[tuple, object]] = {}

    @property
    def num_trials(self) -> int:
        return len(self.configs)

    # -- training ------------------------------------------------------------------------------

    @abstractmethod
    def train_steps(self, indices, active):
        """Optimisation steps on the minibatches ``indices [T, S, B]`` (rows of the training data) for
        the trials where ``active [T]`` is true; the others keep their state. A trial whose loss or
        gradient turns non-finite at a step keeps its state from before that step and takes no more
        steps in this call. Returns, per step, the per-example ``loss`` and the terms it used
        (``recon``, ``kl`` and those with a non-zero weight in some trial), as arrays ``[T, S]``."""

    @abstractmethod
    def keep_best(self, mask):
        """Remember the current weights of the trials where ``mask [T]`` is true as their selected ones."""

    def once_per_data(self, make, *data):
        """``make()``, computed once for each combination of the objects ``data`` (the held-out split,
        the probe's split, the generator: what an evaluation reads from the data alone) and kept. They
        are told apart by identity, and held with the result, so that a freed object's id, reused by
        another, cannot find its result."""
        key = tuple(map(id, data))
        if key not in self._per_data:
            self._per_data[key] = (data, make())
        return self._per_data[key][1]

    @abstractmethod
    def evaluate(self, held_out, fit, generator, seeds, selected=False):
        """Every diagnostic of :mod:`infovae.diagnostics.quantities` on ``held_out`` for each trial, as
        a dict of lists of length T (``None`` where a quantity does not apply). The probe is fitted on
        ``fit``. ``seeds [T]`` fix the draws; ``selected [T]`` (or ``False``) says which trials are
        evaluated with their selected weights (:meth:`keep_best`) rather than their current ones."""

    # -- state ---------------------------------------------------------------------------------

    @abstractmethod
    def state_dict(self):
        """Everything needed to continue exactly: weights, selected weights, optimiser, random state,
        as a tree of NumPy arrays and numbers (see :mod:`infovae.training.checkpoint`)."""

    @abstractmethod
    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned; a state of other shapes is a
        :class:`~infovae.errors.CheckpointError`."""

    @abstractmethod
    def trial_state(self, index):
        """The state of trial ``index`` alone, as :meth:`state_dict` of a group of that one trial."""

    # -- one trial's model, for reports (trial 0) ---------------------------------------------

    @abstractmethod
    def use_selected(self):
        """Make each trial's selected weights (``train.select``) its current ones, to read a finished run."""

    @abstractmethod
    def posterior(self, x, y):
        """Parameters of ``q(z|x,y)``: a :class:`~infovae.core.latents.CategoricalLatent` or
        :class:`~infovae.core.latents.GaussianLatent` of NumPy arrays."""

    @abstractmethod
    def prior(self, x):
        """Parameters of ``p(z|x)``, as :meth:`posterior`'s."""

    @abstractmethod
    def log_likelihood(self, x, y, z, pointwise=False):
        """``log p(y|x,z)`` for latents ``z`` with leading dims ``[*S, n]``; ``[*S, n]``, or
        ``[*S, n, y_dim]`` per factor of ``y`` with ``pointwise``."""

    @abstractmethod
    def decoder_mean(self, x, z):
        """The decoder's mean: class probabilities ``[..., y_dim, C]`` (categorical), ``[..., y_dim]``
        (Bernoulli) or locations ``[..., y_dim]`` (Gaussian)."""

    @abstractmethod
    def generate(self, x, seed, z=None):
        """Draw ``z ~ p(z|x)`` (unless ``z`` is given, leading dims ``[*S, n]``) then ``y ~ p(y|x,z)``."""
