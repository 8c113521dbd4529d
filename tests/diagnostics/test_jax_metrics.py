"""The JAX twins of the latent diagnostics against metrics.py, scikit-learn and the strategies generator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler

from infovae.core.latents import CategoricalLatent, GaussianLatent
from infovae.data.strategies import StrategyGenerator
from infovae.diagnostics import jax_metrics as jm
from infovae.diagnostics import metrics, two_sample
from infovae.errors import UserInputError


@pytest.fixture
def x64():
    """Exactness checks run in float64; the setting is put back for the other tests."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


class Replay:
    """A numpy Generator stand-in whose ``standard_normal`` returns given draws, so that metrics.py
    computes on exactly the draw the JAX function made."""

    def __init__(self, eps):
        self.eps = eps

    def standard_normal(self, shape):
        assert shape == self.eps.shape
        return self.eps


def test_samplers_draw_from_the_given_distributions():
    probs = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.25, 0.75]])
    z = jm.sample_categorical(jax.random.key(0), probs, num_samples=20000)
    assert z.shape == (20000, 2) and z.dtype == jnp.int32
    assert (z[:, 0] == 0).all() and (z[:, 1] != 0).all()
    assert float(jnp.mean(z[:, 1] == 2)) == pytest.approx(0.75, abs=0.02)
    assert jm.sample_categorical(jax.random.key(1), probs).shape == (2,)
    loc, scale = jnp.ones((3, 2)), jnp.full((3, 2), 2.0)
    g = jm.sample_gaussian(jax.random.key(2), loc, scale, num_samples=20000)
    assert g.shape == (20000, 3, 2) and g.dtype == jnp.float32
    assert float(g.mean()) == pytest.approx(1.0, abs=0.03) and float(g.std()) == pytest.approx(2.0, abs=0.03)
    assert jm.sample_gaussian(jax.random.key(2), loc, scale).shape == (3, 2)


def test_latent_perplexity_and_active_units_match_metrics(x64):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), size=40)
    probs[:, 2] = 0.0  # an unused value: 0 log 0 = 0
    probs /= probs.sum(1, keepdims=True)
    got = jm.latent_perplexity(jnp.asarray(probs))
    assert float(got) == pytest.approx(metrics.latent_perplexity(CategoricalLatent(probs)), rel=1e-12)
    assert float(jm.latent_perplexity(jnp.tile(jnp.array([0.0, 1.0, 0.0]), (5, 1)))) == pytest.approx(1.0)
    # Per-dimension spreads either side of the threshold.
    loc = rng.normal(size=(200, 6)) * np.array([0.01, 0.05, 0.3, 1.0, 0.08, 0.12])
    assert int(jm.active_units(jnp.asarray(loc))) == metrics.active_units(GaussianLatent(loc, np.ones_like(loc))) == 3
    assert jm.active_units(jnp.asarray(loc)).dtype == jnp.int32
    assert int(jm.active_units(jnp.asarray(loc), threshold=0.001)) == 5
    assert jm.ACTIVE_UNIT_THRESHOLD == metrics.ACTIVE_UNIT_THRESHOLD


def test_discrete_elbo_surgery_matches_metrics(x64):
    rng = np.random.default_rng(1)
    q = rng.dirichlet(np.ones(5), size=30)
    q[:10, 0] = 0.0  # zero posterior mass: 0 log 0 = 0
    q /= q.sum(1, keepdims=True)
    p = rng.dirichlet(np.ones(5), size=30)
    expected = metrics.elbo_surgery(CategoricalLatent(q), CategoricalLatent(p), rng)
    got = jm.discrete_elbo_surgery(jnp.asarray(q), jnp.asarray(p))
    for name in ("mean_kl", "mi", "marginal_kl"):
        assert float(got[name]) == pytest.approx(expected[name], rel=1e-12)
    assert float(got["mi"]) > 0.1


@pytest.mark.parametrize("spread", [1.0, 100.0])
def test_gaussian_elbo_surgery_matches_metrics_on_the_same_draw(x64, spread):
    rng = np.random.default_rng(2)
    n, d = 300, 3
    q_loc, q_scale = rng.normal(0, spread, (n, d)), rng.uniform(0.05, 1.0, (n, d))
    p_loc, p_scale = rng.normal(0, 0.5, (n, d)), rng.uniform(0.5, 2.0, (n, d))
    key = jax.random.key(3)
    eps = np.asarray(jax.random.normal(key, (n, d), dtype=jnp.float64))
    expected = metrics.elbo_surgery(GaussianLatent(q_loc, q_scale), GaussianLatent(p_loc, p_scale), Replay(eps))
    args = [jnp.asarray(a) for a in (q_loc, q_scale, p_loc, p_scale)]
    got = jm.gaussian_elbo_surgery(key, *args)
    for name in ("mean_kl", "mi", "marginal_kl"):
        assert float(got[name]) == pytest.approx(expected[name], rel=1e-10)
    assert 0.5 < float(got["mi"]) <= np.log(n) + 1e-9


def test_elbo_surgery_takes_one_shared_prior_as_metrics_does(x64):
    rng = np.random.default_rng(4)
    n = 50
    q_probs, q_loc, q_scale = rng.dirichlet(np.ones(3), size=n), rng.normal(0, 0.8, (n, 2)), np.full((n, 2), 0.6)
    p_probs = np.array([[0.2, 0.3, 0.5]])
    shared = jm.discrete_elbo_surgery(jnp.asarray(q_probs), jnp.asarray(p_probs))
    repeated = jm.discrete_elbo_surgery(jnp.asarray(q_probs), jnp.asarray(np.tile(p_probs, (n, 1))))
    assert all(float(shared[k]) == pytest.approx(float(repeated[k]), rel=1e-12) for k in shared)
    key = jax.random.key(0)
    shared = jm.gaussian_elbo_surgery(key, jnp.asarray(q_loc), jnp.asarray(q_scale), jnp.zeros((1, 2)), jnp.ones((1, 2)))
    repeated = jm.gaussian_elbo_surgery(key, jnp.asarray(q_loc), jnp.asarray(q_scale), jnp.zeros((n, 2)), jnp.ones((n, 2)))
    assert all(float(shared[k]) == pytest.approx(float(repeated[k]), rel=1e-12) for k in shared)
    with pytest.raises(UserInputError, match="50 posteriors need one prior or 50 priors"):
        jm.gaussian_elbo_surgery(key, jnp.asarray(q_loc), jnp.asarray(q_scale), jnp.zeros((3, 2)), jnp.ones((3, 2)))


@pytest.mark.parametrize("offset", [0.0, 1000.0])
def test_gaussian_elbo_surgery_in_float32_agrees_with_float64(offset):
    """Latents far from the origin relative to their spread (offset 1000) are where expanding the squared
    distances into matrix products would lose them to cancellation in float32 (mi off by 0.36 here)."""
    rng = np.random.default_rng(4)
    q_loc, q_scale = offset + rng.normal(size=(200, 4)), rng.uniform(0.2, 1.0, (200, 4))
    p_loc, p_scale = np.full((200, 4), offset), np.ones((200, 4))
    key = jax.random.key(5)
    eps = np.asarray(jax.random.normal(key, (200, 4)), dtype=np.float64)
    expected = metrics.elbo_surgery(GaussianLatent(q_loc, q_scale), GaussianLatent(p_loc, p_scale), Replay(eps))
    got = jm.gaussian_elbo_surgery(key, *[jnp.asarray(a, jnp.float32) for a in (q_loc, q_scale, p_loc, p_scale)])
    assert got["mi"].dtype == jnp.float32
    for name in ("mi", "marginal_kl"):
        assert float(got[name]) == pytest.approx(expected[name], rel=1e-4)


# The float32 probe tests share two shapes (2000 fitting and 1000 eval examples of 2 or 8 features,
# 4 classes), so that the probe compiles twice for all of them.


def noisy_discrete_posteriors(rng, labels, num_values):
    """Each label owns two latent values; the posterior puts at least 0.6 on them, the rest at random."""
    own = np.eye(num_values)[2 * labels] + np.eye(num_values)[2 * labels + 1]
    return 0.3 * own + 0.4 * rng.dirichlet(np.ones(num_values), size=len(labels))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probe_accuracy_matches_sklearn_on_one_hot_discrete_latents(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, 3000)
    z = metrics.sample_latents(CategoricalLatent(noisy_discrete_posteriors(rng, labels, 8)), rng)
    features = jm.one_hot_features(jnp.asarray(z), 8)
    np.testing.assert_array_equal(features, metrics.latent_features(z, 8))
    expected = metrics.probe_accuracy(z[:2000], labels[:2000], z[2000:], labels[2000:], num_values=8)
    got = jm.probe_accuracy(features[:2000], jnp.asarray(labels[:2000]), features[2000:], jnp.asarray(labels[2000:]), 4)
    assert 0.4 < expected < 0.95  # neither chance nor trivial, so that agreement means something
    assert float(got) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("dim", [2, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probe_accuracy_matches_sklearn_on_gaussian_latents(dim, seed):
    rng = np.random.default_rng(10 + seed)
    labels = rng.integers(0, 4, 3000)
    loc = rng.normal(size=(4, dim))[labels] + 0.5 * rng.normal(size=(3000, dim))
    z = metrics.sample_latents(GaussianLatent(loc, np.full_like(loc, 0.7)), rng)
    expected = metrics.probe_accuracy(z[:2000], labels[:2000], z[2000:], labels[2000:])
    zj, lj = jnp.asarray(z, jnp.float32), jnp.asarray(labels)
    got = jm.probe_accuracy(zj[:2000], lj[:2000], zj[2000:], lj[2000:], 4)
    assert 0.4 < expected < 0.99
    assert float(got) == pytest.approx(expected, abs=0.01)


def fit_sklearn_and_jax(features, labels, num_classes):
    """Both probes on the same standardised features; sklearn solved far past its default tolerance."""
    scaled = StandardScaler().fit_transform(features)
    mine, _ = jm._standardise(jnp.asarray(features), jnp.asarray(features))
    np.testing.assert_allclose(mine, scaled, atol=1e-12)
    sk = LogisticRegression(tol=1e-10, max_iter=10000).fit(scaled, labels)
    return sk, jm.fit_probe(jnp.asarray(scaled), jnp.asarray(labels), num_classes)


def test_probe_coefficients_match_sklearn_on_a_well_conditioned_problem(x64):
    rng = np.random.default_rng(20)
    labels = rng.integers(0, 3, 1500)
    features = rng.normal(size=(3, 4))[labels] + rng.normal(size=(1500, 4))
    features[:, 3] = 2.5  # a constant feature: only centred, and of zero weight
    sk, probe = fit_sklearn_and_jax(features, labels, 3)
    np.testing.assert_allclose(probe["weights"], sk.coef_.T, atol=1e-6)
    np.testing.assert_allclose(probe["bias"], sk.intercept_ - sk.intercept_.mean(), atol=1e-6)
    assert float(jnp.abs(probe["weights"][3]).max()) == 0.0


def test_probe_of_two_seen_classes_is_sklearns_binary_model(x64):
    """sklearn fits one sigmoid for two classes (a penalty twice the softmax's); classes 0 and 2 of 4
    never occur."""
    rng = np.random.default_rng(21)
    labels = np.where(rng.random(1200) < 0.4, 1, 3)
    features = rng.normal(size=(4, 3))[labels] + rng.normal(size=(1200, 3))
    sk, probe = fit_sklearn_and_jax(features, labels, 4)
    np.testing.assert_array_equal(probe["seen"], [False, True, False, True])
    np.testing.assert_allclose(probe["weights"][:, 3] - probe["weights"][:, 1], sk.coef_[0], atol=1e-6)
    assert float(probe["bias"][3] - probe["bias"][1]) == pytest.approx(sk.intercept_[0], abs=1e-6)


def probe_objective(probe, features, labels):
    """The probe's penalised mean cross-entropy (l2 = 1, more than two classes), computed directly."""
    logits = features @ probe["weights"] + probe["bias"]
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.mean(log_p[np.arange(len(labels)), labels]) + 0.5 / len(labels) * np.sum(probe["weights"] ** 2)


def test_probe_stops_once_converged_at_the_optimum_of_a_long_fit(x64):
    """The fit stops well before its cap, at the objective of 100 iterations (tolerance 0) to float64's
    resolution; a cap that stops it early leaves it measurably above."""
    rng = np.random.default_rng(24)
    labels = rng.integers(0, 4, 2000)
    features = StandardScaler().fit_transform(rng.normal(size=(4, 6))[labels] + rng.normal(size=(2000, 6)))
    f, y = jnp.asarray(features), jnp.asarray(labels)
    probe, long = jm.fit_probe(f, y, 4), jm.fit_probe(f, y, 4, iterations=100, tolerance=0.0)
    optimum = probe_objective(long, features, labels)
    assert 2 < int(probe["iterations"]) < jm.PROBE_ITERATIONS
    assert abs(probe_objective(probe, features, labels) - optimum) <= 1e-14 * optimum
    capped = jm.fit_probe(f, y, 4, iterations=2)
    assert int(capped["iterations"]) == 2 and probe_objective(capped, features, labels) - optimum > 1e-6


def test_probe_never_predicts_a_class_it_did_not_see():
    rng = np.random.default_rng(22)
    labels = rng.integers(0, 4, 3000)
    features = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 6.0]])[labels] + rng.normal(size=(3000, 2))
    fit_labels = np.where(labels[:2000] == 2, 0, labels[:2000])  # class 2's examples fitted as class 0
    expected = metrics.probe_accuracy(features[:2000], fit_labels, features[2000:], labels[2000:])
    f, fit_l = jnp.asarray(features, jnp.float32), jnp.asarray(fit_labels)
    assert float(jm.probe_accuracy(f[:2000], fit_l, f[2000:], jnp.asarray(labels[2000:]), 4)) == pytest.approx(expected, abs=1e-3)
    assert expected == pytest.approx(np.mean(labels[2000:] != 2), abs=0.02)
    # No eval example is predicted as 2, though a quarter of them lie on its cluster.
    assert float(jm.probe_accuracy(f[:2000], fit_l, f[2000:], jnp.full(1000, 2, jnp.int32), 4)) == 0.0


def test_probe_with_one_class_in_fitting_predicts_it():
    rng = np.random.default_rng(23)
    features = rng.normal(size=(3000, 2))
    labels_eval = rng.integers(0, 4, 1000)
    f = jnp.asarray(features, jnp.float32)
    got = jm.probe_accuracy(f[:2000], jnp.full(2000, 2, jnp.int32), f[2000:], jnp.asarray(labels_eval), 4)
    expected = metrics.probe_accuracy(features[:2000], np.full(2000, 2), features[2000:], labels_eval)
    assert float(got) == pytest.approx(expected, abs=1e-6) and expected == pytest.approx(np.mean(labels_eval == 2))


def inertia(points, codes):
    return sum(((points[codes == c] - points[codes == c].mean(0)) ** 2).sum() for c in np.unique(codes))


def test_kmeans_recovers_well_separated_clusters():
    points, truth = make_blobs(1000, 4, centers=6, cluster_std=0.5, center_box=(-50, 50), random_state=0)
    codes = jm.kmeans_codes(jax.random.key(0), jnp.asarray(points, jnp.float32), 6)
    assert codes.dtype == jnp.int32 and codes.shape == (1000,)
    assert len(set(zip(truth, np.asarray(codes)))) == 6  # one code per cluster, and six codes
    assert normalized_mutual_info_score(truth, np.asarray(codes)) == pytest.approx(1.0, abs=1e-12)
    assert float(jm.normalised_mutual_information(jnp.asarray(truth), codes, 6, 6)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_inertia_is_sklearns(seed):
    points, _ = make_blobs(1000, 4, centers=6, cluster_std=2.5, random_state=seed)
    sk = KMeans(6, n_init=4, random_state=seed).fit(points)
    codes = np.asarray(jm.kmeans_codes(jax.random.key(seed), jnp.asarray(points, jnp.float32), 6))
    assert inertia(points, codes) == pytest.approx(sk.inertia_, rel=0.01)


def test_mutual_information_of_codes_and_labels_matches_sklearn(x64):
    rng = np.random.default_rng(30)
    labels = rng.integers(0, 4, 500)
    codes = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 6, 500))
    codes[codes == 5] = 4  # a code value that never occurs
    cases = [
        (labels, codes),
        (labels, rng.integers(0, 12, 500)),  # codes that carry nothing
        (labels, (labels + 1) % 4),  # a relabelling: 1
        (np.full(500, 2), np.full(500, 1)),  # one class and one cluster: 1
        (np.full(500, 2), codes),  # one class, several clusters: 0
        (labels, np.zeros(500, int)),  # one cluster: 0
        (np.repeat([0, 1], 250), np.tile([0, 1], 250)),  # independent: NMI 0, AMI below 0
    ]
    # Labels and codes that do not occur count nothing: one compilation serves every case.
    nmi = [float(jm.normalised_mutual_information(jnp.asarray(lab), jnp.asarray(cod), 4, 12)) for lab, cod in cases]
    ami = [float(jm.adjusted_mutual_information(jnp.asarray(lab), jnp.asarray(cod), 4, 12)) for lab, cod in cases]
    np.testing.assert_allclose(nmi, [normalized_mutual_info_score(*case) for case in cases], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ami, [adjusted_mutual_info_score(*case) for case in cases], rtol=1e-9, atol=1e-12)
    assert 0.2 < nmi[0] < 0.9 and 0.0 < nmi[1] < 0.05 and nmi[2:] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert ami[0] > 0.2 and abs(ami[1]) < 0.01 and ami[6] < 0
    assert ami[2:6] == pytest.approx([1.0, 1.0, 0.0, 0.0], abs=1e-12)
    assert [metrics.adjusted_mutual_information(*case) for case in cases] == [adjusted_mutual_info_score(*c) for c in cases]


def test_codes_that_carry_nothing_have_an_ami_of_zero_but_an_nmi_above_it():
    """10 labels, 40 codes independent of them, 400 examples: NMI reads as signal, AMI does not."""
    rng = np.random.default_rng(32)
    labels, codes = rng.integers(0, 10, (50, 400)), rng.integers(0, 40, (50, 400))
    ami = jax.vmap(lambda lab, cod: jm.adjusted_mutual_information(lab, cod, 10, 40))(jnp.asarray(labels), jnp.asarray(codes))
    nmi = jax.vmap(lambda lab, cod: jm.normalised_mutual_information(lab, cod, 10, 40))(jnp.asarray(labels), jnp.asarray(codes))
    assert abs(float(ami.mean())) < 0.005 and float(ami.std()) < 0.02
    assert float(nmi.min()) > 0.15
    host = [metrics.adjusted_mutual_information(lab, cod) for lab, cod in zip(labels[:5], codes[:5])]
    np.testing.assert_allclose(ami[:5], host, atol=1e-4)  # the device's float32


def test_marginal_fit_matches_the_numpy_test(x64):
    rng = np.random.default_rng(50)
    z = rng.normal(size=(70, 3)) * [1.0, 3.0, 0.2] + 5.0
    normal, offsets = rng.normal(size=(3, 32)), rng.uniform(0, 2 * np.pi, 32)
    features = two_sample.fourier_features(z, normal, offsets)
    got = jm.fourier_features(jnp.asarray(z), jnp.asarray(normal), jnp.asarray(offsets))
    np.testing.assert_allclose(got, features, rtol=1e-12, atol=1e-14)
    membership = np.vstack(
        [np.r_[np.ones(30), np.zeros(40)], rng.permuted(np.tile(np.r_[np.ones(30), np.zeros(40)], (5, 1)), axis=1)]
    )
    np.testing.assert_allclose(
        jm.mmd_statistics(jnp.asarray(features), jnp.asarray(membership)),
        two_sample.mmd_statistics(features, membership),
        rtol=1e-10,
        atol=1e-15,
    )
    # Codes: the features are the values' indicators, so the statistic is the same for any key.
    a, b = rng.integers(0, 5, 300), rng.integers(0, 4, 200)
    device = jm.marginal_fit(jax.random.key(0), jnp.asarray(a), jnp.asarray(b), num_values=6)
    host = two_sample.marginal_fit(a, b, rng=0)
    assert float(device["statistic"]) == pytest.approx(host["statistic"], rel=1e-12)
    assert 1 / 201 <= float(device["p_value"]) <= 1 and float(device["p_value"]) < 0.05  # value 4 is not in b


@pytest.mark.slow  # about 10 s on an idle CPU: 64 tests of 200 relabellings each
def test_marginal_fit_on_the_device_is_calibrated_and_finds_a_shift():
    """In float32, many draws of 1000 at once: a match is rarely called a mismatch (the host's tests
    measure the rate), a shift of 0.5 in one of 8 dimensions always is."""
    keys = jax.random.split(jax.random.key(1), 4)
    test = jax.jit(jax.vmap(lambda k, a, b: jm.marginal_fit(k, a, b)["p_value"]))
    posterior, prior = jax.random.normal(keys[0], (2, 32, 1000, 8)), jax.random.normal(keys[1], (32, 1000, 8))
    assert float(jnp.mean(test(jax.random.split(keys[2], 32), posterior[0], prior) < 0.05)) <= 0.125
    assert bool(jnp.all(test(jax.random.split(keys[3], 32), posterior[1].at[..., 0].add(0.5), prior) < 0.05))


@pytest.mark.parametrize("mix", [None, [0.5, 0.3, 0.2, 0.0]])
@pytest.mark.parametrize("context_shift", [0.0, 0.6])
def test_coverage_matches_the_strategy_generator(x64, mix, context_shift):
    generator = StrategyGenerator(mix=mix, context_shift=context_shift, seed=3)
    x, _, _ = generator.sample(400, rng=0)
    # Generated by a model that over-uses strategy 1.
    y_generated = generator.sample_actions(x, np.where(np.arange(400) % 3 == 0, 1, np.arange(400) % 4), rng=1)
    expected = generator.coverage_tv(x, y_generated)
    tables = jnp.asarray(generator.action_log_probs(x))
    mix, log_prior = jnp.asarray(generator.strategy_mix), jnp.asarray(generator.label_log_prior(x))
    got = jm.label_posterior_coverage_tv(tables, mix, jnp.asarray(y_generated), log_prior)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert expected > 0.05
    if context_shift == 0:  # the contexts say nothing: the mix is the same prior
        assert float(jm.label_posterior_coverage_tv(tables, mix, jnp.asarray(y_generated))) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow  # about 10 s, nearly all compilation
def test_diagnostics_of_a_batch_of_trials_are_each_trials_own():
    """The whole evaluation of three trials at once, under jit and vmap, equals three separate calls."""
    num_trials, n, num_labels = 3, 400, 4
    rng = np.random.default_rng(40)
    labels = jnp.asarray(rng.integers(0, num_labels, (num_trials, n)))
    probs = jnp.asarray(rng.dirichlet(np.ones(6), size=(num_trials, n)), jnp.float32)
    loc = jnp.asarray(rng.normal(size=(num_trials, n, 2)), jnp.float32) + labels[..., None]
    scale = jnp.full_like(loc, 0.5)
    generator = StrategyGenerator(seed=0)
    x, y, _ = generator.sample(n, rng=1)
    tables = jnp.asarray(np.stack([generator.action_log_probs(x)] * num_trials), jnp.float32)
    y_generated = jnp.asarray(np.stack([y, np.roll(y, 1, axis=0), y[::-1]]))
    mix = jnp.asarray(generator.strategy_mix, jnp.float32)

    def trial(key, labels, probs, loc, scale, tables, y_generated):
        keys = jax.random.split(key, 5)
        half = n // 2
        g = jm.sample_gaussian(keys[0], loc, scale)
        codes = jm.kmeans_codes(keys[1], loc, num_labels)
        return {
            "z": jm.sample_categorical(keys[2], probs),
            "perplexity": jm.latent_perplexity(probs),
            "active_units": jm.active_units(loc),
            "discrete": jm.discrete_elbo_surgery(probs, jnp.full_like(probs, 1 / 6)),
            "gaussian": jm.gaussian_elbo_surgery(keys[3], loc, scale, jnp.zeros_like(loc), jnp.ones_like(scale)),
            "probe": jm.probe_accuracy(g[:half], labels[:half], g[half:], labels[half:], num_labels),
            "codes": codes,
            "nmi": jm.normalised_mutual_information(labels, codes, num_labels, num_labels),
            "ami": jm.adjusted_mutual_information(labels, codes, num_labels, num_labels),
            "marginal_fit": jm.marginal_fit(keys[4], g, jnp.zeros_like(g)),
            "coverage_tv": jm.label_posterior_coverage_tv(tables, mix, y_generated),
        }

    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in range(num_trials)])  # raw keys, as the backend's
    args = (keys, labels, probs, loc, scale, tables, y_generated)
    batched = jax.jit(jax.vmap(trial))(*args)
    for t in range(num_trials):
        single = trial(*[a[t] for a in args])
        leaves_b, leaves_s = jax.tree.leaves(batched), jax.tree.leaves(single)
        for b, s in zip(leaves_b, leaves_s, strict=True):
            if jnp.issubdtype(s.dtype, jnp.integer):
                np.testing.assert_array_equal(b[t], s)
            else:
                np.testing.assert_allclose(b[t], s, rtol=1e-5, atol=1e-6)
    assert float(batched["probe"].min()) > 0.5  # the Gaussian latent carries the label


def test_discrete_recon_z_gain_matches_metrics(x64):
    rng = np.random.default_rng(3)
    q, p = rng.dirichlet(np.ones(6), size=50), rng.dirichlet(np.ones(6), size=50)
    log_lik = np.log(rng.dirichlet(np.ones(4), size=(6, 50)))[..., 0]
    got = jm.discrete_recon_z_gain(jnp.asarray(q), jnp.asarray(p), jnp.asarray(log_lik))
    assert float(got) == pytest.approx(metrics.discrete_recon_z_gain(q, p, log_lik), rel=1e-12)
