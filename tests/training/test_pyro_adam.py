"""The Pyro backend's Adam against optax's ``scale_by_adam`` (the NumPyro backend's), in float64."""

import numpy as np
import pytest
import torch

from infovae.training.pyro_backend import Adam

SHAPES = [(6, 5), (6,), (4, 3, 2, 2), (3, 0)]


@pytest.fixture
def x64():
    """float64 in JAX for this test; the setting is put back for the others."""
    jax = pytest.importorskip("jax")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", old)


def test_adam_takes_optaxs_steps_to_rounding(x64):
    jax, optax = x64, pytest.importorskip("optax")
    rng = np.random.default_rng(0)
    start = [rng.normal(size=s) for s in SHAPES]
    params = [torch.tensor(p) for p in start]
    adam = Adam(params)
    expected = [jax.numpy.asarray(p) for p in start]
    transform = optax.scale_by_adam()
    state = transform.init(expected)
    for t in range(25):
        # Gradients over many scales, clipped on every other step.
        grads, clip, lr = [rng.normal(size=s) * 10.0 ** rng.integers(-6, 3) for s in SHAPES], 0.3 if t % 2 else 1.0, 0.01
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        adam.step(lr, clip)
        updates, state = transform.update([jax.numpy.asarray(g * clip) for g in grads], state)
        expected = optax.apply_updates(expected, [-lr * u for u in updates])
    for mine, theirs in zip(params, expected):
        np.testing.assert_allclose(mine.numpy(), np.asarray(theirs), rtol=1e-12, atol=1e-14)
    for mine, theirs in zip(adam.nu, state.nu):
        np.testing.assert_allclose(mine.numpy(), np.asarray(theirs), rtol=1e-12, atol=0)
    assert adam.count == 25 and not np.allclose(params[0].numpy(), start[0])


def test_adam_resumes_bit_for_bit_from_its_state():
    rng = np.random.default_rng(1)
    grads = [[torch.tensor(rng.normal(size=s), dtype=torch.float32) for s in SHAPES] for _ in range(6)]

    def run(params, adam, steps):
        for g in steps:
            for p, gi in zip(params, g):
                p.grad = gi.clone()
            adam.step(1e-3, torch.tensor(0.7))

    whole = [torch.ones(s) for s in SHAPES]
    run(whole, Adam(whole), grads)
    first = [torch.ones(s) for s in SHAPES]
    adam = Adam(first)
    run(first, adam, grads[:3])
    resumed = [p.clone() for p in first]
    again = Adam(resumed)
    again.load_state_dict({k: [t.numpy() for t in v] if isinstance(v, list) else v for k, v in adam.state_dict().items()})
    run(resumed, again, grads[3:])
    for a, b in zip(whole, resumed):
        assert torch.equal(a, b)
