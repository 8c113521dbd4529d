"""The NumPyro backend's arrays are its own: it copies what it is given (the training data, the initial
weights) onto the device, so that the caller's later changes to those arrays change nothing in a run,
and it takes from a checkpoint only weights of its own shapes and dtypes."""

import dataclasses

import numpy as np
import pytest

from infovae.errors import CheckpointError

pytest.importorskip("jax")
pytest.importorskip("numpyro")

from infovae.data.registry import load_splits  # noqa: E402
from infovae.training.config import parse_config  # noqa: E402
from infovae.training.loop import build_backend  # noqa: E402

RAW = {
    "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
    "model": {"latent": "gaussian", "latent_size": 2, "hidden": 16},
    "train": {"steps": 10, "batch_size": 32, "eval_every": 5, "eval_examples": 60},
    "backend": "numpyro",
}


def aligned(array, alignment=64):
    """A copy of ``array`` in memory that starts at a multiple of ``alignment`` bytes: XLA's CPU client
    shares the memory of such an array instead of copying it, where it may."""
    buffer = np.empty(array.nbytes + alignment, np.uint8)
    offset = -buffer.ctypes.data % alignment
    out = buffer[offset : offset + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    return out


def test_the_training_data_is_copied_onto_the_device():
    config = parse_config(RAW)
    splits = load_splits(config.data, config.likelihood)
    # Aligned arrays of the dtypes the backend uses: it has nothing to convert, and could share their memory.
    x, y = aligned(splits.train.x.astype(np.float32)), aligned(splits.train.y.astype(np.int32))
    splits = dataclasses.replace(splits, train=dataclasses.replace(splits.train, x=x, y=y))
    model = build_backend([config], splits)
    before = np.array(model.train_x), np.array(model.train_y)
    x += 1.0
    y[:] = 0
    np.testing.assert_array_equal(np.asarray(model.train_x), before[0])
    np.testing.assert_array_equal(np.asarray(model.train_y), before[1])


def test_a_checkpoint_with_weights_of_another_dtype_is_refused_by_name():
    import jax

    config = parse_config(RAW)
    model = build_backend([config], load_splits(config.data, config.likelihood))
    state = model.state_dict()
    model.load_state_dict(state)  # its own checkpoint is taken
    # float64 too, which the device would make float32 without JAX's 64-bit mode; the selected weights too.
    for part, dtype in (("params", np.float16), ("params", np.float64), ("best", np.float64)):
        other = {**state, part: jax.tree.map(lambda a: a.astype(dtype), state[part])}
        with pytest.raises(CheckpointError, match=f"weights of {np.dtype(dtype).name} where this run's are float32"):
            model.load_state_dict(other)
    for kept, saved in zip(jax.tree.leaves((model.params, model.best)), jax.tree.leaves((state["params"], state["best"]))):
        np.testing.assert_array_equal(np.asarray(kept), saved)  # nothing of the refused ones was taken


PINNED = """
import json, sys
import jax
import numpy as np
from infovae.data.registry import load_splits
from infovae.training.config import parse_config
from infovae.training.loop import build_backend

chosen = jax.devices()[1]
config = parse_config(json.loads(sys.argv[1]))
with jax.default_device(chosen):
    model = build_backend([config], load_splits(config.data, config.likelihood))
    state_before = [a.devices() for a in jax.tree.leaves((model.params, model.opt_state, model.keys, model.train_x))]
    model.train_steps(np.arange(2 * 32).reshape(1, 2, 32) % 240, np.ones(1, bool))
    state_after = [a.devices() for a in jax.tree.leaves((model.params, model.opt_state, model.keys))]
print(json.dumps([str(d) for ds in state_before + state_after for d in ds] + [str(chosen)]))
"""


def test_a_run_stays_on_the_device_the_user_chose():
    """``jax.default_device``: the data, the weights, Adam's state and the keys all go there, and the
    training program runs there (two CPU devices stand in for two GPUs)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", PINNED, json.dumps(RAW)], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    *placed, chosen = json.loads(done.stdout.splitlines()[-1])
    assert chosen == "cpu:1" and set(placed) == {chosen}
