"""A CVAE written the way Pyro's ``examples/cvae`` writes one, trained with InfoVAE_ELBO by changing
only the line that builds the ELBO.

As there: an image is split in quadrants; the network sees one quadrant (the others set to -1) and
predicts the missing pixels. A deterministic baseline network predicts them first; the CVAE's prior
``p(z | x, baseline)`` and recognition network ``q(z | x, y)`` are MLPs; the model opens
``pyro.plate("data")`` without a size and observes only the missing pixels (``"y"``, a masked
Bernoulli). Here on scikit-learn's 8x8 digits (binarised), so that it runs in seconds.

    python examples/pyro_cvae/cvae.py [--elbo infovae|trace] [--steps 200]
"""

import argparse

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from sklearn.datasets import load_digits

from infovae.objectives import InfoVAE_ELBO

SIDE, Z_DIM, HIDDEN = 8, 2, 64
PIXELS = SIDE * SIDE


class BaselineNet(nn.Module):
    """The deterministic first guess of the missing pixels, trained on its own beforehand."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PIXELS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, PIXELS), nn.Sigmoid())

    def forward(self, x):
        return self.net(x.view(-1, PIXELS))


class Encoder(nn.Module):
    """Gaussian parameters of a latent from an image whose missing pixels are filled in from ``y``."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PIXELS, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * Z_DIM))

    def forward(self, x, y):
        filled = torch.where(x == -1, y, x)
        loc, log_scale = self.net(filled.view(-1, PIXELS)).chunk(2, -1)
        return loc, log_scale.exp()


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(Z_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, PIXELS), nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


class CVAE(nn.Module):
    def __init__(self, baseline_net):
        super().__init__()
        self.baseline_net = baseline_net
        self.prior_net = Encoder()
        self.generation_net = Decoder()
        self.recognition_net = Encoder()

    def model(self, xs, ys=None):
        pyro.module("generation_net", self)
        batch_size = xs.shape[0]
        with pyro.plate("data"):
            with torch.no_grad():
                y_hat = self.baseline_net(xs).view(xs.shape)
            prior_loc, prior_scale = self.prior_net(xs, y_hat)
            zs = pyro.sample("z", dist.Normal(prior_loc, prior_scale).to_event(1))
            loc = self.generation_net(zs)
            if ys is not None:
                missing = (xs == -1).view(-1, PIXELS)
                pyro.sample(
                    "y",
                    dist.Bernoulli(loc[missing].view(batch_size, -1), validate_args=False).to_event(1),
                    obs=ys[missing].view(batch_size, -1),
                )
            else:
                pyro.deterministic("y", loc.detach())
            return loc

    def guide(self, xs, ys=None):
        with pyro.plate("data"):
            if ys is None:
                y_hat = self.baseline_net(xs).view(xs.shape)
                loc, scale = self.prior_net(xs, y_hat)
            else:
                loc, scale = self.recognition_net(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def quadrant_data(seed=0):
    """Binarised digits ``ys`` and inputs ``xs`` that keep the top-left quadrant (the rest -1)."""
    ys = torch.as_tensor(load_digits().data > 7, dtype=torch.float32)
    ys = ys[torch.randperm(len(ys), generator=torch.Generator().manual_seed(seed))]
    xs = ys.clone().view(-1, SIDE, SIDE)
    xs[:, SIDE // 2 :, :] = -1
    xs[:, :, SIDE // 2 :] = -1
    return xs.view(-1, PIXELS), ys


def train_baseline(xs, ys, steps=200):
    net = BaselineNet()
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(steps):
        missing = xs == -1
        loss = nn.functional.binary_cross_entropy(net(xs)[missing], ys[missing])
        optim.zero_grad()
        loss.backward()
        optim.step()
    return net


def train(elbo_name="infovae", steps=200, batch=128, seed=0, log=print):
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    xs, ys = quadrant_data(seed)
    cvae_net = CVAE(train_baseline(xs, ys))
    optimizer = Adam({"lr": 1e-3})
    # The one line that differs from Pyro's example (which passes loss=Trace_ELBO()):
    loss = InfoVAE_ELBO(beta=0.5, marginal="mmd", marginal_weight=10.0) if elbo_name == "infovae" else Trace_ELBO()
    svi = SVI(cvae_net.model, cvae_net.guide, optimizer, loss=loss)
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(xs), (batch,))
        losses.append(svi.step(xs[idx], ys[idx]) / batch)
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"step {step + 1}: loss per example {losses[-1]:.3f}")
    return cvae_net, losses


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elbo", choices=["infovae", "trace"], default="infovae")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    train(args.elbo, args.steps)


if __name__ == "__main__":
    main()
