"""The run config: defaults, overrides and the errors that name the key."""

from pathlib import Path

import pytest
import yaml

from infovae.training.config import (
    ConfigError,
    apply_overrides,
    describe_schema,
    load_config,
    parse_config,
)


def test_defaults_follow_the_spec_skeleton():
    c = parse_config({})
    assert (c.data.kind, c.model.latent, c.model.latent_size, c.model.prior, c.model.hidden) == (
        "strategies",
        "discrete",
        8,
        "fixed",
        128,
    )
    assert (c.objective.beta, c.objective.marginal, c.objective.marginal_weight, c.objective.jsd_weight) == (1.0, None, 0.0, 0.0)
    assert (c.train.steps, c.train.batch_size, c.train.lr, c.train.seed, c.train.eval_every) == (2000, 256, 0.001, 0, 200)
    assert c.likelihood == "categorical" and c.backend == "pyro"


def test_overrides_parse_values_as_yaml_and_reach_any_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: {beta: 1.0}\n")
    c = load_config(
        path, ["objective.beta=0", "objective.marginal=kl", "objective.marginal_weight=1e2", "train.steps=5", "data.kind=digits"]
    )
    assert (c.objective.beta, c.objective.marginal, c.objective.marginal_weight, c.train.steps, c.data.kind) == (
        0.0,
        "kl",
        100.0,
        5,
        "digits",
    )
    assert apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]"]) == {"a": {"b": 1, "c": [1, 2]}}


def test_npz_path_is_resolved_against_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "c.yaml"
    path.write_text("data: {kind: npz, path: arrays.npz}\nmodel: {likelihood: gaussian}\n")
    assert load_config(path).data.path == (tmp_path / "sub" / "arrays.npz").resolve()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"objective": {"beta": -1}}, "objective.beta: Input should be greater than or equal to 0 (got -1)"),
        ({"objective": {"betta": 1}}, "objective.betta: unknown key"),
        ({"objective": {"beta": ".nan"}}, "objective.beta"),
        ({"train": {"steps": "many"}}, "train.steps: Input should be a valid integer"),
        ({"train": {"lr": 0}}, "train.lr: Input should be greater than 0"),
        ({"data": {"kind": "mnits"}}, "data: unknown data kind 'mnits'"),
        ({"data": {"kind": "npz"}}, "data.path: Field required"),
        ({"data": {"kind": "strategies", "path": "x.npz"}}, "data.path: unknown key"),
        (
            {"model": {"latent": "gaussian"}, "objective": {"marginal": "kl", "marginal_weight": 1}},
            "objective.marginal='kl' needs a discrete latent, but model.latent is gaussian",
        ),
        ({"objective": {"marginal": "mmd"}}, "marginal='mmd' needs a continuous latent, but model.latent is discrete"),
        ({"objective": {"marginal_weight": 2}}, "objective: marginal_weight=2.0 needs a marginal divergence"),
        ({"objective": {"bandwidth": "mean"}}, "objective.bandwidth: must be None, 'median' or a positive number"),
        ({"data": {"kind": "digits"}, "model": {"likelihood": "gaussian"}}, "data kind digits needs model.likelihood: bernoulli"),
        ({"data": {"kind": "npz", "path": "a.npz"}}, "data kind npz needs model.likelihood"),
        ({"train": 5}, "train: Input should be a valid dictionary"),
        ({"backend": "tensorflow"}, "backend: Input should be 'pyro' or 'numpyro'"),
    ],
)
def test_invalid_configs_name_the_key(raw, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "raw, suggestion",
    [
        ({"train": {"step": 5}}, "train.step: unknown key (did you mean train.steps?)"),
        ({"trian": {"steps": 5}}, "trian: unknown key (did you mean train?)"),
        ({"train": {"warmup": {"bta": 5}}}, "train.warmup.bta: unknown key (did you mean train.warmup.beta?)"),
        ({"train": {"latent_size": 5}}, "train.latent_size: unknown key (did you mean model.latent_size?)"),
        ({"data": {"kind": "npz", "path": "a.npz", "image_shap": [1, 2, 2]}}, "(did you mean data.image_shape?)"),
        ({"objective": {"zzz": 1}}, "objective.zzz: unknown key"),
    ],
)
def test_unknown_keys_suggest_the_key_meant(raw, suggestion):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert str(error.value).endswith(suggestion)
    assert "did you mean" not in suggestion or "did you mean" in str(error.value)


def test_an_unknown_override_key_suggests_the_key_meant(tmp_path):
    with pytest.raises(ConfigError, match=r"^train\.step: unknown key \(did you mean train\.steps\?\)$"):
        load_config(_empty_section(tmp_path), ["train.step=5"])


def _empty_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {}\n")
    return path


def test_a_key_named_twice_is_refused_with_its_lines(tmp_path):
    from infovae.files import load_yaml
    from infovae.training.config_overrides import parse_value

    twice = tmp_path / "twice.yaml"
    twice.write_text("data: {kind: digits}\ntrain: {steps: 5}\ndata: {kind: strategies}\n")
    where = r"twice.yaml: not valid YAML at line 3, column 1: duplicate key 'data' \(first at line 1\)"
    with pytest.raises(ConfigError, match=where):
        load_config(twice)
    nested = tmp_path / "nested.yaml"
    nested.write_text("train:\n  steps: 5\n  steps: 6\n")
    with pytest.raises(ConfigError, match=r"line 3, column 3: duplicate key 'steps' \(first at line 2\)"):
        load_yaml(nested)
    # A merge key may still be overridden, as YAML defines it.
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {steps: 5, lr: 0.1}\ntrain: {<<: *b, steps: 6}\n")
    assert load_yaml(merged)["train"] == {"steps": 6, "lr": 0.1}
    # Override values are read as YAML the same way: mappings and lists still parse, a repeated key is named.
    assert parse_value("{kind: digits, seed: 3}") == {"kind": "digits", "seed": 3}
    assert parse_value("[1, 2]") == [1, 2] and parse_value("5") == 5 and parse_value("a: b: c") == "a: b: c"
    with pytest.raises(ConfigError, match="names the key 'kind' twice"):
        parse_value("{kind: digits, kind: npz}")


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective: {beta: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(scalar)
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        load_config(_empty(tmp_path), ["objective.beta"])


def _empty(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    return path


def test_every_example_config_is_valid():
    """Every example YAML is a valid run config, or a sweep file (it has a base) whose trials all are."""
    from infovae.sweeps import load_sweep

    examples = sorted(Path(__file__).parents[2].joinpath("examples").rglob("*.yaml"))
    assert len(examples) > 10
    for path in examples:
        if "base" in yaml.safe_load(path.read_text()):
            spec = load_sweep(path)
            for trial in spec.trials:
                parse_config(trial.raw_config(spec.base))
        else:
            load_config(path)


def test_schema_documents_every_key():
    text = describe_schema()
    for key in (
        "data.num_strategies",
        "data.quadrants",
        "data.path",
        "model.latent_size",
        "objective.marginal_weight",
        "objective.jsd_weight",
        "train.eval_every",
    ):
        assert key in text
