"""The training steps the benchmark times, one builder per implementation.

Every builder returns ``step()``, which runs one optimisation step on a fixed minibatch and blocks
until it is done. All of them train the same CVAE on the same objective, so that their times compare:

- ``pyro_infovae``: :class:`infovae.objectives.InfoVAE_ELBO` with every term on, through Pyro;
- ``pyro_baseline``: Pyro's own ``TraceEnum_ELBO`` (discrete latent) or ``Trace_ELBO`` (Gaussian) on the
  same model: the standard ELBO, the cost Pyro users already pay;
- ``torch_manual``: the InfoVAE objective written by hand in PyTorch on the same networks (the floor);
- ``numpyro_infovae``: the NumPyro ``InfoVAE_ELBO``, jit-compiled with its optax update;
- ``jax_manual``: the same objective written by hand in JAX on the same flax networks, jit-compiled;
- ``jax_networks``: only the networks' matrix products that a step needs (encoder once, decoder at every
  latent value), forward and backward, jit-compiled: how much of a step is matmul work at all.
"""

import numpy as np

from infovae.core.architecture import CVAEConfig

X_DIM, Y_DIM, CLASSES, HIDDEN = 36, 12, 5, 128
LATENT_SIZE = {"discrete": 8, "gaussian": 8}
LR = 1e-3


def objective(latent, batch):
    """All terms on; the MMD switches to random features where the exact statistic would dominate."""
    if latent == "discrete":
        return dict(beta=0.5, marginal="kl", marginal_weight=10.0, jsd_weight=0.1)
    return dict(
        beta=0.5, marginal="mmd", marginal_weight=10.0, jsd_weight=0.1, jsd_samples=4, mmd_features=None if batch <= 256 else 16
    )


def arch(latent, hidden=HIDDEN):
    return CVAEConfig(
        x_dim=X_DIM, y_dim=Y_DIM, num_classes=CLASSES, latent=latent, latent_size=LATENT_SIZE[latent], hidden=hidden
    )


def data(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, X_DIM)).astype(np.float32), rng.integers(0, CLASSES, (batch, Y_DIM))


def model_flops(config, batch):
    """Multiply-adds x 2 of one forward pass of encoder, prior and decoder (at every latent value for a
    discrete latent, at one draw plus the JSD's draws for a Gaussian one), times 3 for the backward pass."""
    h = config.hidden

    def mlp(i, o):
        return i * h + h * h + h * o

    decoder_rows = config.latent_size if config.latent == "discrete" else 1 + 4
    encoder = mlp(config.x_dim + config.y_input_dim, config.latent_param_dim)
    decoder = config.x_dim * h + decoder_rows * (
        config.latent_size * h * (config.latent == "gaussian") + h * h + h * config.decoder_output_dim
    )
    return 3 * 2 * batch * (encoder + decoder)


# -- PyTorch ----------------------------------------------------------------------------------


def _torch_setup(latent, batch, hidden):
    import pyro
    import torch

    from infovae.guides import CVAEGuide
    from infovae.models import CVAEModel

    pyro.set_rng_seed(0)
    config = arch(latent, hidden)
    model, guide = CVAEModel(config), CVAEGuide(config)
    x, y = data(batch)
    return config, model, guide, torch.as_tensor(x), torch.as_tensor(y)


def pyro_step(latent, batch, hidden, infovae):
    import pyro
    from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate

    from infovae.objectives import InfoVAE_ELBO

    config, model, guide, x, y = _torch_setup(latent, batch, hidden)
    if infovae:
        elbo, guide_fn = InfoVAE_ELBO(**objective(latent, batch)), guide
    elif latent == "discrete":
        elbo, guide_fn = TraceEnum_ELBO(max_plate_nesting=1), config_enumerate(guide, "parallel")
    else:
        elbo, guide_fn = Trace_ELBO(), guide
    svi = SVI(model, guide_fn, pyro.optim.Adam({"lr": LR}), elbo)
    num_data = 100 * batch
    return lambda: svi.step(x, y, num_data=num_data)


def torch_manual_step(latent, batch, hidden):
    import torch

    loss_fn, parameters = torch_manual_loss(latent, batch, hidden)
    optimizer = torch.optim.Adam(parameters, lr=LR)

    def step():
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def torch_manual_loss(latent, batch, hidden):
    """``(loss(), parameters)`` of the InfoVAE objective written by hand in PyTorch on the benchmark's CVAE."""
    import torch
    from torch.nn import functional as F

    from infovae.objectives import categorical_kl, jensen_shannon, mmd

    config, model, guide, x, y = _torch_setup(latent, batch, hidden)
    weights = objective(latent, batch)
    num_data = 100 * batch
    y_in = F.one_hot(y, CLASSES).flatten(-2).float()
    K = config.latent_size

    def class_log_probs(out):
        return out.reshape(out.shape[:-1] + (Y_DIM, CLASSES)).log_softmax(-1)

    def log_lik(log_probs):
        return log_probs.gather(-1, y.expand(log_probs.shape[:-1]).unsqueeze(-1)).squeeze(-1).sum(-1)

    def loss_fn():
        params = guide.encoder(torch.cat([x, y_in], -1))
        if latent == "discrete":
            log_q = params.log_softmax(-1)
            q = log_q.exp()
            out = model.decoder_rest(model.decoder_x(x) + model.decoder_z.weight.T[:, None, :])  # [K, B, out]
            log_probs = class_log_probs(out)
            recon = (q.T * log_lik(log_probs)).sum(0)
            kl = (q * (log_q + torch.log(torch.tensor(float(K))))).sum(-1)
            prior = torch.full((K,), 1.0 / K)
            marginal = categorical_kl(q.mean(0), prior)
            jsd = jensen_shannon(log_probs.exp(), prior, log_probs=log_probs).sum(-1).mean()
        else:
            loc, scale = params.chunk(2, -1)
            scale = F.softplus(scale) + 1e-3
            z = loc + scale * torch.randn_like(loc)
            recon = log_lik(class_log_probs(model.decoder_rest(model.decoder_x(x) + model.decoder_z(z))))
            normal = torch.distributions.Normal
            kl = (normal(loc, scale).log_prob(z) - normal(0.0, 1.0).log_prob(z)).sum(-1)
            marginal = mmd(z, torch.randn_like(z), num_features=weights["mmd_features"])
            draws = torch.randn(4, 1, K)
            log_probs = class_log_probs(model.decoder_rest(model.decoder_x(x) + model.decoder_z(draws)))
            jsd = jensen_shannon(log_probs.exp(), torch.full((4,), 0.25), log_probs=log_probs).sum(-1).mean()
        per_example = (
            recon.mean() - weights["beta"] * kl.mean() - weights["marginal_weight"] * marginal + weights["jsd_weight"] * jsd
        )
        return -num_data * per_example

    return loss_fn, [*model.parameters(), *guide.parameters()]


# -- JAX --------------------------------------------------------------------------------------


def _jax_setup(latent, batch, hidden):
    import jax.numpy as jnp

    from infovae.numpyro.weights import torch_to_numpyro

    config, model, guide, _, _ = _torch_setup(latent, batch, hidden)
    x, y = data(batch)
    return config, torch_to_numpyro(model, guide, dtype=jnp.float32), jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32)


def _jitted_update(loss_fn, params):
    import jax
    import optax

    optimizer = optax.adam(LR)
    state = {"params": params, "opt": optimizer.init(params), "key": jax.random.PRNGKey(0)}

    @jax.jit
    def update(params, opt_state, key):
        key, step_key = jax.random.split(key)
        loss, grads = jax.value_and_grad(loss_fn)(params, step_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    def step():
        state["params"], state["opt"], state["key"], loss = update(state["params"], state["opt"], state["key"])
        return loss.block_until_ready()

    def cost_analysis():
        """XLA's count of the compiled step's floating-point operations and bytes moved."""
        cost = update.lower(state["params"], state["opt"], state["key"]).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost  # a list of one dict in older JAX
        return {"flops": cost.get("flops"), "bytes_accessed": cost.get("bytes accessed")}

    step.cost_analysis = cost_analysis
    return step


def numpyro_step(latent, batch, hidden):
    return _jitted_update(*numpyro_loss(latent, batch, hidden))


def numpyro_loss(latent, batch, hidden):
    """``(loss(params, key), params)`` of the NumPyro InfoVAE_ELBO on the benchmark's CVAE."""
    from infovae.numpyro.guides import CVAEGuide
    from infovae.numpyro.models import CVAEModel
    from infovae.numpyro.objectives import InfoVAE_ELBO

    config, params, x, y = _jax_setup(latent, batch, hidden)
    model, guide = CVAEModel(config), CVAEGuide(config)
    elbo = InfoVAE_ELBO(**objective(latent, batch))
    num_data = 100 * batch
    return (lambda p, key: elbo.loss(key, p, model, guide, x, y, num_data=num_data)), params


def jax_manual_step(latent, batch, hidden):
    return _jitted_update(*jax_manual_loss(latent, batch, hidden))


def jax_manual_loss(latent, batch, hidden):
    """``(loss(params, key), params)`` of the same objective written by hand in JAX."""
    import jax
    import jax.numpy as jnp

    from infovae.numpyro.guides.cvae import PARAMS as GUIDE_PARAMS
    from infovae.numpyro.guides.cvae import EncoderNetworks
    from infovae.numpyro.models.cvae import PARAMS as MODEL_PARAMS
    from infovae.numpyro.models.cvae import GenerativeNetworks
    from infovae.numpyro.objectives import categorical_kl, jensen_shannon, mmd

    config, params, x, y = _jax_setup(latent, batch, hidden)
    encoder, networks = EncoderNetworks(config), GenerativeNetworks(config)
    weights = objective(latent, batch)
    num_data = 100 * batch
    y_in = jax.nn.one_hot(y, CLASSES).reshape(batch, -1)
    K = config.latent_size

    def class_log_probs(out):
        return jax.nn.log_softmax(out.reshape(out.shape[:-1] + (Y_DIM, CLASSES)), -1)

    def log_lik(log_probs):
        return jnp.take_along_axis(log_probs, jnp.broadcast_to(y[..., None], log_probs.shape[:-1] + (1,)), -1)[..., 0].sum(-1)

    def loss_fn(p, key):
        enc = encoder.apply({"params": p[GUIDE_PARAMS]}, jnp.concatenate([x, y_in], -1))
        dec = lambda z: networks.apply({"params": p[MODEL_PARAMS]}, x, z, method="decoder_params")  # noqa: E731
        if latent == "discrete":
            log_q = jax.nn.log_softmax(enc, -1)
            q = jnp.exp(log_q)
            log_probs = class_log_probs(dec(jnp.arange(K)[:, None]))
            recon = (q.T * log_lik(log_probs)).sum(0)
            kl = (q * (log_q + jnp.log(K))).sum(-1)
            prior = jnp.full((K,), 1.0 / K)
            marginal = categorical_kl(q.mean(0), prior)
            jsd = jensen_shannon(jnp.exp(log_probs), prior, log_probs=log_probs).sum(-1).mean()
        else:
            loc, raw = jnp.split(enc, 2, -1)
            scale = jax.nn.softplus(raw) + 1e-3
            k1, k2, k3, k4 = jax.random.split(key, 4)
            z = loc + scale * jax.random.normal(k1, loc.shape)
            recon = log_lik(class_log_probs(dec(z)))
            norm = jax.scipy.stats.norm.logpdf
            kl = (norm(z, loc, scale) - norm(z)).sum(-1)
            marginal = mmd(z, jax.random.normal(k2, z.shape), num_features=weights["mmd_features"], rng_key=k4)
            draws = jax.random.normal(k3, (4, 1, K))
            log_probs = class_log_probs(dec(draws))
            jsd = jensen_shannon(jnp.exp(log_probs), jnp.full((4,), 0.25), log_probs=log_probs).sum(-1).mean()
        per_example = (
            recon.mean() - weights["beta"] * kl.mean() - weights["marginal_weight"] * marginal + weights["jsd_weight"] * jsd
        )
        return -num_data * per_example

    return loss_fn, params


def jax_networks_step(latent, batch, hidden):
    import jax.numpy as jnp

    from infovae.numpyro.guides.cvae import PARAMS as GUIDE_PARAMS
    from infovae.numpyro.guides.cvae import EncoderNetworks
    from infovae.numpyro.models.cvae import PARAMS as MODEL_PARAMS
    from infovae.numpyro.models.cvae import GenerativeNetworks

    config, params, x, y = _jax_setup(latent, batch, hidden)
    encoder, networks = EncoderNetworks(config), GenerativeNetworks(config)
    inputs = jnp.concatenate([x, jnp.zeros((batch, config.y_input_dim), x.dtype)], -1)
    z = jnp.arange(config.latent_size)[:, None] if latent == "discrete" else jnp.zeros((5, batch, config.latent_size), x.dtype)

    def loss_fn(p, key):
        enc = encoder.apply({"params": p[GUIDE_PARAMS]}, inputs)
        dec = networks.apply({"params": p[MODEL_PARAMS]}, x, z, method="decoder_params")
        return (enc**2).sum() + (dec**2).sum()

    return _jitted_update(loss_fn, params)


BUILDERS = {
    "pyro_infovae": lambda latent, batch, hidden: pyro_step(latent, batch, hidden, infovae=True),
    "pyro_baseline": lambda latent, batch, hidden: pyro_step(latent, batch, hidden, infovae=False),
    "torch_manual": torch_manual_step,
    "numpyro_infovae": numpyro_step,
    "jax_manual": jax_manual_step,
    "jax_networks": jax_networks_step,
}
