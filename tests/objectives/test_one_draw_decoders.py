"""A model whose decoder is written for one latent draw ``[B, d]`` (as users write them): ``loss`` works,
and so does ``loss_terms``, whose JSD replays the decoder once per draw when it cannot take them stacked."""

import math

import pytest


def one_draw_pyro_pair(W, guard=False):
    """A Gaussian latent whose decoder is written for one draw ``[B, d]``: ``z @ W`` then a reshape to
    ``[B, out]`` (or an assert on the shape), as a user might write it."""
    import pyro
    import pyro.distributions as dist
    import torch

    def decoder(z, B):
        if guard:
            assert z.dim() == 2, "the decoder takes one draw"
        return (z @ W).reshape(B, W.shape[1])

    def model(x, y):
        B = len(x)
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, W.shape[0]), 1.0).to_event(1))
            pyro.sample("y", dist.Normal(decoder(z, B), 1.0).to_event(1), obs=y)

    def guide(x, y):
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Normal(y[:, : W.shape[0]] * 0.5, 0.7).to_event(1))

    return model, guide


def check_terms(terms, num_data, beta, marginal_weight, jsd_weight):
    terms = {k: float(v) for k, v in terms.items()}
    assert all(math.isfinite(v) for v in terms.values()), terms
    expected = -(terms["recon"] - beta * terms["kl"] - marginal_weight * terms["marginal"] + jsd_weight * terms["jsd"])
    assert terms["loss"] / num_data == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"marginal": "mmd", "marginal_weight": 1.0, "jsd_weight": 0.5, "num_particles": 2}])
def test_pyro_loss_terms_of_a_decoder_written_for_one_draw(options):
    """(9) ``.loss`` works for such a model and so does ``loss_terms`` (the JSD replays once per draw)."""
    import torch

    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    B = 6
    W, x, y = torch.randn(2, 3), torch.randn(B, 1), torch.randn(B, 3)
    model, guide = one_draw_pyro_pair(W)
    elbo = InfoVAE_ELBO(**options)
    assert math.isfinite(elbo.loss(model, guide, x, y))
    check_terms(elbo.loss_terms(model, guide, x, y), B, 1.0, options.get("marginal_weight", 0.0), options.get("jsd_weight", 0.0))


def test_pyro_loss_terms_of_a_decoder_that_asserts_one_draw():
    import torch

    from infovae.errors import UnsupportedModelError
    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    W, x, y = torch.randn(2, 3), torch.randn(6, 1), torch.randn(6, 3)
    model, guide = one_draw_pyro_pair(W, guard=True)
    elbo = InfoVAE_ELBO()
    assert math.isfinite(elbo.loss(model, guide, x, y))
    try:
        check_terms(elbo.loss_terms(model, guide, x, y), 6, 1.0, 0.0, 0.0)
    except UnsupportedModelError:
        pass
