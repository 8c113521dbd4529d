"""Points on concentric noisy rings: ``y [N, 2]``, no condition (an unconditional VAE), and the ring
each point was drawn from as its label."""

import numpy as np

from infovae.data.base import Dataset


def load(section, likelihood):
    rng = np.random.default_rng(section.seed)
    rings = rng.integers(section.num_rings, size=section.num_examples)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=section.num_examples)
    radius = rings + 1.0 + section.noise * rng.standard_normal(section.num_examples)
    y = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
    x = np.zeros((section.num_examples, 0), np.float32)
    return Dataset(x, y, rings.astype(np.int64), "gaussian", 0, "rings"), None
