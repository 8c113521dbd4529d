"""What ``InfoVAE_ELBO`` costs over Pyro's own ELBO on the models users write: an SVI step (loss,
backward, Adam) with each objective on the same model and data, CPU, one thread.

Two user models of the Pyro VAE tutorial's shape (64 inputs, 128 hidden units, 8 latent dims,
Bernoulli outputs, ``pyro.plate("data")`` without a size): a Gaussian latent (baseline ``Trace_ELBO``)
and a discrete one with 8 values (baseline ``TraceEnum_ELBO`` with the guide enumerated). The
objectives are timed interleaved in one process (round after round, each variant a few steps per
round), so that the machine's load falls on all of them alike; the ratio reported is the median over
rounds of (InfoVAE step time / baseline step time in the same round), with the spread over rounds.

    python benchmarks/elbo_overhead.py [--rounds 7] [--steps 5] [--batches 128 1024]
"""

import argparse
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam

from infovae.objectives import InfoVAE_ELBO

X_DIM, HIDDEN, LATENT = 64, 128, 8

VARIANTS = {
    "gaussian": {
        "beta=1": dict(),
        "MMD": dict(beta=0.0, marginal="mmd", marginal_weight=10.0),
        "MMD+JSD": dict(beta=0.0, marginal="mmd", marginal_weight=10.0, jsd_weight=0.1),
    },
    "discrete": {
        "beta=1": dict(),
        "KL": dict(beta=0.0, marginal="kl", marginal_weight=10.0),
        "KL+JSD": dict(beta=0.0, marginal="kl", marginal_weight=10.0, jsd_weight=0.1),
    },
}


def mlp(i, o):
    return torch.nn.Sequential(torch.nn.Linear(i, HIDDEN), torch.nn.Softplus(), torch.nn.Linear(HIDDEN, o))


def user_model(latent):
    """A model/guide pair as a user writes it (the tutorial's VAE; a categorical code for ``"discrete"``)."""
    encoder = mlp(X_DIM, 2 * LATENT if latent == "gaussian" else LATENT)
    decoder = mlp(LATENT, X_DIM)

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data"):
            if latent == "gaussian":
                z = pyro.sample("latent", dist.Normal(x.new_zeros(LATENT), 1.0).to_event(1))
            else:
                code = pyro.sample("latent", dist.Categorical(logits=x.new_zeros(LATENT)))
                z = torch.nn.functional.one_hot(code, LATENT).to(x.dtype)
            pyro.sample("obs", dist.Bernoulli(logits=decoder(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        with pyro.plate("data"):
            if latent == "gaussian":
                loc, log_scale = encoder(x).chunk(2, -1)
                pyro.sample("latent", dist.Normal(loc, log_scale.exp()).to_event(1))
            else:
                pyro.sample("latent", dist.Categorical(logits=encoder(x)))

    return model, guide


def svi_step(latent, elbo):
    model, guide = user_model(latent)
    if elbo is None:  # the baseline
        if latent == "gaussian":
            elbo = Trace_ELBO()
        else:
            elbo, guide = TraceEnum_ELBO(max_plate_nesting=1), config_enumerate(guide, "parallel")
    return SVI(model, guide, Adam({"lr": 1e-3}), elbo)


def measure(latent, batch, rounds, steps):
    """Per variant: the median over rounds of its step time over the baseline's, and the rounds' range."""
    x = torch.bernoulli(torch.full((batch, X_DIM), 0.3, generator=None))
    runners = {"baseline": svi_step(latent, None)}
    runners.update({name: svi_step(latent, InfoVAE_ELBO(**kwargs)) for name, kwargs in VARIANTS[latent].items()})
    for svi in runners.values():  # warm-up (the first step also guesses max_plate_nesting)
        svi.step(x)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, svi in runners.items():
            start = time.perf_counter()
            for _ in range(steps):
                svi.step(x)
            times[name].append((time.perf_counter() - start) / steps)
    out = {}
    for name in VARIANTS[latent]:
        ratios = [t / b for t, b in zip(times[name], times["baseline"])]
        out[name] = (statistics.median(ratios), min(ratios), max(ratios), statistics.median(times["baseline"]))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--latents", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    print("| latent | batch | objective | InfoVAE / baseline (median) | range over rounds | baseline step (ms) |")
    print("|---|---|---|---|---|---|")
    for latent in args.latents:
        for batch in args.batches:
            pyro.clear_param_store()
            for name, (ratio, low, high, base) in measure(latent, batch, args.rounds, args.steps).items():
                print(f"| {latent} | {batch} | {name} | {ratio:.2f}x | {low:.2f}-{high:.2f} | {1000 * base:.1f} |", flush=True)


if __name__ == "__main__":
    main()
