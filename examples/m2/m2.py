"""Kingma et al.'s M2 semi-supervised VAE on scikit-learn's 8x8 digits, trained with InfoVAE_ELBO.

The model has two local latents, the way Pyro's ``ss_vae`` example writes them: a digit label
``"label"`` (Categorical, observed where the label is known) and a continuous style ``"style"``; the
guide's ``q(style | x, label)`` depends on the label. On an unlabelled batch ``InfoVAE_ELBO`` finds both
latents from the traces, sums the label out exactly (as ``TraceEnum_ELBO`` does; at ``beta=1`` with no
other term the two are the same loss) and samples the style; on a labelled batch the label is data
and only the style is latent. Only a few labels are given (``--labels-per-class``); the classifier
``q(label | x)`` also gets the labelled examples' log-likelihood, as in the paper.

    python examples/m2/m2.py [--steps 300] [--labels-per-class 5] [--seed 0]

It prints the test accuracy of ``q(label | x)`` and the objective's terms per site (ELBO surgery:
``kl[site]``, ``mi[site]``, ``marginal_kl[site]``) on the test images.
"""

import argparse

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from sklearn.datasets import load_digits

from infovae.objectives import InfoVAE_ELBO

X_DIM, CLASSES, STYLE, HIDDEN = 64, 10, 4, 128


def joined(a, b):
    """``a`` and ``b`` concatenated on their last dim, their other dims broadcast (enumerated labels)."""
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(shape + a.shape[-1:]), b.expand(shape + b.shape[-1:])], -1)


def mlp(i, o):
    return torch.nn.Sequential(torch.nn.Linear(i, HIDDEN), torch.nn.Softplus(), torch.nn.Linear(HIDDEN, o))


class M2(torch.nn.Module):
    """Model ``p(label) p(style) p(x | label, style)`` and guide ``q(label | x) q(style | x, label)``."""

    def __init__(self):
        super().__init__()
        self.decode = mlp(STYLE + CLASSES, X_DIM)
        self.classify = mlp(X_DIM, CLASSES)
        self.encode = mlp(X_DIM + CLASSES, 2 * STYLE)

    @staticmethod
    def one_hot(label):
        return torch.nn.functional.one_hot(label, CLASSES).to(torch.get_default_dtype())

    def model(self, xs, labels=None):
        pyro.module("m2", self)
        with pyro.plate("data"):
            label = pyro.sample("label", dist.Categorical(logits=xs.new_zeros(CLASSES)), obs=labels)
            style = pyro.sample("style", dist.Normal(xs.new_zeros(STYLE), 1.0).to_event(1))
            logits = self.decode(joined(style, self.one_hot(label)))
            pyro.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=xs)

    def guide(self, xs, labels=None):
        pyro.module("m2", self)
        with pyro.plate("data"):
            if labels is None:
                labels = pyro.sample("label", dist.Categorical(logits=self.classify(xs)))
            loc, log_scale = self.encode(joined(xs, self.one_hot(labels))).chunk(2, -1)
            pyro.sample("style", dist.Normal(loc, log_scale.exp()).to_event(1))

    def classifier_model(self, xs, labels):
        """The labelled examples' ``log q(label | x)``, the paper's extra classification term."""
        pyro.module("m2", self)
        with pyro.plate("data"):
            pyro.sample("label_aux", dist.Categorical(logits=self.classify(xs)), obs=labels)

    def classifier_guide(self, xs, labels):
        pass


def digits(labels_per_class, seed):
    """Binarised digits split in train/test; ``labels_per_class`` train labels per class are kept."""
    bunch = load_digits()
    x = torch.as_tensor(bunch.data > 7, dtype=torch.get_default_dtype())
    y = torch.as_tensor(bunch.target)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    test, train = order[:400], order[400:]
    labelled = torch.cat([train[y[train] == c][:labels_per_class] for c in range(CLASSES)])
    return x[train], x[labelled], y[labelled], x[test], y[test]


def objective():
    """The InfoVAE objective on both latents: the per-example KL at half weight and the label's
    aggregate posterior pulled to its uniform prior (a marginal KL on the label site)."""
    return InfoVAE_ELBO(beta=0.5, marginal_sites={"label": "kl"}, marginal_weight=2.0)


def train(steps=300, labels_per_class=5, seed=0, batch=128, lr=3e-3, aux_weight=50.0, log=print):
    pyro.set_rng_seed(seed)
    pyro.clear_param_store()
    net = M2()
    x_train, x_lab, y_lab, x_test, y_test = digits(labels_per_class, seed)
    optim = Adam({"lr": lr})
    elbo = objective()
    unlabelled = SVI(net.model, net.guide, optim, elbo)
    # On labelled examples the label is data: the style is the only latent, with the same beta.
    labelled = SVI(net.model, net.guide, optim, InfoVAE_ELBO(beta=elbo.beta))
    aux = SVI(pyro.poutine.scale(net.classifier_model, aux_weight), net.classifier_guide, optim, Trace_ELBO())
    for step in range(steps):
        idx = torch.randint(0, len(x_train), (batch,))
        loss = unlabelled.step(x_train[idx])
        labelled.step(x_lab, y_lab)
        aux.step(x_lab, y_lab)
        if log and (step + 1) % max(1, steps // 5) == 0:
            log(f"step {step + 1}: unlabelled loss per example {loss / batch:.2f}")
    with torch.no_grad():
        accuracy = (net.classify(x_test).argmax(-1) == y_test).double().mean().item()
        terms = elbo.loss_terms(net.model, net.guide, x_test)
    return net, accuracy, terms


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--labels-per-class", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    _, accuracy, terms = train(args.steps, args.labels_per_class, args.seed)
    print(f"test accuracy of q(label | x) with {args.labels_per_class} labels per class: {accuracy:.3f}")
    print("objective's terms on the test images (per example; mi and marginal_kl are minibatch estimates):")
    for name, value in terms.items():
        print(f"  {name:>20} {value: .4f}")
    np.testing.assert_(np.isfinite(list(terms.values())).all(), "a term is not finite")


if __name__ == "__main__":
    main()
