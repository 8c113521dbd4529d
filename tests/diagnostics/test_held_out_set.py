"""What an evaluation reads from the data alone (the probe from x, the Bayes accuracy) is computed once
per held-out set and is the number a direct computation on the evaluated examples gives."""

from dataclasses import replace

import numpy as np
import pytest

from infovae.data.base import evaluation_subset
from infovae.data.registry import load_splits
from infovae.diagnostics import metrics
from infovae.diagnostics.evaluate import held_out_set
from infovae.training.config import parse_config

CONFIG = {
    "data": {"kind": "strategies", "num_examples": 3000, "context_shift": 1.0},
    "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
    "train": {"steps": 10, "batch_size": 32, "eval_examples": 200},
    "backend": "pyro",
}


class CountingGenerator:
    """The data's generator, counting the calls of its Bayes accuracy and of its label tables (which the
    evaluation computes the Bayes accuracy from)."""

    def __init__(self, generator):
        self.generator, self.bayes_calls, self.table_calls = generator, 0, 0

    def expected_bayes_accuracy(self, x, y):
        self.bayes_calls += 1
        return self.generator.expected_bayes_accuracy(x, y)

    def label_log_prob_tables(self, x):
        self.table_calls += 1
        return self.generator.label_log_prob_tables(x)

    def __getattr__(self, name):
        return getattr(self.generator, name)


def test_held_out_set_holds_the_probe_from_x_and_the_bayes_accuracy_of_the_evaluated_examples():
    config = parse_config(CONFIG)
    splits = load_splits(config.data, config.likelihood)
    data = held_out_set(splits.val, splits.train, splits.generator, config)
    held = evaluation_subset(splits.val, 200, config.data.seed)
    fit = evaluation_subset(splits.train, 200, config.data.seed)
    assert len(data.held) == 200 < len(splits.val)
    np.testing.assert_array_equal(data.held.x, held.x)
    np.testing.assert_array_equal(data.fit.labels, fit.labels)
    assert data.bayes_accuracy == splits.generator.expected_bayes_accuracy(held.x, held.y)
    assert data.probe_x_accuracy == metrics.context_probe_accuracy(fit.x, fit.labels, held.x, held.labels)
    np.testing.assert_array_equal(data.label_tables, splits.generator.label_log_prob_tables(held.x))
    np.testing.assert_array_equal(data.label_log_prior, splits.generator.label_log_prior(held.x))
    # Without labels there is no probe; without a generator no Bayes accuracy and no tables.
    unlabelled = held_out_set(replace(splits.val, labels=None), splits.train, None, config)
    assert unlabelled.probe_x_accuracy is None and unlabelled.bayes_accuracy is None
    assert unlabelled.label_tables is None and unlabelled.label_log_prior is None


@pytest.mark.parametrize("backend_name", ["pyro", "numpyro"])
def test_a_backend_computes_what_depends_on_the_data_once_per_held_out_set(backend_name):
    """Both backends read held_out_set's numbers, once per split: the same Bayes accuracy; each its own
    probe from x (the NumPyro backend the device's, as its probe from x and z)."""
    pytest.importorskip(backend_name)
    from infovae.training.loop import build_backend

    config = parse_config({**CONFIG, "backend": backend_name})
    splits = load_splits(config.data, config.likelihood)
    backend = build_backend([config], splits)
    generator = CountingGenerator(splits.generator)
    first = backend.evaluate(splits.val, splits.train, generator, np.array([0]))
    second = backend.evaluate(splits.val, splits.train, generator, np.array([1]))
    assert (generator.bayes_calls, generator.table_calls) == (0, 1)
    held, fit = evaluation_subset(splits.val, 200, config.data.seed), evaluation_subset(splits.train, 200, config.data.seed)
    assert first["bayes_accuracy"] == second["bayes_accuracy"] == [splits.generator.expected_bayes_accuracy(held.x, held.y)]
    host_probe = metrics.context_probe_accuracy(fit.x, fit.labels, held.x, held.labels)
    assert first["probe_x_accuracy"] == second["probe_x_accuracy"]
    assert abs(first["probe_x_accuracy"][0] - host_probe) <= (0 if backend_name == "pyro" else 0.02)
    if backend_name == "pyro":
        # The coverage from the kept tables is the generator's own, computed afresh, of the same generated data.
        for record, seed in ((first, 0), (second, 1)):
            assert record["coverage_tv"] == [splits.generator.coverage_tv(held.x, backend.generate(held.x, seed)[1])]
    backend.evaluate(splits.test, splits.train, generator, np.array([0]))
    assert (generator.bayes_calls, generator.table_calls) == (0, 2)  # another split, its own set


def test_a_held_out_set_is_found_by_the_objects_themselves_not_by_a_reused_id():
    pytest.importorskip("pyro")
    from infovae.training.loop import build_backend

    config = parse_config(CONFIG)
    splits = load_splits(config.data, config.likelihood)
    backend = build_backend([config], splits)
    # Splits made and dropped one after another: a freed one's id is often the next one's.
    for start in range(0, 240, 40):
        held = splits.val.subset(np.arange(start, start + 40))
        record = backend.evaluate(held, splits.train, splits.generator, np.array([0]))
        assert record["bayes_accuracy"] == [splits.generator.expected_bayes_accuracy(held.x, held.y)]
    # The generator is part of what the set is made from.
    assert backend.evaluate(splits.val, splits.train, None, np.array([0]))["bayes_accuracy"] == [None]
    assert backend.evaluate(splits.val, splits.train, splits.generator, np.array([0]))["bayes_accuracy"][0] is not None
    made = [backend.once_per_data(lambda k=k: k, [k]) for k in range(50)]
    assert made == list(range(50))
