"""Limits on a model's size: what is refused as too large to be anything but a mistake, and the batch
size fitted to the data."""

import warnings
from dataclasses import replace

from infovae.core.architecture import CVAEConfig
from infovae.data.base import Dataset
from infovae.errors import ConfigError, UserInputError
from infovae.machine import available_memory
from infovae.training.config_sections import RunConfig

__all__ = ["MAX_ACTIVATIONS", "MAX_PARAMETERS", "architecture", "fit_batch_size"]

# Parameters a CVAE may have before its size is refused as a mistake (about 4 GB of float32 weights),
# and the values of one step's largest activation (the widest layer at every latent value or draw, for every
# example of the batch: 8 GB of float32).
MAX_PARAMETERS = 1_000_000_000
MAX_ACTIVATIONS = 2_000_000_000
# Bytes a step holds per parameter (float32 weights, gradients and Adam's two moments) and per value of the
# largest activation (kept for the backward pass, its gradient, and a temporary of the same shape).
BYTES_PER_PARAMETER, BYTES_PER_ACTIVATION = 16, 12


def architecture(config: RunConfig, train: Dataset) -> CVAEConfig:
    """The CVAE's shape for ``config`` on the training split ``train``; refused (one line) if it is
    too large to be anything but a mistake."""
    m = config.model
    arch = CVAEConfig(
        x_dim=train.x_dim,
        y_dim=train.y_dim,
        num_classes=max(train.num_classes, 2),
        latent=m.latent,
        latent_size=m.latent_size,
        prior=m.prior,
        likelihood=config.likelihood,
        hidden=m.hidden,
        decoder_scale=m.decoder_scale,
        min_scale=m.min_scale,
    )
    if m.network == "conv":
        arch = _conv(arch, config, train)
    if arch.num_parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"model.hidden={m.hidden}, model.latent_size={m.latent_size} on this data make a CVAE of "
            f"{arch.num_parameters:,} parameters; at most {MAX_PARAMETERS:,} are supported"
        )
    values = arch.latent_size if arch.latent == "discrete" else config.objective.jsd_samples
    batch = min(config.train.batch_size, len(train))
    activations = batch * (values + 1) * arch.widest_layer
    if activations > MAX_ACTIVATIONS:
        raise ConfigError(
            f"train.batch_size={batch} with {values} latent values (or draws) of a network whose widest layer holds "
            f"{arch.widest_layer:,} values makes activations of {activations:,} values per step; at most "
            f"{MAX_ACTIVATIONS:,} are supported"
        )
    needed, memory = arch.num_parameters * BYTES_PER_PARAMETER + activations * BYTES_PER_ACTIVATION, available_memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            f"a CVAE of {arch.num_parameters:,} parameters (model.hidden={m.hidden} on data of {train.x_dim} + "
            f"{train.y_dim} columns) at train.batch_size={batch} needs about {needed / 2**30:.1f} GiB to train; "
            f"this machine has {memory / 2**30:.1f} GiB available"
        )
    return arch


def _conv(arch: CVAEConfig, config: RunConfig, train: Dataset) -> CVAEConfig:
    """``arch`` with conv networks for the data's images, or refused (one line naming the key)."""
    layout = train.info.get("image")
    if layout is None:
        raise ConfigError(
            f"model.network: conv needs images, and data kind {config.data.kind} holds none: set data.image_shape: [C, H, W]"
            " (npz), or use data kind mnist or digits"
        )
    try:
        return replace(arch, network="conv", image_shape=layout.shape, x_pixels=tuple(int(i) for i in layout.x_pixels))
    except UserInputError as error:
        raise ConfigError(f"model.network: {error}") from None


def fit_batch_size(config: RunConfig, train: Dataset) -> RunConfig:
    """``config`` with ``train.batch_size`` at most the number of training examples (a minibatch
    cannot hold more), with a warning when it had to change; the run folder records what was used."""
    if config.train.batch_size <= len(train):
        return config
    warnings.warn(
        f"train.batch_size={config.train.batch_size} is larger than the {len(train)} training examples; using {len(train)}",
        stacklevel=2,
    )
    return config.model_copy(update={"train": config.train.model_copy(update={"batch_size": len(train)})})
