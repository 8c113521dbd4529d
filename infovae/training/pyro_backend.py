"""The Pyro backend: :class:`~infovae.models.CVAEModel`, :class:`~infovae.guides.CVAEGuide` and
:class:`~infovae.objectives.InfoVAE_ELBO`, optimised with Adam, one trial at a time, on the torch
device ``train.device``; evaluation through :func:`infovae.diagnostics.evaluate.evaluate` (NumPy and
scikit-learn), the reference the NumPyro backend's on-device diagnostics are tested against.

The networks are ordinary torch modules owned by the backend, not entries of Pyro's global parameter
store, so that two runs in one process do not share or clear each other's weights.
"""

import copy
import math
import warnings
from contextlib import contextmanager

import numpy as np
import pyro
import torch

from infovae.core.initial_weights import cvae_initial_weights
from infovae.core.latents import CategoricalLatent, GaussianLatent
from infovae.core.objective import assemble_loss
from infovae.diagnostics.evaluate import evaluate, held_out_set
from infovae.errors import CheckpointError, UserInputError, first_line
from infovae.guides import CVAEGuide
from infovae.models import CVAEModel
from infovae.objectives import InfoVAE_ELBO
from infovae.training.backends import Backend, learning_rate, scheduled_weights

__all__ = ["PyroBackend"]


class Adam:
    r"""Adam (Kingma & Ba, 2015) with optax's defaults, the NumPyro backend's update, as torch's fused
    kernel computes it (the one ``torch.optim.Adam(fused=True)`` calls, one pass over each tensor):

    .. math::

        m \gets b_1 m + (1 - b_1)\, g, \quad v \gets b_2 v + (1 - b_2)\, g^2, \quad
        \theta \gets \theta - \frac{\mathrm{lr}}{1 - b_1^t} \frac{m}{\sqrt{v} / \sqrt{1 - b_2^t} + \epsilon}.

    optax's ``scale_by_adam`` computes the same update in another order (it divides ``v`` by
    :math:`1 - b_2^t` before the square root), so the two backends agree to float rounding, not bit
    for bit. Called directly, the kernel spares the start-up of ``torch.optim``, whose constructor
    imports ``torch._dynamo`` (seconds)."""

    def __init__(self, params, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.b1, self.b2, self.eps = list(params), b1, b2, eps
        self.mu = [torch.zeros_like(p) for p in self.params]
        self.nu = [torch.zeros_like(p) for p in self.params]
        self.count = 0

    @torch.no_grad()
    def step(self, lr, clip=1.0):
        """One update from the parameters' ``.grad``, each first multiplied by ``clip`` (a number or a
        0-d tensor)."""
        self.count += 1
        grads = [p.grad for p in self.params]
        if not (isinstance(clip, float) and clip == 1.0):
            torch._foreach_mul_(grads, clip)
        count = torch.tensor(float(self.count), device=self.params[0].device)
        torch._fused_adam_(
            self.params, grads, self.mu, self.nu, [], [count] * len(self.params), lr=lr, beta1=self.b1, beta2=self.b2,
            weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False,
        )  # fmt: skip

    def state_dict(self):
        return {"count": self.count, "mu": list(self.mu), "nu": list(self.nu)}

    def load_state_dict(self, state):
        if len(state["mu"]) != len(self.params) or any(
            tuple(m.shape) != tuple(p.shape) for m, p in zip(state["mu"], self.params)
        ):
            raise ValueError("the optimiser state has other shapes")
        self.count = int(state["count"])
        self.mu = [torch.as_tensor(m, dtype=p.dtype, device=p.device).clone() for m, p in zip(state["mu"], self.params)]
        self.nu = [torch.as_tensor(v, dtype=p.dtype, device=p.device).clone() for v, p in zip(state["nu"], self.params)]


def _backward(loss, params):
    """The gradient of ``loss`` into each parameter's ``.grad``, replacing what was there; zeros for a
    parameter the loss does not reach."""
    for p in params:
        p.grad = None
    loss.backward()
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)


class _Terms(torch.nn.Module):
    """The objective's terms of the backend's model and guide on a minibatch, as a module whose
    parameters are the networks' (so that a trace of it reads them as parameters, and gradients reach
    them)."""

    def __init__(self, elbo, model, guide, num_data):
        super().__init__()
        self.elbo, self.model, self.guide, self.num_data = elbo, model, guide, num_data
        self.names = None

    def forward(self, x, y):
        # pyro.module registers the networks in Pyro's global param store: a scope of its own keeps
        # runs in one process apart.
        with pyro.get_param_store().scope():
            terms = self.elbo.differentiable_terms(self.model, self.guide, x, y, num_data=self.num_data)
        self.names = tuple(terms)
        return tuple(terms.values())


class TracedTerms:
    """The objective's terms of a minibatch, recorded once per minibatch shape with
    :func:`torch.jit.trace` and replayed by TorchScript's interpreter.

    Why: an eager step runs Pyro's effect handlers, param store and distribution objects in Python,
    about a fifth of a step on the MNIST model on two CPU cores (docs/performance.md); the replay runs
    the same tensor operations without them, and autograd differentiates them as it does eager ones,
    so a replayed step computes the eager step's numbers and draws the same random numbers.

    The replay runs unoptimised (``torch.jit.optimized_execution(False)``): TorchScript's optimising
    executor would replace autograd's derivatives with its own (other numbers in the last bits) and
    was slower here; it also fails on a linear layer without inputs (an unconditional model's).

    Recording runs the objective in Python twice, once eagerly (which also settles what a first pass
    decides once, such as the ELBO's guess of ``max_plate_nesting``, whose pass restores the random
    state in Python, where a trace cannot see it) and once traced, on a copy of torch's random state
    (``fork_rng``), so that the run's stream of random numbers is an eager run's. A trace holds no
    Python branch on a tensor's value, freezes values made into Python numbers or lists, and drops
    draws whose values go unused. So the replay is checked against the eager pass, on the minibatch
    reversed and other draws than the recording's: terms, gradients and the random state after them
    equal to the bit. Where they are not (a model whose control flow depends on its data or draws, say),
    or recording fails (a ``RuntimeError``, or a torch without ``torch.jit.trace``, which is deprecated),
    the steps run eagerly, with a warning. A branch on the draws shows only where the
    check's draws take another branch than the recording's (a branch on a fair coin: half the time); one
    they take alike goes unseen, and every replay then follows the recorded branch. Such a choice written
    with tensor operations (``torch.where``) is what a trace holds.

    What the replay leaves out: Pyro's and torch's checks of distribution arguments (the recording is
    made with validation off) and the ELBO's NaN warning. A step whose loss or gradient is not finite
    still changes nothing (:meth:`PyroBackend._step`).
    """

    def __init__(self, elbo, model, guide, num_data, params):
        self.module = _Terms(elbo, model, guide, num_data)
        self.params = params
        self.replays = {}

    def __call__(self, x, y):
        """The terms by name, as tensors that autograd differentiates."""
        key = (tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)
        if key not in self.replays:
            self.replays[key] = self._record(x, y)
        if self.replays[key] is self.module:
            return self.eager(x, y)
        with torch.jit.optimized_execution(False):
            return dict(zip(self.module.names, self.replays[key](x, y)))

    def eager(self, x, y):
        """The terms computed in Python, Pyro's handlers and all: what a replay reproduces."""
        values = self.module(x, y)
        return dict(zip(self.module.names, values))

    def _record(self, x, y):
        if not all(hasattr(torch.jit, name) for name in ("trace", "optimized_execution", "TracerWarning")):
            return self._eager_instead("cannot be made (this torch has no torch.jit.trace)")
        generator = torch.default_generator if x.device.type == "cpu" else torch.cuda.default_generators[x.device.index or 0]
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings(), torch.jit.optimized_execution(False):
            # torch.jit.trace is deprecated in favour of torch.compile and torch.export (FutureWarning),
            # which do not pay here (docs/performance.md). TracerWarnings name what a trace freezes: in
            # this library's models the batch size read as a number (fixed by the key a replay is stored
            # under); anything else shows in the check below.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The check runs on the minibatch reversed and on other draws than the recording, so that
            # a branch on the data or the draws taken otherwise shows as other numbers.
            seeds = torch.randint(2**62, (2,), generator=generator, device=x.device)
            check_seed, trace_seed = (int(seed) for seed in seeds)
            reversed_x, reversed_y = x.flip(0), y.flip(0)
            generator.manual_seed(check_seed)
            terms = self.module(reversed_x, reversed_y)
            eager = (*terms, *self._gradients(terms))
            eager_state = generator.get_state()
            try:
                generator.manual_seed(trace_seed)
                with pyro.validation_enabled(False):
                    replay = torch.jit.trace(self.module, (x, y), check_trace=False)
                generator.manual_seed(check_seed)
                terms = replay(reversed_x, reversed_y)
                replayed = (*terms, *self._gradients(terms))
            except RuntimeError as error:
                why = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            else:
                if torch.equal(generator.get_state(), eager_state) and all(map(torch.equal, eager, replayed)):
                    return replay
                why = "other numbers"
        return self._eager_instead(f"did not reproduce the eager one ({why})")

    def _eager_instead(self, reason):
        warnings.warn(
            f"the Pyro backend's recorded training step {reason}; its steps run eagerly (slower)",
            RuntimeWarning,
            stacklevel=4,
        )
        return self.module

    def _gradients(self, terms):
        """The gradient of the terms' sum by parameter, leaving each ``.grad`` empty."""
        _backward(sum(terms), self.params)
        grads = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        return grads


def _tensors(tree, device):
    """NumPy arrays in a checkpoint tree as torch tensors."""
    if isinstance(tree, dict):
        return {k: _tensors(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_tensors(v, device) for v in tree)
    if isinstance(tree, np.ndarray):
        return torch.as_tensor(tree, device=device)
    return tree


def _arrays(tree):
    if isinstance(tree, dict):
        return {k: _arrays(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_arrays(v) for v in tree)
    if torch.is_tensor(tree):
        return tree.detach().cpu().numpy().copy()
    return tree


def flushing_subnormals():
    """Whether torch reads numbers below float32's normal range as zero (it has no getter for its switch)."""
    return (torch.tensor([1e-40], dtype=torch.float32, device="cpu") * 1.0).item() == 0.0


@contextmanager
def subnormals_flushed():
    """Numbers below float32's normal range (Adam's second moments of tiny gradients, weights that decay
    towards zero) read as zero while training steps run, as XLA does on a CPU: arithmetic on subnormals
    runs several times slower on x86 CPUs. The switch is torch's and process-wide, so the caller's
    setting is restored afterwards (no effect where the CPU has no such mode)."""
    before = flushing_subnormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


class PyroBackend(Backend):
    name = "pyro"
    # One step at a time: Pyro runs eagerly, so chunks would only delay the progress bar.
    chunk_size = 1
    max_trials = 1

    def __init__(self, configs, arch, train_data):
        super().__init__(configs, arch, train_data)
        (config,) = self.configs
        self.device = torch.device(config.train.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserInputError("train.device=cuda, but torch finds no CUDA device (the Pyro backend runs where torch runs)")
        self.steps = config.train.steps
        self.train_x, self.train_y = self._x(train_data.x), self._y(train_data.y)
        self.model, self.guide = CVAEModel(arch), CVAEGuide(arch)
        # The NumPyro backend's initial weights for this seed (load_state_dict casts them to the modules' dtype).
        for module, state in zip((self.model, self.guide), cvae_initial_weights(arch, config.train.seed)):
            module.load_state_dict({name: torch.from_numpy(value) for name, value in state.items()})
        self.model, self.guide = self.model.to(self.device), self.guide.to(self.device)
        # The training's random numbers (latent draws) start from the seed, whatever building the modules drew.
        pyro.set_rng_seed(config.train.seed)
        self.elbo = InfoVAE_ELBO(**config.objective.elbo_kwargs())
        self.params = list(self.model.parameters()) + list(self.guide.parameters())
        self.terms = TracedTerms(self.elbo, self.model, self.guide, self.num_data, self.params)
        self.optim = Adam(self.params)
        self.best = self._weights()

    # -- arrays in ---------------------------------------------------------------------------------

    def _x(self, x):
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype(), device=self.device)

    def _y(self, y):
        y = np.asarray(y)
        return torch.as_tensor(y, device=self.device) if self.arch.likelihood == "categorical" else self._x(y)

    def _z(self, z):
        z = np.asarray(z)
        return torch.as_tensor(z, device=self.device) if self.arch.latent == "discrete" else self._x(z)

    # -- training ----------------------------------------------------------------------------------

    def train_steps(self, indices, active):
        if not active[0]:
            return {}
        steps = []
        with subnormals_flushed():
            for index in indices[0]:
                # index_select with a tensor: a fifth of the time of indexing with a NumPy array.
                index = torch.from_numpy(index).to(self.device)
                terms = self._step(self.train_x.index_select(0, index), self.train_y.index_select(0, index))
                steps.append(terms)
                if not all(math.isfinite(v) for v in terms.values()):
                    break
        return {name: np.array([[s[name] for s in steps]]) for name in steps[0]}

    def _step(self, x, y):
        """One optimisation step; a step whose loss or gradient is not finite changes nothing."""
        h = self.hyper
        t = self.optim.count
        weights = [float(w[0]) for w in scheduled_weights(np, t, h)]
        terms = self.terms(x, y)
        loss = assemble_loss(terms, self.num_data, *weights)
        _backward(loss, self.params)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm([p.grad for p in self.params])))
        # One copy to the host for all the numbers logged or branched on.
        *term_values, loss_value, norm_value = torch.stack(
            [v.detach().reshape(()) for v in (*terms.values(), loss, norm)]
        ).tolist()
        out = dict(zip(terms, term_values))
        out["loss"] = loss_value / self.num_data
        if not (math.isfinite(out["loss"]) and math.isfinite(norm_value)):
            out["loss"] = out["loss"] if not math.isfinite(out["loss"]) else math.nan
            return out
        clip = float(h.grad_clip[0]) / norm if norm_value > h.grad_clip[0] else 1.0
        self.optim.step(float(learning_rate(np, t, h.lr[0], h.cosine[0], self.steps)), clip)
        return out

    def keep_best(self, mask):
        if mask[0]:
            self.best = self._weights()

    def _weights(self):
        return {"model": copy.deepcopy(self.model.state_dict()), "guide": copy.deepcopy(self.guide.state_dict())}

    def evaluate(self, held_out, fit, generator, seeds, selected=False):
        data = self.once_per_data(lambda: held_out_set(held_out, fit, generator, self.configs[0]), held_out, fit, generator)
        with self._selected(selected is not False and bool(np.asarray(selected).reshape(-1)[0])):
            record = evaluate(self, data, generator, self.configs[0], int(seeds[0]))
        return {name: [value] for name, value in record.items()}

    def loss_terms(self, x, y, seed):
        """Every term of the objective on ``(x, y)`` as one batch, per example, as floats; ``seed``
        fixes the latent draws and leaves the training stream of random numbers untouched."""
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []), pyro.get_param_store().scope():
            torch.manual_seed(seed)
            terms = self.elbo.loss_terms(self.model, self.guide, self._x(x), self._y(y))
        terms["loss"] /= len(x)
        return terms

    class _Swap:
        def __init__(self, backend, weights):
            self.backend, self.weights, self.saved = backend, weights, None

        def __enter__(self):
            if self.weights is not None:
                self.saved = self.backend._weights()
                self.backend.model.load_state_dict(self.weights["model"])
                self.backend.guide.load_state_dict(self.weights["guide"])

        def __exit__(self, *exc):
            if self.saved is not None:
                self.backend.model.load_state_dict(self.saved["model"])
                self.backend.guide.load_state_dict(self.saved["guide"])

    def _selected(self, selected):
        return self._Swap(self, self.best if selected else None)

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self):
        return _arrays({
            "weights": self._weights(),
            "best": self.best,
            "optim": self.optim.state_dict(),
            "rng": pyro.util.get_rng_state(),
        })  # fmt: skip

    def load_state_dict(self, state):
        try:
            self.model.load_state_dict(_tensors(state["weights"]["model"], self.device))
            self.guide.load_state_dict(_tensors(state["weights"]["guide"], self.device))
            self.best = _tensors(state["best"], self.device)
            self.optim.load_state_dict(state["optim"])
            rng = state["rng"]
            pyro.util.set_rng_state({
                "torch": torch.as_tensor(rng["torch"]),
                "random": rng["random"],
                "numpy": tuple(rng["numpy"]),
            })  # fmt: skip
        except (KeyError, RuntimeError, TypeError, ValueError) as error:
            raise CheckpointError(f"the checkpoint does not fit this run's model ({first_line(error)})") from None

    def trial_state(self, index):
        return self.state_dict()

    # -- the selected model, for reports -------------------------------------------------------

    def use_selected(self):
        if self.configs[0].train.select == "best":
            self.model.load_state_dict(self.best["model"])
            self.guide.load_state_dict(self.best["guide"])

    @staticmethod
    def _params(fn):
        base = fn.base_dist if hasattr(fn, "base_dist") else fn
        if isinstance(base, torch.distributions.Categorical):
            return CategoricalLatent(base.probs.cpu().numpy())
        return GaussianLatent(base.loc.cpu().numpy(), base.scale.cpu().numpy())

    @torch.no_grad()
    def posterior(self, x, y):
        return self._params(self.guide.posterior(self._x(x), self._y(y)))

    @torch.no_grad()
    def prior(self, x):
        return self._params(self.model.prior(self._x(x)))

    @torch.no_grad()
    def log_likelihood(self, x, y, z, pointwise=False):
        fn = self.model.decoder(self._x(x), self._z(z))
        return (fn.base_dist if pointwise else fn).log_prob(self._y(y)).cpu().numpy()

    @torch.no_grad()
    def decoder_mean(self, x, z):
        fn = self.model.decoder(self._x(x), self._z(z)).base_dist
        mean = fn.loc if self.arch.likelihood == "gaussian" else fn.probs
        return (
            torch.broadcast_to(mean, fn.batch_shape + fn.event_shape + mean.shape[len(fn.batch_shape) + len(fn.event_shape) :])
            .cpu()
            .numpy()
        )

    @torch.no_grad()
    def generate(self, x, seed, z=None):
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            x = self._x(x)
            z = self.model.prior(x).sample() if z is None else self._z(z)
            y = self.model.decoder(x, z).sample()
        return z.cpu().numpy(), y.cpu().numpy()
