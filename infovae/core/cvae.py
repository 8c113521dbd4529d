"""The CVAE's distributions from its networks' outputs, written once for both backends.

``pyro.distributions`` and ``numpyro.distributions`` name their families and arguments alike, so the
model and guide of each backend pass their own module as ``dist`` and get the same distributions.
"""

import math

from infovae.core.architecture import CVAEConfig

__all__ = [
    "GUIDE_NAME",
    "INITIAL_DECODER_SCALE",
    "MODEL_NAME",
    "fixed_prior",
    "initial_raw_decoder_scale",
    "latent_distribution",
    "likelihood_distribution",
]

# The names the model's and the guide's networks are registered under, in both backends (pyro.module,
# NumPyro's flax_module): a checkpoint's weights move between them by these names.
MODEL_NAME = "cvae_model"
GUIDE_NAME = "cvae_guide"

# A learned decoder scale starts at one: the natural unit of standardised targets.
INITIAL_DECODER_SCALE = 1.0


def initial_raw_decoder_scale(config: CVAEConfig) -> float:
    """The unconstrained start of a learned decoder scale: ``softplus(raw) + min_scale`` is
    :data:`INITIAL_DECODER_SCALE` (or just above ``min_scale`` if that is larger)."""
    gap = max(INITIAL_DECODER_SCALE - config.min_scale, 1e-3)
    return math.log(math.expm1(gap))


def latent_distribution(dist, config: CVAEConfig, params, split_loc_scale):
    """``p(z|x)`` or ``q(z|x,y)`` from a network's output ``params [..., latent_param_dim]``: a
    categorical over ``latent_size`` values from logits, or a diagonal Normal (one event dim) from the
    location and scale that ``split_loc_scale`` (the backend's) makes of it."""
    if config.latent == "discrete":
        return dist.Categorical(logits=params)
    return dist.Normal(*split_loc_scale(params)).to_event(1)


def fixed_prior(dist, config: CVAEConfig, zeros):
    """The fixed prior: uniform over the latent values, or the standard normal; ``zeros`` is an array
    ``[..., latent_size]`` of zeros in the batch shape, dtype and device wanted."""
    if config.latent == "discrete":
        return dist.Categorical(logits=zeros)
    return dist.Normal(zeros, zeros + 1.0).to_event(1)


def likelihood_distribution(dist, config: CVAEConfig, out, scale=None):
    """``p(y|x,z)`` from the decoder's output ``out`` ``[..., decoder_output_dim]``, one event dim over
    the factors of ``y``.

    - categorical: ``y_dim`` independent categoricals over ``num_classes``, from logits;
    - Bernoulli: ``y_dim`` independent Bernoullis from logits. Targets may be anywhere in ``[0, 1]``
      (greyscale pixels): their log-probability is then the soft-target cross-entropy
      ``y log p + (1 - y) log(1 - p)``, which is not a normalised density for fractional ``y`` but is
      the usual objective for images scaled to ``[0, 1]``;
    - Gaussian: location ``out`` and the standard deviation ``scale`` (already positive; broadcast).
    """
    if config.likelihood == "categorical":
        return dist.Categorical(logits=out.reshape(out.shape[:-1] + (config.y_dim, config.num_classes))).to_event(1)
    if config.likelihood == "bernoulli":
        # Soft targets in [0, 1] are valid here; the support check would refuse them.
        return dist.Bernoulli(logits=out, validate_args=False).to_event(1)
    return dist.Normal(out, scale).to_event(1)
