"""InfoVAE_ELBO on model/guide pairs written the way Pyro's own examples write them: plates without a
size, subsampled plates, plates at another dim; at ``beta=1`` it is Pyro's own ELBO on each (float64)."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam

from infovae.objectives import InfoVAE_ELBO, mmd

from .pairs import InjectedNoise, example_cvae_pair, linear_gaussian_pair, m2_pair

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


def test_pyro_elbo_keywords_are_accepted_and_particles_average():
    model, guide = example_cvae_pair()
    xs, ys = example_batch()
    elbo = InfoVAE_ELBO(num_particles=4, vectorize_particles=True, retain_graph=True, strict_enumeration_warning=False)
    assert elbo.vectorize_particles and elbo.retain_graph
    pyro.set_rng_seed(7)
    ours = elbo.loss(model, guide, xs, ys)
    pyro.set_rng_seed(7)
    singles = [InfoVAE_ELBO().loss(model, guide, xs, ys) for _ in range(4)]
    assert ours == pytest.approx(sum(singles) / 4, rel=1e-10)
    assert elbo.max_plate_nesting == 1  # guessed from the traces


def test_global_latent_and_two_observed_sites_equal_trace_elbo_at_beta_one():
    """A Bayesian decoder weight (global latent) and two observed sites: ordinary ELBO terms."""
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(6, 3, generator=gen), torch.randn(6, 2, generator=gen)
    enc = torch.randn(3, 2, generator=gen)

    def model(a, b):
        weight = pyro.sample("weight", dist.Normal(torch.zeros(2, 3), 1.0).to_event(2))
        with pyro.plate("data", 20, subsample=torch.arange(len(a))):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(a), 2), 1.0).to_event(1))
            pyro.sample("a", dist.Normal(z @ weight, 1.0).to_event(1), obs=a)
            pyro.sample("b", dist.Normal(z, 0.5).to_event(1), obs=b)

    def guide(a, b):
        pyro.sample("weight", dist.Normal(torch.full((2, 3), 0.1), 0.3).to_event(2))
        with pyro.plate("data", 20, subsample=torch.arange(len(a))):
            pyro.sample("z", dist.Normal(a @ enc * 0.2, 0.7).to_event(1))

    ours = paired(2, InfoVAE_ELBO(), model, guide, a, b)
    assert ours == pytest.approx(paired(2, Trace_ELBO(), model, guide, a, b), rel=1e-12)
    # beta weighs the local KL only; the global latent's term stays once per dataset.
    pyro.set_rng_seed(2)
    terms = InfoVAE_ELBO(beta=0.0).differentiable_terms(model, guide, a, b)
    assert terms["loss"].item() == pytest.approx(-20 * terms["recon"].item() + terms["global_kl"].item(), rel=1e-12)


def test_block_mmd_is_the_mean_of_the_blocks_statistics():
    gen = torch.Generator().manual_seed(5)
    params = dict(weight=torch.randn(2, 3, generator=gen), enc=torch.randn(3, 2, generator=gen), log_scale=torch.zeros(2))
    model, guide = linear_gaussian_pair(**params)
    x, y, eps = torch.randn(9, 2, generator=gen), torch.randn(9, 3, generator=gen), torch.randn(9, 2, generator=gen)
    guide = InjectedNoise("z", eps)(guide)
    posterior = pyro.poutine.trace(guide).get_trace(x, y).nodes["z"]["value"]
    kwargs = dict(marginal="mmd", marginal_weight=1.0)
    pyro.set_rng_seed(11)
    blocks = InfoVAE_ELBO(mmd_block_size=4, **kwargs).loss_terms(model, guide, x, y)["marginal"]
    pyro.set_rng_seed(11)
    prior = dist.Normal(torch.zeros(9, 2), 1.0).to_event(1).rsample()  # the objective's one prior draw
    # 9 examples in blocks of about 4: two blocks of 4, the ninth left out.
    expected = (mmd(posterior[:4], prior[:4]) + mmd(posterior[4:8], prior[4:8])) / 2
    assert blocks == pytest.approx(expected.item(), rel=1e-12)
    pyro.set_rng_seed(11)
    whole = InfoVAE_ELBO(mmd_block_size="auto", **kwargs).loss_terms(model, guide, x, y)["marginal"]
    assert whole == pytest.approx(mmd(posterior, prior).item(), rel=1e-12)  # "auto": one block up to 256
