"""Your own Pyro CVAE, trained with the InfoVAE objective: swap ``Trace_ELBO`` for ``InfoVAE_ELBO``.

The pair follows the one convention InfoVAE_ELBO needs: a latent site "z" and an observed site "y"
inside one data plate, in model and guide alike. A discrete latent is summed out exactly, so the
decoder must broadcast a leading dim of z (as for Pyro's parallel enumeration).

    python examples/custom_model.py
"""

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI
from torch import nn
from torch.nn import functional as F

from infovae.objectives import InfoVAE_ELBO

K, X_DIM, Y_DIM = 4, 2, 6
decoder = nn.Sequential(nn.Linear(X_DIM + K, 32), nn.ReLU(), nn.Linear(32, Y_DIM))
encoder = nn.Sequential(nn.Linear(X_DIM + Y_DIM, 32), nn.ReLU(), nn.Linear(32, K))


def model(x, y=None):
    pyro.module("decoder", decoder)
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Categorical(logits=torch.zeros(K)))
        # z may arrive as all K values stacked on the left, [K, 1]: broadcast x against it.
        z_hot = F.one_hot(z, K).float()
        batch = torch.broadcast_shapes(x.shape[:-1], z_hot.shape[:-1])
        h = torch.cat([x.expand(batch + x.shape[-1:]), z_hot.expand(batch + (K,))], dim=-1)
        return pyro.sample("y", dist.Bernoulli(logits=decoder(h)).to_event(1), obs=y)


def guide(x, y):
    pyro.module("encoder", encoder)
    with pyro.plate("data", len(x)):
        pyro.sample("z", dist.Categorical(logits=encoder(torch.cat([x, y], dim=-1))))


def make_data(n=512):
    """Two hidden strategies that act oppositely on the sign of the context."""
    x = torch.randn(n, X_DIM)
    strategy = torch.randint(0, 2, (n,))
    p = torch.sigmoid(4.0 * x[:, :1] * (2.0 * strategy[:, None] - 1.0)).expand(n, Y_DIM)
    return x, torch.bernoulli(p)


def main(steps=300):
    pyro.set_rng_seed(0)
    x, y = make_data()
    # InfoVAE: no MI penalty (beta = 0), strong marginal matching, and the JSD reward.
    elbo = InfoVAE_ELBO(beta=0.0, marginal="kl", marginal_weight=10.0, jsd_weight=0.1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), elbo)
    for step in range(steps):
        svi.step(x, y)
    terms = elbo.loss_terms(model, guide, x, y)
    print({name: round(value, 3) for name, value in terms.items()})
    return terms


if __name__ == "__main__":
    main()
