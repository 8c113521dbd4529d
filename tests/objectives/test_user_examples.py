"""The examples that prove InfoVAE_ELBO drops into users' code: Pyro's CVAE example shape with only its
ELBO line changed, and the M2 semi-supervised VAE (a discrete and a continuous latent)."""

import importlib.util
from pathlib import Path

import pyro
import pytest
import torch
from pyro.infer import TraceEnum_ELBO, config_enumerate

from infovae.objectives import InfoVAE_ELBO

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pyro_cvae_example_trains_with_infovae_elbo():
    cvae = load(EXAMPLES / "pyro_cvae" / "cvae.py")
    _, losses = cvae.train("infovae", steps=6, batch=32, log=None)
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.usefixtures("float64")
def test_m2_example_equals_traceenum_elbo_at_beta_one_and_reports_both_sites():
    m2 = load(EXAMPLES / "m2" / "m2.py")
    net = m2.M2().double()
    xs = m2.digits(labels_per_class=1, seed=0)[0][:16]
    pyro.set_rng_seed(1)
    ours = InfoVAE_ELBO().loss(net.model, net.guide, xs)
    pyro.set_rng_seed(1)
    ref = TraceEnum_ELBO(max_plate_nesting=1).loss(net.model, config_enumerate(net.guide, "parallel"), xs)
    assert ours == pytest.approx(ref, rel=1e-12)
    _, accuracy, terms = m2.train(steps=2, labels_per_class=1, batch=16, log=None)
    assert 0.0 <= accuracy <= 1.0
    for site in ("label", "style"):
        assert {f"kl[{site}]", f"mi[{site}]", f"marginal_kl[{site}]"} <= set(terms)
    assert terms["kl"] == pytest.approx(terms["kl[label]"] + terms["kl[style]"], rel=1e-6)
