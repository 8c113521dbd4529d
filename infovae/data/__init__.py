"""Data sets: ``strategies`` (generated, with exact likelihoods), ``digits`` (bundled with
scikit-learn) and your own ``npz`` arrays, split deterministically."""

from infovae.data.base import DataSplits, Dataset, split_dataset
from infovae.data.digits import QUADRANT_ORDER, make_digits, to_images
from infovae.data.loading import load_splits
from infovae.data.npz import load_npz
from infovae.data.strategies import StrategyGenerator, make_strategies

__all__ = [
    "QUADRANT_ORDER",
    "DataSplits",
    "Dataset",
    "StrategyGenerator",
    "load_npz",
    "load_splits",
    "make_digits",
    "make_strategies",
    "split_dataset",
    "to_images",
]
