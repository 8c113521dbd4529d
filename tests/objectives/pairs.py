"""Model/guide pairs written here, not by the library, to test InfoVAE_ELBO on users' own code."""

import pyro
import pyro.distributions as dist
import torch
from pyro.poutine.messenger import Messenger


def plate(batch_size, num_data):
    if num_data is None:
        return pyro.plate("data", batch_size)
    return pyro.plate("data", num_data, subsample=torch.arange(batch_size))


def table_pair(q_logits, prior_logits, dec_logits, likelihood="categorical"):
    """A discrete latent over K values with every distribution a free table.

    ``q(z|i) = softmax(q_logits[i])``, ``p(z) = softmax(prior_logits)`` and ``p(y|z)``: categorical
    (``dec_logits [K, C]``), factorised categorical (``[K, T, C]``) or Bernoulli (``[K, D]``).
    """

    def decoder(z):
        logits = dec_logits[z]
        if likelihood == "bernoulli":
            return dist.Bernoulli(logits=logits).to_event(1)
        fn = dist.Categorical(logits=logits)
        return fn.to_event(1) if dec_logits.dim() == 3 else fn

    def model(idx, y, num_data=None):
        with plate(len(idx), num_data):
            z = pyro.sample("z", dist.Categorical(logits=prior_logits))
            pyro.sample("y", decoder(z), obs=y)

    def guide(idx, y, num_data=None):
        with plate(len(idx), num_data):
            pyro.sample("z", dist.Categorical(logits=q_logits[idx]))

    return model, guide


def linear_gaussian_pair(weight, enc, log_scale, learned_prior=None):
    """A continuous latent: ``p(z) = N(0, I)`` (or ``N(x @ learned_prior, I)``),
    ``p(y|z) = N(z @ weight, 1)``, ``q(z|y) = N(y @ enc, exp(log_scale))``."""

    def model(x, y, num_data=None):
        d = weight.shape[0]
        with plate(len(x), num_data):
            loc = x.new_zeros(len(x), d) if learned_prior is None else x @ learned_prior
            z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
            pyro.sample("y", dist.Normal(z @ weight, 1.0).to_event(1), obs=y)

    def guide(x, y, num_data=None):
        with plate(len(x), num_data):
            pyro.sample("z", dist.Normal(y @ enc, log_scale.exp()).to_event(1))

    return model, guide


class InjectedNoise(Messenger):
    """Sets a Normal latent to ``loc + scale * eps`` (keeping the reparameterised path)."""

    def __init__(self, site, eps):
        super().__init__()
        self.site, self.eps = site, eps

    def _pyro_sample(self, msg):
        if msg["name"] == self.site and msg["value"] is None:
            base = msg["fn"].base_dist
            msg["value"] = base.loc + base.scale * self.eps


def example_cvae_pair(x_dim=6, z_dim=2, hidden=8, seed=0):
    """A CVAE written the way Pyro's ``examples/cvae`` writes one: ``pyro.plate("data")`` without a
    size, a Normal latent ``"z"`` whose prior depends on the input and a masked Bernoulli output ``"y"``
    (only the missing pixels, marked -1 in the input, are predicted)."""
    torch.manual_seed(seed)
    prior_net = torch.nn.Linear(x_dim, 2 * z_dim)
    recognition_net = torch.nn.Linear(2 * x_dim, 2 * z_dim)
    generation_net = torch.nn.Linear(z_dim, x_dim)

    def split(net, inputs):
        loc, log_scale = net(inputs).chunk(2, -1)
        return loc, log_scale.exp()

    def model(xs, ys=None):
        pyro.module("prior_net", prior_net)
        pyro.module("generation_net", generation_net)
        batch = xs.shape[0]
        with pyro.plate("data"):
            zs = pyro.sample("z", dist.Normal(*split(prior_net, xs)).to_event(1))
            probs = torch.sigmoid(generation_net(zs))
            if ys is not None:
                missing = (xs == -1).view(-1, x_dim)
                pyro.sample(
                    "y",
                    dist.Bernoulli(probs[missing].view(batch, -1), validate_args=False).to_event(1),
                    obs=ys[missing].view(batch, -1),
                )

    def guide(xs, ys=None):
        pyro.module("recognition_net", recognition_net)
        with pyro.plate("data"):
            pyro.sample("z", dist.Normal(*split(recognition_net, torch.cat([xs, ys], -1))).to_event(1))

    return model, guide


def joined(a, b):
    """``a`` and ``b`` concatenated on their last dim, their other dims broadcast (enumerated labels)."""
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(shape + a.shape[-1:]), b.expand(shape + b.shape[-1:])], -1)


def m2_pair(x_dim=5, num_classes=3, z_dim=2, seed=0):
    """Kingma et al.'s M2 written as Pyro's ``ss_vae`` example writes it: a label ``"label"``
    (Categorical) and a style ``"style"`` (Normal) in the model, ``p(x | label, style)`` Bernoulli; the
    guide's ``q(style | x, label)`` depends on the label, so the label is enumerated in the guide."""
    torch.manual_seed(seed)
    classify = torch.nn.Linear(x_dim, num_classes)
    encode = torch.nn.Linear(x_dim + num_classes, 2 * z_dim)
    decode = torch.nn.Linear(z_dim + num_classes, x_dim)
    prior_logits = torch.randn(num_classes)

    def one_hot(label):
        return torch.nn.functional.one_hot(label, num_classes).to(torch.get_default_dtype())

    def model(xs):
        pyro.module("decode", decode)
        with pyro.plate("data", len(xs)):
            label = pyro.sample("label", dist.Categorical(logits=prior_logits))
            style = pyro.sample("style", dist.Normal(xs.new_zeros(z_dim), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=decode(joined(style, one_hot(label)))).to_event(1), obs=xs)

    def guide(xs):
        pyro.module("classify", classify)
        pyro.module("encode", encode)
        with pyro.plate("data", len(xs)):
            label = pyro.sample("label", dist.Categorical(logits=classify(xs)))
            loc, log_scale = encode(joined(xs, one_hot(label))).chunk(2, -1)
            pyro.sample("style", dist.Normal(loc, log_scale.exp()).to_event(1))

    return model, guide
