"""The Pyro backend reads subnormal floats as zero while it trains (as XLA does on a CPU) and gives the
caller's setting of torch's process-wide switch back afterwards."""

import pytest
import torch

import infovae
from infovae.training.pyro_backend import flushing_subnormals, subnormals_flushed

TINY = {
    "data": {"kind": "strategies", "num_examples": 120, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "discrete", "latent_size": 3, "hidden": 8},
    "train": {"steps": 3, "batch_size": 16, "eval_every": 3, "eval_examples": 16},
    "backend": "pyro",
}


@pytest.fixture(params=[False, True], ids=["caller-keeps-subnormals", "caller-flushes"])
def caller(request):
    if not torch.set_flush_denormal(request.param):
        pytest.skip("this CPU has no flush-to-zero mode")
    yield request.param
    torch.set_flush_denormal(False)


def test_subnormals_are_flushed_inside_and_the_callers_setting_comes_back(caller):
    assert flushing_subnormals() is caller
    with subnormals_flushed():
        assert flushing_subnormals()
    assert flushing_subnormals() is caller
    with pytest.raises(RuntimeError), subnormals_flushed():
        raise RuntimeError("a step failed")
    assert flushing_subnormals() is caller


def test_a_pyro_run_leaves_the_callers_setting_as_it_was(caller, tmp_path):
    infovae.train(TINY, out=tmp_path / "run", progress=False)
    assert flushing_subnormals() is caller
