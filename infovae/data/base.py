"""Arrays of a data set, its deterministic train/validation/test split and the examples an evaluation
uses."""

from dataclasses import dataclass, field, replace

import numpy as np

from infovae.errors import DataError

__all__ = ["DataSplits", "Dataset", "evaluation_subset", "split_dataset"]

# Evaluation subsets draw from the stream (seed, 2): apart from the split's (seed) and a generator's (seed, 1).
_EVALUATION_STREAM = 2


@dataclass(frozen=True)
class Dataset:
    """Examples ``(x, y)`` of a conditional model, with optional labels of the hidden factor.

    :param x: conditions ``[N, x_dim]``, float32.
    :param y: targets ``[N, y_dim]``: int64 classes in ``[0, num_classes)`` for the categorical
        likelihood, float32 zeros and ones for Bernoulli, float32 values for Gaussian.
    :param labels: the hidden factor ``[N]`` (int64, ``0..num_labels-1``), or ``None``.
    :param likelihood: ``"categorical"``, ``"bernoulli"`` or ``"gaussian"``.
    :param num_classes: classes per factor of ``y`` (2 for Bernoulli, 0 for Gaussian).
    :param name: the data set's name, for reports.
    :param info: plotting metadata (e.g. the image layout of ``digits``).
    """

    x: np.ndarray
    y: np.ndarray
    labels: np.ndarray | None
    likelihood: str
    num_classes: int
    name: str
    info: dict = field(default_factory=dict)

    def __len__(self):
        return self.x.shape[0]

    @property
    def x_dim(self):
        return self.x.shape[1]

    @property
    def y_dim(self):
        return self.y.shape[1]

    @property
    def num_labels(self):
        return 0 if self.labels is None else int(self.labels.max()) + 1

    def subset(self, index):
        return replace(self, x=self.x[index], y=self.y[index], labels=None if self.labels is None else self.labels[index])


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one data set, the indices that made them, and the data's generator if known."""

    train: Dataset
    val: Dataset
    test: Dataset
    indices: dict
    generator: object | None = None


def split_dataset(data, val_fraction, test_fraction, seed, generator=None, stratify=None):
    """Split ``data`` by a permutation drawn from ``seed``: the same seed gives the same split.

    :param stratify: ``[N]`` classes (e.g. ``data.labels``) to split each of apart, so that every split
        holds each class in its share of the data (each class's count times the fraction, rounded).
    """
    n = len(data)
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n - n_val - n_test < 2 or n_val < 2 or n_test < 2:
        raise DataError(
            f"{n} examples are too few for val_fraction={val_fraction}, test_fraction={test_fraction}: "
            "each split needs at least 2"
        )
    rng = np.random.default_rng(seed)
    if stratify is None:
        order = rng.permutation(n)
        indices = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    else:
        parts = {"test": [], "val": [], "train": []}
        for c in np.unique(stratify):
            members = rng.permutation(np.flatnonzero(stratify == c))
            c_test, c_val = int(round(len(members) * test_fraction)), int(round(len(members) * val_fraction))
            parts["test"].append(members[:c_test])
            parts["val"].append(members[c_test : c_test + c_val])
            parts["train"].append(members[c_test + c_val :])
        indices = {k: np.concatenate(v) for k, v in parts.items()}
    indices = {k: np.sort(v) for k, v in indices.items()}
    return DataSplits(
        train=data.subset(indices["train"]),
        val=data.subset(indices["val"]),
        test=data.subset(indices["test"]),
        indices=indices,
        generator=generator,
    )


def evaluation_subset(data, size, seed):
    """At most ``size`` examples of ``data`` for an evaluation: drawn at random without replacement from
    ``seed`` (the data's seed, so that every trial of a sweep evaluates the same examples), stratified
    by label where there are labels (each label keeps its share, rounded by largest remainders), in
    their order in ``data``; all of ``data`` when it has no more than ``size``. What an evaluation sees
    then depends neither on the order of the file's rows (a file sorted by label, say) nor on the trial.
    """
    n = len(data)
    if size >= n:
        return data
    rng = np.random.default_rng((seed, _EVALUATION_STREAM))
    if data.labels is None:
        return data.subset(np.sort(rng.choice(n, size, replace=False)))
    classes, counts = np.unique(data.labels, return_counts=True)
    quota = size * counts / n
    take = np.floor(quota).astype(int)
    take[np.argsort(take - quota, kind="stable")[: size - take.sum()]] += 1
    chosen = [rng.choice(np.flatnonzero(data.labels == c), k, replace=False) for c, k in zip(classes, take)]
    return data.subset(np.sort(np.concatenate(chosen)))
