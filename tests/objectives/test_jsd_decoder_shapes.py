"""The JSD term on decoders whose shapes do not show the latent's dims: a continuous latent's decoder
that loops over the examples (it runs on stacked draws without an error), and a discrete latent's
observed site that does not depend on the latent. Each is checked against a hand computation."""

import math

import pytest

torch = pytest.importorskip("torch")
pyro = pytest.importorskip("pyro")
dist = pytest.importorskip("pyro.distributions")


@pytest.fixture
def jax64():
    """JAX in float64 for one test, the setting put back afterwards."""
    jax = pytest.importorskip("jax")
    pytest.importorskip("numpyro")
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", old)


def entropy(p):
    return -(p * p.log()).sum(-1)


@pytest.mark.parametrize("B", [5, 8, 12])
def test_jsd_of_a_decoder_that_loops_over_examples(B):
    """Default jsd_samples=8: at B=8 the looping decoder's stacked replay has shape [8, 8] as if it had
    been evaluated per draw, at B=5 [5, 5]; the loss must be the per-draw JSD's in both cases."""
    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    D, C, S = 2, 4, 8
    x = torch.randn(B, 3, dtype=torch.float64)
    y = torch.randint(0, C, (B,))
    W = torch.randn(D, C, dtype=torch.float64) * 2
    V = torch.randn(3, C, dtype=torch.float64) * 2
    L = torch.randn(B, D, dtype=torch.float64)

    def guide(x, y):
        with pyro.plate("data", B):
            pyro.sample("z", dist.Normal(L, 0.5).to_event(1))

    def model(x, y):
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Normal(torch.zeros(B, D, dtype=torch.float64), 1.0).to_event(1))
            logits = torch.stack([z[i] @ W + x[i] @ V for i in range(len(x))])  # one example at a time
            pyro.sample("y", dist.Categorical(logits=logits), obs=y)

    pyro.set_rng_seed(0)
    got = InfoVAE_ELBO(jsd_weight=1.0, jsd_samples=S).loss(model, guide, x, y)

    # The guide's draw, then S prior draws for the JSD (uniform weights), from the same stream.
    pyro.set_rng_seed(0)
    z = dist.Normal(L, 0.5).rsample()
    draws = dist.Normal(torch.zeros(B, D, dtype=torch.float64), 1.0).rsample((S,))
    probs = torch.softmax(draws @ W + (x @ V)[None], -1)  # [S, B, C]
    jsd = (entropy(probs.mean(0)) - entropy(probs).mean(0)).mean()
    recon = dist.Categorical(logits=z @ W + x @ V).log_prob(y).sum()
    kl = (dist.Normal(L, 0.5).log_prob(z) - dist.Normal(0.0, 1.0).log_prob(z)).sum()
    assert got == pytest.approx((-recon + kl - B * jsd).item(), rel=1e-12)


@pytest.mark.parametrize(("B", "K"), [(4, 2), (5, 2), (3, 3)])
def test_jsd_of_a_continuous_site_that_ignores_the_discrete_latent(B, K):
    """y1 ~ Normal(M[z]) depends on z, y2 ~ Normal(0, 1) does not (its K decoders are one, JSD 0). At
    B = K^2 the y2 decoder's draws were scored as if they were the K decoders' (a wrong number), at other
    B an error. The JSD is y1's Monte-Carlo estimate, by hand."""
    from infovae.objectives import InfoVAE_ELBO

    torch.manual_seed(0)
    y1 = torch.randn(B, 3, dtype=torch.float64)
    y2 = torch.randn(B, 3, dtype=torch.float64)
    M = torch.randn(K, 3, dtype=torch.float64) * 2
    Q = torch.randn(B, K, dtype=torch.float64)

    def model(y1, y2):
        with pyro.plate("data", B):
            z = pyro.sample("z", dist.Categorical(logits=torch.zeros(B, K, dtype=torch.float64)))
            pyro.sample("y1", dist.Normal(M[z], 1.0).to_event(1), obs=y1)
            pyro.sample("y2", dist.Normal(torch.zeros(B, 3, dtype=torch.float64), 1.0).to_event(1), obs=y2)

    def guide(y1, y2):
        with pyro.plate("data", B):
            pyro.sample("z", dist.Categorical(logits=Q))

    pyro.set_rng_seed(0)
    got = InfoVAE_ELBO(jsd_weight=1.0).loss_terms(model, guide, y1, y2)["jsd"]

    # One draw of y1 from each decoder k (the first draws of the stream), scored by every decoder j;
    # prior weights 1/K. y2's K decoders are the same distribution: its estimate is exactly 0.
    pyro.set_rng_seed(0)
    draws = M[:, None, :] + torch.randn(K, B, 3, dtype=torch.float64)  # [K, B, 3]
    cross = dist.Normal(M[None, :, None, :], 1.0).log_prob(draws[:, None]).sum(-1)  # [K_k, K_j, B]
    own = torch.diagonal(cross).T  # [K, B]
    log_mixture = torch.logsumexp(cross - math.log(K), dim=1)
    expected = ((own - log_mixture).mean(0)).mean()
    assert got == pytest.approx(expected.item(), rel=1e-12)


@pytest.mark.parametrize("B", [2, 3])
def test_numpyro_jsd_of_a_decoder_that_loops_over_examples(jax64, B):
    """The NumPyro twin (3 JSD draws, each a replay to compile): the looping decoder gives the loss of
    the same decoder written vectorised (the same key, so the same draws), eagerly and under jit."""
    jax = jax64
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist

    from infovae.numpyro.objectives import InfoVAE_ELBO

    D, C = 2, 4
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    x = jax.random.normal(keys[0], (B, 3), dtype=jnp.float64)
    y = jax.random.randint(keys[1], (B,), 0, C)
    W = jax.random.normal(keys[2], (D, C), dtype=jnp.float64) * 2
    V = jax.random.normal(keys[3], (3, C), dtype=jnp.float64) * 2

    def guide(x, y, loop):
        with numpyro.plate("data", B):
            numpyro.sample("z", ndist.Normal(x[:, :D], 0.5).to_event(1))

    def model(x, y, loop):
        with numpyro.plate("data", B):
            z = numpyro.sample("z", ndist.Normal(jnp.zeros((B, D)), 1.0).to_event(1))
            logits = jnp.stack([z[i] @ W + x[i] @ V for i in range(len(x))]) if loop else z @ W + x @ V
            numpyro.sample("y", ndist.Categorical(logits=logits), obs=y)

    elbo = InfoVAE_ELBO(jsd_weight=1.0, jsd_samples=3)
    expected = float(elbo.loss(keys[4], {}, model, guide, x, y, False))
    assert float(elbo.loss(keys[4], {}, model, guide, x, y, True)) == pytest.approx(expected, rel=1e-12)
    jitted = jax.jit(lambda key: elbo.loss(key, {}, model, guide, x, y, True))
    assert float(jitted(keys[4])) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("B", "K"), [(4, 2), (3, 3)])
def test_numpyro_jsd_of_a_continuous_site_that_ignores_the_discrete_latent(jax64, B, K):
    """The NumPyro twin: a site whose K decoders are one adds exactly 0 to the JSD."""
    jax = jax64
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as ndist

    from infovae.numpyro.objectives import InfoVAE_ELBO

    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    y1 = jax.random.normal(keys[0], (B, 3), dtype=jnp.float64)
    y2 = jax.random.normal(keys[1], (B, 3), dtype=jnp.float64)
    M = jax.random.normal(keys[2], (K, 3), dtype=jnp.float64) * 2
    Q = jax.random.normal(keys[3], (B, K), dtype=jnp.float64)

    def model(y1, y2, with_y2):
        with numpyro.plate("data", B):
            z = numpyro.sample("z", ndist.Categorical(logits=jnp.zeros((B, K))))
            numpyro.sample("y1", ndist.Normal(M[z], 1.0).to_event(1), obs=y1)
            if with_y2:
                numpyro.sample("y2", ndist.Normal(jnp.zeros((B, 3)), 1.0).to_event(1), obs=y2)

    def guide(y1, y2, with_y2):
        with numpyro.plate("data", B):
            numpyro.sample("z", ndist.Categorical(logits=Q))

    elbo = InfoVAE_ELBO(jsd_weight=1.0)
    alone = float(elbo.loss_terms(keys[4], {}, model, guide, y1, y2, False)["jsd"])
    assert float(elbo.loss_terms(keys[4], {}, model, guide, y1, y2, True)["jsd"]) == pytest.approx(alone, rel=1e-12)
