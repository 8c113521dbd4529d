import jax
import pytest
import torch


@pytest.fixture(autouse=True)
def float64():
    """Parity is checked in float64 on both sides; both settings are put back afterwards, so that the
    other test folders keep their defaults."""
    old_torch, old_jax = torch.get_default_dtype(), jax.config.jax_enable_x64
    torch.set_default_dtype(torch.float64)
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old_jax)
    torch.set_default_dtype(old_torch)
