"""What InfoVAE_ELBO says of a user's pair it does not support: the message names the actual reason
(an autoguide's auxiliary site, a global latent's undeclared batch dims, a guessed plate nesting kept
from another pair), and the pairs next to them that it supports still give Pyro's numbers."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyro.infer.autoguide import AutoDelta, AutoDiagonalNormal, AutoNormal

from infovae.errors import UnsupportedModelError
from infovae.objectives import InfoVAE_ELBO

N, D = 6, 2


def data():
    return torch.randn(N, 3, generator=torch.Generator().manual_seed(0))


def model(y, dim=-1):
    with pyro.plate("data", N, dim=dim):
        z = pyro.sample("z", dist.Normal(torch.zeros(D), 1.0).to_event(1))
        loc = z.sum(-1, keepdim=True).expand(z.shape[:-1] + (3,))
        pyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y.reshape(loc.shape))


def guide(y, dim=-1):
    shape = (N, D) if dim == -1 else (N,) + (1,) * (-dim - 1) + (D,)
    with pyro.plate("data", N, dim=dim):
        pyro.sample("z", dist.Normal(torch.zeros(shape), 1.0).to_event(1))


@pytest.mark.parametrize("autoguide, site", [(AutoNormal, "z_unconstrained"), (AutoDiagonalNormal, "_AutoDiagonalNormal_latent")])
def test_an_autoguide_with_an_auxiliary_site_is_refused_as_such(autoguide, site):
    with pytest.raises(UnsupportedModelError) as error:
        InfoVAE_ELBO().loss(model, autoguide(model), data())
    message = str(error.value)
    assert f"auxiliary site(s) ['{site}']" in message and "is_auxiliary" in message
    assert "samples the model's latent sites themselves" in message


def test_an_autoguide_that_samples_the_latent_itself_is_trace_elbo_at_beta_one(float64):
    y = data()
    auto = AutoDelta(model)
    expected = Trace_ELBO().loss(model, auto, y)
    assert InfoVAE_ELBO().loss(model, auto, y) == pytest.approx(expected, rel=1e-12)


def test_a_global_latent_with_undeclared_batch_dims_is_told_to_declare_them():
    def with_global(site_model):
        def wrapped(y):
            pyro.sample("w", dist.Normal(torch.zeros(3, 2), 1.0))  # no .to_event(2)
            site_model(y)

        return wrapped

    with pytest.raises(UnsupportedModelError) as error:
        InfoVAE_ELBO().loss(with_global(model), with_global(guide), data())
    message = str(error.value)
    assert "global latent site 'w' gives log-probabilities of shape (3, 2)" in message and ".to_event()" in message
    assert "enumerated" not in message


def test_a_global_latent_drawn_from_a_discrete_latent_is_told_so():
    K = 3

    def discrete_model(y):
        plate = pyro.plate("data", N)
        with plate:
            pyro.sample("z", dist.Categorical(logits=torch.zeros(K)))
        pyro.sample("w", dist.Normal(0.0, 1.0))
        with plate:
            pyro.sample("y", dist.Normal(0.0, 1.0).expand([N, 3]).to_event(1), obs=y)

    def discrete_guide(y):
        with pyro.plate("data", N):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(N, K)))
        pyro.sample("w", dist.Normal(z.to(y.dtype), 1.0))  # enumerated: [K, 1], K values of one latent

    with pytest.raises(
        UnsupportedModelError, match=r"global latent site 'w' depends on the enumerated discrete latent\(s\) \['z'\]"
    ):
        InfoVAE_ELBO().loss(discrete_model, discrete_guide, data())


def test_a_reused_instance_says_that_its_plate_nesting_was_guessed_from_another_pair():
    y = data()
    elbo = InfoVAE_ELBO()
    elbo.loss(model, guide, y)
    with pytest.raises(UnsupportedModelError) as error:
        elbo.loss(model, guide, y, dim=-2)
    message = str(error.value)
    assert "max_plate_nesting=1" in message and "guessed from the first model/guide pair" in message
    assert "use a new InfoVAE_ELBO" in message and "leave it out" not in message
    assert InfoVAE_ELBO().loss(model, guide, y, dim=-2) > 0  # a new instance guesses again
    with pytest.raises(UnsupportedModelError, match="leave it out to have it guessed, or pass max_plate_nesting >= 2"):
        InfoVAE_ELBO(max_plate_nesting=1).loss(model, guide, y, dim=-2)


def with_global(site_model, shape):
    def wrapped(y, dim=-1):
        pyro.sample("w", dist.Normal(torch.zeros(shape), 1.0))  # no .to_event()
        site_model(y, dim)

    return wrapped


def test_a_global_latent_with_batch_dims_within_the_plate_nesting_is_refused_as_trace_elbo_refuses_it(float64):
    y = data()
    pair = with_global(model, (2,)), with_global(guide, (2,))
    with pytest.raises(ValueError, match='at site "w", invalid log_prob shape'):
        Trace_ELBO(max_plate_nesting=1).loss(*pair, y)
    for elbo in (InfoVAE_ELBO(), InfoVAE_ELBO(max_plate_nesting=1)):
        with pytest.raises(UnsupportedModelError) as error:
            elbo.loss(*pair, y)
        message = str(error.value)
        assert "global latent site 'w' gives log-probabilities of shape (2,)" in message and ".to_event()" in message
        assert "enumerated" not in message and "max_plate_nesting" not in message
    # Without validation both sum the dims, as .to_event(1) would.
    pyro.enable_validation(False)
    pyro.set_rng_seed(4)
    expected = Trace_ELBO(max_plate_nesting=1).loss(*pair, y)
    pyro.set_rng_seed(4)
    assert InfoVAE_ELBO(max_plate_nesting=1).loss(*pair, y) == pytest.approx(expected, rel=1e-12)


def test_a_global_latent_with_unit_dims_is_not_refused(float64):
    y = data()
    pair = with_global(model, (1,)), with_global(guide, (1,))
    pyro.set_rng_seed(5)
    expected = Trace_ELBO(max_plate_nesting=1).loss(*pair, y)
    pyro.set_rng_seed(5)
    assert InfoVAE_ELBO().loss(*pair, y) == pytest.approx(expected, rel=1e-12)


def test_a_model_plate_of_another_size_than_the_guides_is_refused_naming_both():
    y = data()

    def sized(site_model, size):
        def wrapped(y):
            with pyro.plate("data", size, subsample_size=N):
                site_model(y)

        return wrapped

    def inner_model(y):
        z = pyro.sample("z", dist.Normal(torch.zeros(N, D), 1.0).to_event(1))
        pyro.sample("y", dist.Normal(z.sum(-1, keepdim=True).expand(N, 3), 1.0).to_event(1), obs=y)

    def inner_guide(y):
        pyro.sample("z", dist.Normal(torch.zeros(N, D), 1.0).to_event(1))

    with pytest.raises(UnsupportedModelError) as error:
        InfoVAE_ELBO().loss(sized(inner_model, 50), sized(inner_guide, 100), y)
    message = str(error.value)
    assert "plate 'data' has size 50 (subsample size 6) at model site 'z'" in message
    assert "but size 100 (subsample size 6) in the guide" in message and "same size in model and guide" in message
    assert InfoVAE_ELBO().loss(sized(inner_model, 100), sized(inner_guide, 100), y) > 0
