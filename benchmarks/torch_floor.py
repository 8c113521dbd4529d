"""How fast can PyTorch take the Pyro backend's MNIST step at all? The step of
``examples/mnist/standard_vae.yaml`` (x: the top-left quadrant, 196 pixels; y: the other 588 as Bernoulli
pixels; a 16-dimensional Gaussian latent; MLP encoder 784 -> 256 -> 256 -> 32 and decoder 212 -> 256 ->
256 -> 588; batch 128; torch's fused Adam) written by hand in plain PyTorch, with no Pyro: the floor
under the Pyro backend's step, to set against ``benchmarks/pyro_step.py``'s NumPyro step.

    python benchmarks/torch_floor.py              # eager
    python benchmarks/torch_floor.py --compile    # torch.compile of the loss (its compile time is printed)

Random data of the right shapes: the arithmetic, not the numbers, is what is timed.
"""

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import infovae` sets it

import torch  # noqa: E402

BATCH, X, Y, HIDDEN, LATENT = 128, 196, 588, 256, 16


def mlp(inputs, outputs):
    return torch.nn.Sequential(
        torch.nn.Linear(inputs, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, HIDDEN),
        torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, outputs),
    )


def make_step(compiled=False):
    """One optimisation step of the hand-written model on a fixed random minibatch (``compiled``:
    ``torch.compile`` of the loss, compiled at the first call)."""
    torch.manual_seed(0)
    encoder, decoder = mlp(X + Y, 2 * LATENT), mlp(X + LATENT, Y)
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimiser = torch.optim.Adam(params, lr=1e-3, fused=True)
    x, y = torch.randn(BATCH, X), (torch.rand(BATCH, Y) > 0.5).float()

    def loss(x, y):
        out = encoder(torch.cat([x, y], -1))
        loc, scale = out[:, :LATENT], torch.nn.functional.softplus(out[:, LATENT:]) + 1e-5
        z = loc + scale * torch.randn_like(scale)
        logits = decoder(torch.cat([x, z], -1))
        recon = -torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none").sum(-1)
        kl = (0.5 * (loc**2 + scale**2 - 1) - torch.log(scale)).sum(-1)
        return (kl - recon).mean()

    fn = torch.compile(loss) if compiled else loss

    def step():
        optimiser.zero_grad(set_to_none=True)
        fn(x, y).backward()
        optimiser.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compile", action="store_true", help="torch.compile the loss")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    step = make_step(args.compile)

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(20):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    per_step = (time.perf_counter() - start) / args.steps
    print(f"{'compiled' if args.compile else 'eager'}: first step {first:.1f} s, {1000 * per_step:.2f} ms per step")


if __name__ == "__main__":
    main()
