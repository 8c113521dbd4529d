"""Traced programs kept on disk (``infovae.training.stored_programs``): a later process reads the program
instead of tracing it, gets the traced function's numbers, and traces again whenever anything the program
may hold differs."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("numpyro")

import jax.numpy as jnp  # noqa: E402

from infovae.data.registry import load_splits  # noqa: E402
from infovae.training.backends import Hyper  # noqa: E402
from infovae.training.config import parse_config  # noqa: E402
from infovae.training.loop import MinibatchSampler, build_backend  # noqa: E402
from infovae.training.stored_programs import StoredProgram  # noqa: E402


class Counted:
    """A function that counts how often JAX traces it."""

    def __init__(self):
        self.traces = 0

    def __call__(self, params, hyper, scale):
        self.traces += 1
        return jax.tree.map(lambda w: jnp.tanh(w * hyper.beta[0] * scale), params), jnp.sum(params["w"])


def arguments(shape=(3, 2)):
    hyper = Hyper(*(jnp.ones(1, jnp.float32) * (i + 2) for i in range(len(Hyper._fields))))
    return {"w": jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape) / 7}, hyper


def test_a_stored_program_is_read_back_without_tracing_and_gives_the_same_numbers(tmp_path):
    first, again = Counted(), Counted()
    expected = jax.jit(Counted(), static_argnames=("scale",))(*arguments(), scale=3)
    out = StoredProgram(first, "f", "closure", tmp_path, static_argnames=("scale",))(*arguments(), scale=3)
    assert first.traces == 1 and len(list(tmp_path.iterdir())) == 1
    # A new instance, as in a new process: read from the folder, never traced.
    read = StoredProgram(again, "f", "closure", tmp_path, static_argnames=("scale",))(*arguments(), scale=3)
    assert again.traces == 0
    for result in (out, read):
        np.testing.assert_array_equal(result[0]["w"], expected[0]["w"])
        np.testing.assert_array_equal(result[1], expected[1])


@pytest.mark.parametrize(
    "change",
    ["closure", "name", "static", "shape", "x64"],
)
def test_anything_the_program_may_hold_changes_its_key(tmp_path, change):
    StoredProgram(Counted(), "f", "closure", tmp_path, static_argnames=("scale",))(*arguments(), scale=3)
    other = Counted()
    name, closure, scale, shape = "f", "closure", 3, (3, 2)
    name = "g" if change == "name" else name
    closure = "other" if change == "closure" else closure
    scale = 4 if change == "static" else scale
    shape = (4, 2) if change == "shape" else shape
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", change == "x64" or old)
    try:
        StoredProgram(other, name, closure, tmp_path, static_argnames=("scale",))(*arguments(shape), scale=scale)
    finally:
        jax.config.update("jax_enable_x64", old)
    assert other.traces == 1 and len(list(tmp_path.iterdir())) == 2


def test_a_damaged_file_is_traced_again_and_an_unwritable_folder_only_costs_tracing(tmp_path):
    program = StoredProgram(Counted(), "f", "closure", tmp_path, static_argnames=("scale",))
    program(*arguments(), scale=3)
    (stored,) = tmp_path.iterdir()
    stored.write_bytes(stored.read_bytes()[:100])
    again = Counted()
    StoredProgram(again, "f", "closure", tmp_path, static_argnames=("scale",))(*arguments(), scale=3)
    assert again.traces == 1 and len(stored.read_bytes()) > 100
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    out = StoredProgram(Counted(), "f", "closure", blocked / "programs", static_argnames=("scale",))(*arguments(), scale=3)
    assert np.isfinite(out[1])


def test_trials_that_differ_only_in_their_seeds_share_programs():
    """The backend leaves the seeds out of its programs' key; so no seed may be baked into a program: the
    lowered training and evaluation programs of two seeds are the same text."""
    raw = {
        "data": {"kind": "strategies", "num_examples": 240, "horizon": 4, "num_strategies": 3},
        "model": {"latent": "discrete", "latent_size": 4, "hidden": 16},
        "train": {"steps": 10, "batch_size": 32, "eval_every": 5, "eval_examples": 60},
        "backend": "numpyro",
    }
    texts = []
    for seed in (0, 1):
        config = parse_config({**raw, "train": {**raw["train"], "seed": seed}, "data": {**raw["data"], "seed": seed}})
        splits = load_splits(config.data, config.likelihood)
        model = build_backend([config], splits)
        sampler = MinibatchSampler(len(splits.train), 32, seed)
        indices = jnp.asarray(np.stack([sampler.next() for _ in range(5)])[None], jnp.int32)
        train = model._train.jitted.lower(
            model.params, model.opt_state, model.keys, model.step_count, jnp.ones(1, bool), indices, model._hyper,
            (model.train_x, model.train_y),
        )  # fmt: skip
        data, extra = model._eval_set(splits.val, splits.train, splits.generator)
        evaluate = model._evaluate.jitted.lower(
            model.params, model.keys, model._hyper, data, num_labels=extra["num_labels"], num_clusters=extra["num_clusters"]
        )
        texts.append((model._closure(), train.as_text(), evaluate.as_text()))
    assert texts[0] == texts[1]


def test_plugin_code_is_part_of_the_key_and_code_without_a_file_is_never_stored(tmp_path, monkeypatch):
    from infovae.training.stored_programs import code_digest

    module = tmp_path / "my_divergence.py"
    module.write_text("def divergence(x):\n    return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_divergence

    before = code_digest(my_divergence.divergence)
    module.write_text("def divergence(x):\n    return x * 3\n")
    assert before is not None and code_digest(my_divergence.divergence) != before
    namespace = {}
    exec("def typed_at_the_prompt(x):\n    return x\n", namespace)
    assert code_digest(namespace["typed_at_the_prompt"]) is None
    counted = Counted()
    program = StoredProgram(counted, "f", None, tmp_path / "programs", static_argnames=("scale",))
    program(*arguments(), scale=3)
    assert counted.traces == 1 and not (tmp_path / "programs").exists()


def test_a_program_that_cannot_be_exported_runs_as_plain_jit(tmp_path, monkeypatch):
    from jax import export

    def refuse(*args, **kwargs):
        raise ValueError("cannot export this")

    monkeypatch.setattr(export, "export", refuse)
    expected = jax.jit(Counted(), static_argnames=("scale",))(*arguments(), scale=3)
    out = StoredProgram(Counted(), "f", "closure", tmp_path, static_argnames=("scale",))(*arguments(), scale=3)
    np.testing.assert_array_equal(out[0]["w"], expected[0]["w"])
    assert not list(tmp_path.iterdir())


def test_a_keyword_that_is_not_a_static_argument_is_refused(tmp_path):
    """Keywords key the stored program and are not passed to it: an array passed by keyword would be
    traced into the program and then left out of the call."""
    program = StoredProgram(lambda x, y: x * y, "f", "closure", tmp_path)
    with pytest.raises(TypeError, match=r"keyword arguments must be static arguments; got \['y'\]"):
        program(jnp.ones(2), y=jnp.ones(2))


def test_programs_are_exported_for_the_platform_of_the_default_device(monkeypatch):
    """A user who pins runs to the CPU of a GPU machine (``jax.default_device``) gets the CPU's programs,
    not the default backend's (which could not run on the CPU's arrays)."""
    from infovae.training import stored_programs

    assert stored_programs._platform() == jax.export.default_export_platform()  # no choice: the default backend's
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # as on a GPU machine
    with jax.default_device(jax.devices("cpu")[0]):
        assert stored_programs._platform() == "cpu"
