"""The registries' contract: a divergence declares its inputs and options and its functions are checked
against them; the ELBO passes it only what it declares; configs accept what is registered when they are
parsed; entry points are read only when a name is missing or every name is listed."""

import warnings

import pytest
import torch

from infovae.core.marginals import MARGINALS, Marginal
from infovae.data.registry import DATA_KINDS
from infovae.errors import UserInputError
from infovae.objectives import InfoVAE_ELBO
from infovae.registry import Registry, RegistryError
from infovae.training.backends import BACKENDS
from infovae.training.config import ConfigError, describe_schema, parse_config

from ..objectives.pairs import linear_gaussian_pair


@pytest.fixture
def scratch_marginals(monkeypatch):
    """The marginal registry, with what a test registers removed afterwards."""
    monkeypatch.setattr(MARGINALS, "_entries", dict(MARGINALS._entries))
    return MARGINALS


def squared_mean_gap(x, y):
    return ((x.mean(0) - y.mean(0)) ** 2).sum()


def gap(name, functions, options=()):
    return Marginal(name, "continuous", "draws", functions, "the squared gap between the sample means", options)


# -- declarations checked -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "function, problem",
    [
        (lambda x: x.sum(), "too many positional arguments"),
        (lambda x, y, extra: x.sum(), "missing a required argument: 'extra'"),
        (lambda x, y: x.sum(), "unexpected keyword argument 'scales'"),
    ],
    ids=["too-few-inputs", "an-extra-parameter", "a-declared-option-not-taken"],
)
def test_a_function_that_does_not_fit_its_declaration_is_refused_at_registration(scratch_marginals, function, problem):
    with pytest.raises(RegistryError, match=f"marginal 'bad': the pyro function .*{problem}") as error:
        scratch_marginals.register(gap("bad", {"pyro": function}, options=("scales",)))
    assert "\n" not in str(error.value)
    assert "bad" not in scratch_marginals


def test_a_function_named_by_a_string_is_checked_at_its_first_use(scratch_marginals):
    # Registering imports nothing; the first use imports it and finds that it takes no scales.
    scratch_marginals.register(gap("late", {"pyro": "infovae.objectives.divergences:categorical_kl"}, options=("scales",)))
    with pytest.raises(RegistryError, match="marginal 'late': the pyro function categorical_kl.*unexpected keyword argument"):
        scratch_marginals["late"].function("pyro")
    with pytest.raises(RegistryError, match="marginal 'late' has no numpyro function"):
        scratch_marginals["late"].function("numpyro")


def test_a_run_refuses_a_function_that_does_not_fit_before_it_makes_its_folder(scratch_marginals, tmp_path):
    from infovae.training.loop import start_run

    scratch_marginals.register(gap("late", {"pyro": "infovae.objectives.divergences:categorical_kl"}, options=("scales",)))
    config = parse_config(
        {
            "data": {"kind": "strategies", "num_examples": 120, "horizon": 3, "num_strategies": 2},
            "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
            "objective": {"beta": 0.0, "marginal": "late", "marginal_weight": 1.0},
            "train": {"steps": 2, "batch_size": 16, "eval_every": 2},
        }
    )
    with pytest.raises(RegistryError, match="marginal 'late': the pyro function categorical_kl"):
        start_run(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "marginal, message",
    [
        (Marginal("x", "both", "draws", {"pyro": squared_mean_gap}, ""), "latent must be"),
        (Marginal("x", "continuous", "pairs", {"pyro": squared_mean_gap}, ""), "inputs must be one of"),
        (gap("x", {"pyro": squared_mean_gap}, options=("width",)), "options must be a tuple of"),
        (gap("x", {"jax": squared_mean_gap}), "unknown backend"),
        (gap("x", {}), "functions must map backend names"),
        (Marginal("x", "discrete", "probs", {"pyro": lambda q_probs, p_probs, rng_key: 0.0}, "", ("rng_key",)), "continuous"),
        (gap("kl", {"pyro": squared_mean_gap}), "named 'kl' is registered already"),
    ],
)
def test_declarations_that_do_not_hold_are_refused(scratch_marginals, marginal, message):
    with pytest.raises(RegistryError, match=message):
        scratch_marginals.register(marginal)


def test_every_built_in_divergence_fits_its_declaration_in_both_backends():
    pytest.importorskip("numpyro")
    for marginal in MARGINALS.values():
        assert set(marginal.functions) == {"pyro", "numpyro"}
        for backend in ("pyro", "numpyro"):
            assert callable(marginal.function(backend))


# -- what the ELBO passes -------------------------------------------------------------------------------


def test_the_elbo_passes_a_divergence_its_inputs_and_only_the_options_it_declares(scratch_marginals):
    seen = []

    def recorder(x, y, scales):  # no kernel, bandwidth or num_features: passing them would fail
        seen.append((tuple(x.shape), tuple(y.shape), scales))
        return squared_mean_gap(x, y)

    scratch_marginals.register(gap("gap", {"pyro": recorder}, options=("scales",)))
    model, guide = linear_gaussian_pair(torch.randn(2, 3), torch.randn(3, 2), torch.zeros(2))
    elbo = InfoVAE_ELBO(beta=0.0, marginal="gap", marginal_weight=1.0, kernel_scales=(1.0, 3.0))
    terms = elbo.loss_terms(model, guide, torch.zeros(5, 1), torch.randn(5, 3))
    assert seen == [((5, 2), (5, 2), (1.0, 3.0))]
    # The weight reaches the loss: loss / N == -(recon - gamma D) with beta = 0.
    assert terms["loss"] / 5 == pytest.approx(-(terms["recon"] - terms["marginal"]), rel=1e-5)


def test_kernel_options_a_divergence_does_not_take_are_named_in_a_warning():
    with pytest.warns(UserWarning, match=r"marginal='kl' does not use kernel='rbf', mmd_features=32; they are ignored"):
        InfoVAE_ELBO(marginal="kl", kernel="rbf", mmd_features=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        InfoVAE_ELBO(marginal="mmd", kernel="rbf", mmd_features=32)  # it takes them
        InfoVAE_ELBO(marginal="kl")  # the defaults are no choice of the user's
        parse_config({"objective": {"marginal": "kl"}})


# -- configs read the registries when they are parsed -----------------------------------------------------


def test_a_divergence_registered_after_import_is_accepted_by_configs_and_the_schema(scratch_marginals):
    with pytest.raises(ConfigError, match="objective.marginal: Input should be 'kl', 'kl_corrected', 'moment' or 'mmd'"):
        parse_config({"model": {"latent": "gaussian"}, "objective": {"marginal": "gap"}})
    scratch_marginals.register(gap("gap", {"pyro": squared_mean_gap}))
    config = parse_config({"model": {"latent": "gaussian"}, "objective": {"marginal": "gap", "marginal_weight": 1}})
    assert config.objective.marginal == "gap"
    line = next(line for line in describe_schema().splitlines() if line.strip().startswith("objective.marginal "))
    assert "gap: the squared gap between the sample means (continuous latent)" in line and "| gap |" in line


def test_the_schema_lists_every_registered_name():
    text = describe_schema()
    assert all(f"data (kind: {kind})" in text for kind in DATA_KINDS)
    assert all(f"{name}: " in text for name in MARGINALS) and all(f"{name}: " in text for name in BACKENDS)


# -- a registry's own rules -----------------------------------------------------------------------------


class Entry:
    def __init__(self, name):
        self.name = name


def test_a_registry_keeps_order_refuses_doubles_and_names_what_it_knows():
    registry = Registry("widget", Entry)
    first, second = registry.register(Entry("b")), registry.register(Entry("a"))
    assert list(registry) == ["b", "a"] and registry["a"] is second and len(registry) == 2
    assert registry.register(first) is first  # the same object again: nothing happens
    with pytest.raises(RegistryError, match="a widget named 'b' is registered already"):
        registry.register(Entry("b"))
    with pytest.raises(RegistryError, match="must be a Entry, got str"):
        registry.register("c")
    with pytest.raises(UserInputError, match="unknown widget 'c'; the widgets are b, a"):
        registry.lookup("c")
    assert "c" not in registry and None not in registry and ["a"] not in registry


class FakeEntryPoint:
    def __init__(self, name, value, load):
        self.name, self.value, self._load, self.dist, self.loads = name, value, load, None, 0

    def load(self):
        self.loads += 1
        return self._load()


def test_entry_points_load_only_when_a_name_is_missing_or_all_are_listed(monkeypatch):
    import importlib.metadata

    def broken():
        raise ImportError("No module named 'missing_dependency'")

    points = {
        "good": FakeEntryPoint("good", "pkg:GOOD", lambda: Entry("good")),
        "broken": FakeEntryPoint("broken", "pkg:BROKEN", broken),
        "misnamed": FakeEntryPoint("misnamed", "pkg:OTHER", lambda: Entry("other")),
    }
    reads = []
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: reads.append(group) or list(points.values()))
    registry = Registry("widget", Entry, group="test.widgets")
    registry.register(Entry("built_in"))
    assert registry["built_in"].name == "built_in" and reads == []  # a registered name reads no entry point
    assert registry["good"].name == "good" and reads == ["test.widgets"]
    assert [p.loads for p in points.values()] == [1, 0, 0]  # only the one asked for
    with pytest.raises(
        RegistryError, match=r"plug-in 'pkg:BROKEN' \(entry point 'broken' in test.widgets\) cannot be registered"
    ):
        registry["broken"]
    with pytest.warns(UserWarning, match="'misnamed'.*names a Entry called 'other'"):
        assert list(registry) == ["built_in", "good"]  # a broken plug-in hides no other name
    with pytest.raises(RegistryError, match="No module named 'missing_dependency'"):
        registry["broken"]  # still says why
    assert reads == ["test.widgets"] and [p.loads for p in points.values()] == [1, 1, 1]
