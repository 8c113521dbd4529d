"""Labels stored with ids that are not 0..K-1 (an npz file's 3 and 8): what counts the labels counts
the distinct ids, so a Gaussian latent's codes for the NMI are k-means clusters, one per label."""

from dataclasses import replace

import numpy as np
import pytest

from infovae.data.registry import load_splits
from infovae.diagnostics import metrics
from infovae.training.config import parse_config

CONFIG = {
    "data": {"kind": "strategies", "num_examples": 400, "num_strategies": 2},
    "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16},
    "train": {"steps": 4, "batch_size": 32, "eval_examples": 100},
    "backend": "pyro",
}


def sparse(data):
    """``data`` with its labels 0 and 1 stored as 3 and 8."""
    return replace(data, labels=np.array([3, 8])[data.labels])


def test_the_nmi_of_a_gaussian_latent_clusters_into_as_many_codes_as_there_are_labels(monkeypatch):
    pytest.importorskip("pyro")
    from infovae.training.loop import build_backend

    config = parse_config(CONFIG)
    splits = load_splits(config.data, config.likelihood)
    splits = replace(splits, train=sparse(splits.train), val=sparse(splits.val), test=sparse(splits.test))
    backend = build_backend([config], splits)
    clusters = []
    latent_codes = metrics.latent_codes
    monkeypatch.setattr(metrics, "latent_codes", lambda q, n, seed=0: clusters.append(n) or latent_codes(q, n, seed))
    record = backend.evaluate(splits.val, splits.train, None, np.array([0]))
    assert clusters == [2]  # not the largest id + 1, 9
    assert 0 <= record["nmi"][0] <= 1


def test_the_numpyro_nmi_does_not_depend_on_how_the_label_ids_are_spelled():
    """The device's k-means has as many clusters as labels present: stored as 3 and 8, the labels give the
    NMI they give as 0 and 1 (with 9 clusters, another clustering and another NMI)."""
    pytest.importorskip("numpyro")
    from infovae.training.loop import build_backend

    config = parse_config({**CONFIG, "backend": "numpyro"})
    splits = load_splits(config.data, config.likelihood)
    backend = build_backend([config], splits)
    dense = backend.evaluate(splits.val, splits.train, None, np.array([0]))
    backend = build_backend([config], splits)
    record = backend.evaluate(sparse(splits.val), sparse(splits.train), None, np.array([0]))
    assert record["nmi"][0] == pytest.approx(dense["nmi"][0], abs=1e-6)
    assert record["ami"][0] == pytest.approx(dense["ami"][0], abs=1e-6)
