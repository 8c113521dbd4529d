"""Moving CVAE weights between the Pyro (torch) and NumPyro (flax) backends, one call each way.

The flax networks carry the torch modules' names (:mod:`infovae.numpyro.models.cvae`,
:mod:`infovae.numpyro.guides.cvae`), so the mapping is by name alone. A torch parameter
``decoder_rest.3.weight`` of the model is the leaf ``["decoder_rest"]["layers_3"]["kernel"]`` of the
NumPyro param ``"cvae_model$params"`` (the guide's go to ``"cvae_guide$params"``), transposed:
torch's ``Linear`` stores ``weight`` as ``(out, in)``, flax's ``Dense`` its ``kernel`` as
``(in, out)``. A convolution's ``weight`` ``(out, in, kh, kw)`` is flax's ``kernel`` ``(kh, kw, in, out)``,
and a transposed convolution's ``(in, out, kh, kw)`` is ``(kh, kw, out, in)``, the layout of flax's
``ConvTranspose(transpose_kernel=True)``, which ``SubpixelConvTranspose`` keeps: the same permutation. Biases
are the same vectors.

Only :func:`numpyro_to_torch` imports torch: the NumPyro backend draws its initial weights in torch's
layout with NumPy (:mod:`infovae.core.initial_weights`) and runs without it. Nothing here imports flax
or NumPyro.
"""

import jax
import numpy as np

from infovae.core.cvae import GUIDE_NAME, MODEL_NAME

__all__ = [
    "GUIDE_PARAMS",
    "MODEL_PARAMS",
    "numpyro_to_state_dicts",
    "numpyro_to_torch",
    "state_dicts_to_numpyro",
    "torch_to_numpyro",
]

# The NumPyro params that flax_module makes of the networks' names to hold their weights. Defined here,
# not by the flax networks, so that the NumPyro backend reads and writes weights without importing flax
# or NumPyro (a run whose programs are stored calls neither).
MODEL_PARAMS = MODEL_NAME + "$params"
GUIDE_PARAMS = GUIDE_NAME + "$params"

# torch leaf -> (flax leaf, whether the array is transposed between the two).
LEAVES = {"weight": ("kernel", True), "bias": ("bias", False)}
FLAX_LEAVES = {flax: (torch_leaf, transposed) for torch_leaf, (flax, transposed) in LEAVES.items()}
# torch numbers the layers of an nn.Sequential, flax prefixes the number.
SEQUENTIAL_PREFIX = "layers_"


def _flax_path(torch_name):
    """``"prior_net.0.weight"`` -> ``(("prior_net", "layers_0", "kernel"), True)``: the leaf's path and
    whether it is transposed. A parameter of a module itself (``"decoder_scale"``) keeps its name."""
    *modules, leaf = torch_name.split(".")
    flax_leaf, transposed = LEAVES.get(leaf, (leaf, False)) if modules else (leaf, False)
    return tuple(SEQUENTIAL_PREFIX + m if m.isdigit() else m for m in modules) + (flax_leaf,), transposed


def _torch_name(flax_path):
    """The inverse of :func:`_flax_path`."""
    *modules, flax_leaf = flax_path
    torch_leaf, transposed = FLAX_LEAVES.get(flax_leaf, (flax_leaf, False)) if modules else (flax_leaf, False)
    return ".".join([m.removeprefix(SEQUENTIAL_PREFIX) for m in modules] + [torch_leaf]), transposed


# The permutation of a torch weight's axes that gives flax's kernel, by the weight's rank, and back.
TO_FLAX = {2: (1, 0), 4: (2, 3, 1, 0)}
TO_TORCH = {rank: tuple(int(i) for i in np.argsort(axes)) for rank, axes in TO_FLAX.items()}


def _numpy(value):
    return np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)


def _state_dict_to_flax(state, dtype, put):
    """A nested flax params tree from a torch-layout state dict (name -> tensor or array), each leaf a
    NumPy copy passed through ``put``."""
    tree = {}
    for name, value in state.items():
        (*modules, leaf), transposed = _flax_path(name)
        node = tree
        for module in modules:
            node = node.setdefault(module, {})
        array = _numpy(value)
        # Cast and copied by NumPy (the same rounding as XLA's): device_put, on a CPU, may share the memory
        # of what it is given (a torch tensor's, here), and jnp.asarray would trace and compile a small
        # program per shape to do the same.
        node[leaf] = put(np.array(array.transpose(TO_FLAX[array.ndim]) if transposed else array, dtype=dtype))
    return tree


def _flax_to_state_dict(tree, prefix=()):
    """A torch-layout state dict of numpy arrays from a nested flax params tree."""
    state = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            state.update(_flax_to_state_dict(value, prefix + (key,)))
            continue
        name, transposed = _torch_name(prefix + (key,))
        array = np.asarray(value)
        # A copy: numpy views of JAX arrays are read-only, and torch wants to own what it loads.
        state[name] = (array.transpose(TO_TORCH[array.ndim]) if transposed else array).copy()
    return state


def state_dicts_to_numpyro(model_state, guide_state, dtype=None, on_device=True):
    """NumPyro params from torch-layout state dicts (name -> tensor or array) of the model and the guide.

    :param dtype: dtype of the arrays; ``None`` keeps the state dicts' own.
    :param on_device: JAX arrays on the default device; ``False``: NumPy arrays, for a caller that
        stacks several sets of params before putting them on the device once.
    """
    # Leaf by leaf: device_put of the whole tree would rebuild its dicts with their keys sorted (the guide's
    # params first), and callers read them in this order.
    put = jax.device_put if on_device else (lambda array: array)
    return {
        MODEL_PARAMS: _state_dict_to_flax(model_state, dtype, put),
        GUIDE_PARAMS: _state_dict_to_flax(guide_state, dtype, put),
    }


def numpyro_to_state_dicts(params):
    """Torch-layout state dicts ``(model, guide)`` of numpy arrays from NumPyro params."""
    return _flax_to_state_dict(params[MODEL_PARAMS]), _flax_to_state_dict(params[GUIDE_PARAMS])


def torch_to_numpyro(model, guide, dtype=None):
    """NumPyro params holding the weights of a Pyro :class:`~infovae.models.CVAEModel` and
    :class:`~infovae.guides.CVAEGuide`, for the NumPyro twins of the same config."""
    return state_dicts_to_numpyro(model.state_dict(), guide.state_dict(), dtype)


def numpyro_to_torch(params, model, guide):
    """Load NumPyro params into a Pyro :class:`~infovae.models.CVAEModel` and
    :class:`~infovae.guides.CVAEGuide`, in place, in each module's own dtype. A missing, extra or
    misshapen weight raises torch's error naming it."""
    import torch

    for module, state in zip((model, guide), numpyro_to_state_dicts(params)):
        dtypes = {name: value.dtype for name, value in module.state_dict().items()}
        module.load_state_dict({name: torch.as_tensor(value, dtype=dtypes.get(name)) for name, value in state.items()})
