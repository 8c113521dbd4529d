import jax
import pytest
import torch


@pytest.fixture(autouse=True)
def x64():
    """Parity is checked in float64 on both sides."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    with jax.enable_x64(True):
        yield
    torch.set_default_dtype(old)
