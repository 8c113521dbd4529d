"""From a data config to the split data set."""

from infovae.data.base import split_dataset

__all__ = ["load_splits"]


def load_splits(config, likelihood):
    """The train/val/test splits of the data set ``config`` describes (a section of the run config).

    :param likelihood: the model's likelihood, which an ``npz`` file's ``y`` must fit.
    """
    generator = None
    if config.kind == "strategies":
        from infovae.data.strategies import make_strategies

        data, generator = make_strategies(
            num_examples=config.num_examples,
            num_strategies=config.num_strategies,
            num_actions=config.num_actions,
            horizon=config.horizon,
            context_dim=config.context_dim,
            separation=config.separation,
            similar_pairs=config.similar_pairs,
            pair_distance=config.pair_distance,
            seed=config.seed,
        )
    elif config.kind == "digits":
        from infovae.data.digits import make_digits

        data = make_digits(quadrants=config.quadrants)
    else:
        from infovae.data.npz import load_npz

        data = load_npz(config.path, likelihood, num_classes=config.num_classes)
    return split_dataset(data, config.val_fraction, config.test_fraction, config.seed, generator=generator)
