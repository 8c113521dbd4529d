"""The two marginal KLs of a discrete latent in both backends on the same float64 inputs: values,
gradients and errors (the values against independent computations: tests/objectives/test_marginal_kls.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from infovae.numpyro.objectives import divergences as jx
from infovae.objectives import divergences as pt

from .twins import close

RNG = np.random.default_rng(3)
Q, P = RNG.dirichlet(np.ones(5), size=6), RNG.dirichlet(np.ones(5), size=6)
FIXED = np.tile(P[:1], (6, 1))
# q never puts mass on the last class, and the second-to-last is used by one example only.
SPARSE = np.array([[0.5, 0.5, 0.0, 0.0], [0.2, 0.3, 0.5, 0.0], [0.9, 0.1, 0.0, 0.0]])


@pytest.mark.parametrize("name", ["aggregate_categorical_kl", "bias_corrected_categorical_kl"])
@pytest.mark.parametrize("q, p", [(Q, P), (Q, FIXED), (SPARSE, np.full((3, 4), 0.25))], ids=["learned", "fixed", "sparse"])
def test_values_agree(name, q, p):
    torch_value = getattr(pt, name)(torch.as_tensor(q), torch.as_tensor(p))
    jax_value = getattr(jx, name)(jnp.asarray(q), jnp.asarray(p))
    assert np.isfinite(float(jax_value))
    close(torch_value, jax_value)


@pytest.mark.parametrize("name", ["aggregate_categorical_kl", "bias_corrected_categorical_kl"])
def test_gradients_agree(name):
    q, p = torch.tensor(Q, requires_grad=True), torch.tensor(P, requires_grad=True)
    getattr(pt, name)(q, p).backward()
    grad_q, grad_p = jax.grad(getattr(jx, name), argnums=(0, 1))(jnp.asarray(Q), jnp.asarray(P))
    close(q.grad, grad_q)
    close(p.grad, grad_p)


def test_one_example_is_refused_with_the_same_message():
    with pytest.raises(ValueError) as torch_error:
        pt.bias_corrected_categorical_kl(torch.as_tensor(Q[:1]), torch.as_tensor(P[:1]))
    with pytest.raises(ValueError) as jax_error:
        jx.bias_corrected_categorical_kl(jnp.asarray(Q[:1]), jnp.asarray(P[:1]))
    assert str(jax_error.value) == str(torch_error.value)
