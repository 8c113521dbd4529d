"""InfoVAE_ELBO on model/guide pairs written the way Pyro's own examples write them: plates without a
size, subsampled plates, plates at another dim; at ``beta=1`` it is Pyro's own ELBO on each (float64)."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam

from infovae.objectives import InfoVAE_ELBO

from .pairs import example_cvae_pair, m2_pair

pytestmark = pytest.mark.usefixtures("float64")


def example_batch(batch=5, x_dim=6, seed=1):
    """Inputs with their right half missing (-1), as Pyro's CVAE example masks quadrants, and targets."""
    gen = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, 2, (batch, x_dim), generator=gen).double()
    xs = ys.clone()
    xs[:, x_dim // 2 :] = -1.0
    return xs, ys


def paired(seed, elbo, model, guide, *args, **kwargs):
    pyro.set_rng_seed(seed)
    return elbo.loss(model, guide, *args, **kwargs)


def test_pyro_cvae_example_shape_trains_and_equals_trace_elbo_at_beta_one():
    model, guide = example_cvae_pair()
    xs, ys = example_batch()
    ours = paired(3, InfoVAE_ELBO(), model, guide, xs, ys)
    ref = paired(3, Trace_ELBO(), model, guide, xs, ys)
    assert ours == pytest.approx(ref, rel=1e-12)
    # Other seeds draw other latents: the equality above is not a coincidence of constants.
    assert paired(4, InfoVAE_ELBO(), model, guide, xs, ys) != pytest.approx(ours, rel=1e-6)
    svi = SVI(model, guide, Adam({"lr": 0.05}), InfoVAE_ELBO(marginal="mmd", marginal_weight=1.0, jsd_weight=0.1))
    losses = [svi.step(xs, ys) for _ in range(30)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])


def subsampled_pair(dim):
    """A linear-Gaussian pair over N = 20 examples, subsampled to the batch given as ``idx``."""
    gen = torch.Generator().manual_seed(0)
    data, enc = torch.randn(20, 3, generator=gen), torch.randn(3, 2, generator=gen)
    pad = (1,) * (-1 - dim)

    def model(idx):
        with pyro.plate("data", 20, subsample=idx, dim=dim):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(idx), *pad, 2), 1.0).to_event(1))
            pyro.sample("y", dist.Normal(z @ enc.T, 1.0).to_event(1), obs=data[idx].reshape(len(idx), *pad, 3))

    def guide(idx):
        with pyro.plate("data", 20, subsample=idx, dim=dim):
            pyro.sample("z", dist.Normal(data[idx].reshape(len(idx), *pad, 3) @ enc * 0.3, 0.5).to_event(1))

    return model, guide


@pytest.mark.parametrize("dim", [-1, -2])
def test_subsampled_plate_scales_like_trace_elbo(dim):
    model, guide = subsampled_pair(dim)
    idx = torch.tensor([3, 7, 11, 19])
    ours = paired(0, InfoVAE_ELBO(), model, guide, idx)
    ref = paired(0, Trace_ELBO(), model, guide, idx)
    assert ours == pytest.approx(ref, rel=1e-12)
    # The batch-level terms carry the same N = 20: loss / N is the per-example objective.
    kwargs = dict(beta=0.5, marginal="mmd", marginal_weight=3.0, jsd_weight=0.2)
    pyro.set_rng_seed(1)
    terms = InfoVAE_ELBO(**kwargs).loss_terms(model, guide, idx)
    per_example = terms["recon"] - 0.5 * terms["kl"] - 3.0 * terms["marginal"] + 0.2 * terms["jsd"]
    assert terms["loss"] / 20 == pytest.approx(-per_example, rel=1e-10)


# -- several latent sites -----------------------------------------------------------------------


def digits(batch=6, x_dim=5, seed=2):
    return torch.randint(0, 2, (batch, x_dim), generator=torch.Generator().manual_seed(seed)).double()


def test_m2_equals_traceenum_elbo_at_beta_one_and_reports_both_sites():
    model, guide = m2_pair()
    xs = digits()
    ours = paired(0, InfoVAE_ELBO(), model, guide, xs)
    ref = paired(0, TraceEnum_ELBO(max_plate_nesting=1), model, config_enumerate(guide, "parallel"), xs)
    assert ours == pytest.approx(ref, rel=1e-12)
    pyro.set_rng_seed(0)
    terms = InfoVAE_ELBO().loss_terms(model, guide, xs)
    assert terms["kl"] == pytest.approx(terms["kl[label]"] + terms["kl[style]"], rel=1e-12)
    # The label's MI and marginal KL are exact: against the definitions on its posterior probabilities.
    with torch.no_grad():
        q = torch.softmax(_classifier(guide)(xs), -1)
    qbar = q.mean(0)
    mi = (q * (q / qbar).log()).sum(-1).mean()
    assert terms["mi[label]"] == pytest.approx(mi.item(), rel=1e-10)
    assert terms["marginal_kl[label]"] == pytest.approx(terms["kl[label]"] - mi.item(), rel=1e-10)
    assert 0 <= terms["mi[label]"] <= math.log(3) + 1e-12
    assert math.isfinite(terms["mi[style]"]) and math.isfinite(terms["marginal"])


def _classifier(guide):
    cells = dict(zip(guide.__code__.co_freevars, (c.cell_contents for c in guide.__closure__)))
    return cells["classify"]
