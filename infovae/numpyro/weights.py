"""Moving CVAE weights between the Pyro (torch) and NumPyro (flax) backends, one call each way.

torch's ``Linear`` stores ``weight`` as ``(out, in)``; flax's ``Dense`` stores ``kernel`` as ``(in, out)``.
The flax layers are named after the torch modules (``encoder.0`` ↔ ``encoder$params["0"]``), so the
mapping is a transpose per layer and nothing else.
"""

import jax.numpy as jnp
import numpy as np

__all__ = ["numpyro_to_state_dicts", "numpyro_to_torch", "state_dicts_to_numpyro", "torch_to_numpyro"]

# torch module prefix -> (NumPyro param, flax layer name)
LAYERS = {
    "model": {
        "decoder_x": ("decoder$params", "decoder_x"),
        "decoder_rest.1": ("decoder$params", "decoder_rest_1"),
        "decoder_rest.3": ("decoder$params", "decoder_rest_3"),
        "prior_net.0": ("prior_net$params", "0"),
        "prior_net.2": ("prior_net$params", "2"),
        "prior_net.4": ("prior_net$params", "4"),
    },
    "guide": {
        "encoder.0": ("encoder$params", "0"),
        "encoder.2": ("encoder$params", "2"),
        "encoder.4": ("encoder$params", "4"),
    },
}
# The decoder's z part has no bias and is a bare parameter in flax.
Z_PART = ("decoder_z.weight", "decoder$params", "decoder_z")


def _array(value):
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def state_dicts_to_numpyro(model_state, guide_state, dtype=None):
    """NumPyro params from torch-layout state dicts (name -> array) of the model and the guide."""
    params = {}
    for part, state in (("model", model_state), ("guide", guide_state)):
        for prefix, (param, layer) in LAYERS[part].items():
            if f"{prefix}.weight" not in state:
                continue
            params.setdefault(param, {})[layer] = {
                "kernel": jnp.asarray(_array(state[f"{prefix}.weight"]).T, dtype=dtype),
                "bias": jnp.asarray(_array(state[f"{prefix}.bias"]), dtype=dtype),
            }
    name, param, layer = Z_PART
    params[param][layer] = jnp.asarray(_array(model_state[name]).T, dtype=dtype)
    return params


def numpyro_to_state_dicts(params):
    """Torch-layout state dicts ``(model, guide)`` of numpy arrays from NumPyro params."""
    states = {"model": {}, "guide": {}}
    for part, layers in LAYERS.items():
        for prefix, (param, layer) in layers.items():
            if param not in params:
                continue
            states[part][f"{prefix}.weight"] = np.asarray(params[param][layer]["kernel"]).T.copy()
            states[part][f"{prefix}.bias"] = np.asarray(params[param][layer]["bias"]).copy()
    name, param, layer = Z_PART
    states["model"][name] = np.asarray(params[param][layer]).T.copy()
    return states["model"], states["guide"]


def torch_to_numpyro(model, guide, dtype=None):
    """NumPyro params holding the weights of a Pyro :class:`~infovae.models.CVAEModel` and
    :class:`~infovae.guides.CVAEGuide`."""
    return state_dicts_to_numpyro(model.state_dict(), guide.state_dict(), dtype)


def numpyro_to_torch(params, model, guide):
    """Load NumPyro params into a Pyro :class:`~infovae.models.CVAEModel` and
    :class:`~infovae.guides.CVAEGuide`, in place."""
    import torch

    model_state, guide_state = numpyro_to_state_dicts(params)
    for module, state in ((model, model_state), (guide, guide_state)):
        reference = module.state_dict()
        module.load_state_dict({k: torch.as_tensor(v, dtype=reference[k].dtype) for k, v in state.items()})
