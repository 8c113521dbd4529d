"""A plate that draws its minibatch at random (``subsample_size``) makes a model with only discrete
latents random: the loss averages ``num_particles`` passes, each on a minibatch of its own, as Pyro's
ELBOs average their particles; a minibatch given to the plate stays exact in one pass. Float64, against
a hand computation on the minibatches the plate draws."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from infovae.objectives import InfoVAE_ELBO

N, B, K, C = 20, 4, 3, 4
BETA, GAMMA = 0.5, 2.0


@pytest.fixture
def tables(float64):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(N, K, generator=gen), torch.randn(K, C, generator=gen) * 2, torch.randint(0, C, (N,), generator=gen)


def pair(Q, Wd, **plate_kwargs):
    def model(y):
        with pyro.plate("data", N, **plate_kwargs) as idx:
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(K)))
            pyro.sample("y", dist.Categorical(logits=Wd[z]), obs=y[idx])

    def guide(y):
        with pyro.plate("data", N, **plate_kwargs) as idx:
            pyro.sample("z", dist.Categorical(logits=Q[idx]))

    return model, guide


def hand_loss(Q, Wd, y, idx):
    """One pass on the minibatch ``idx``: -(N/B) sum(recon - beta KL) + gamma N KL(mean q || p)."""
    q = torch.softmax(Q[idx], -1)
    log_lik = torch.log_softmax(Wd, -1)[:, y[idx]].T  # [B, K]
    kl = (q * (q.log() - math.log(1 / K))).sum(-1)
    q_bar = q.mean(0)
    marginal = (q_bar * (q_bar.log() - math.log(1 / K))).sum()
    return (-(N / len(idx)) * ((q * log_lik).sum(-1) - BETA * kl).sum() + GAMMA * N * marginal).item()


def elbo(num_particles):
    return InfoVAE_ELBO(beta=BETA, marginal="kl", marginal_weight=GAMMA, num_particles=num_particles)


def test_particles_of_a_random_minibatch_are_averaged(tables):
    Q, Wd, y = tables
    model, guide = pair(Q, Wd, subsample_size=B)
    pyro.set_rng_seed(3)
    drawn = [torch.randperm(N)[:B] for _ in range(5)]  # the plate's draws, one per pass
    assert len({tuple(idx.tolist()) for idx in drawn}) == 5
    expected = sum(hand_loss(Q, Wd, y, idx) for idx in drawn) / 5
    pyro.set_rng_seed(3)
    assert elbo(5).loss(model, guide, y) == pytest.approx(expected, rel=1e-12)
    pyro.set_rng_seed(3)
    assert elbo(5).differentiable_loss(model, guide, y).item() == pytest.approx(expected, rel=1e-12)
    pyro.set_rng_seed(3)
    assert elbo(5).loss_and_grads(model, guide, y) == pytest.approx(expected, rel=1e-12)
    pyro.set_rng_seed(3)
    assert elbo(5).loss_terms(model, guide, y)["loss"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("plate_kwargs", [{"subsample": torch.arange(B)}, {"subsample_size": N}], ids=["given", "all"])
def test_a_minibatch_not_drawn_at_random_is_exact_in_one_pass(tables, plate_kwargs):
    Q, Wd, y = tables
    model, guide = pair(Q, Wd, **plate_kwargs)
    calls = []

    def counted(y):
        calls.append(1)
        guide(y)

    objective = elbo(5)
    objective.max_plate_nesting = 1  # no guessing pass: every call is a pass of the loss
    idx = plate_kwargs.get("subsample", torch.arange(N))
    assert objective.loss(model, counted, y) == pytest.approx(hand_loss(Q, Wd, y, idx), rel=1e-12)
    assert len(calls) == 1
