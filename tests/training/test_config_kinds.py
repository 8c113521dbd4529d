"""Numbers and booleans in a config: neither is taken for the other (pydantic's lax mode would read
``train.steps: true`` as 1 step), whichever way the value comes, and numbers YAML 1.1 reads as text
(``1e-3``) are still numbers."""

import pytest

import infovae
from infovae.data.registry import DATA_KINDS
from infovae.training.config import CombinationError, ConfigError, apply_overrides, load_config, parse_config
from infovae.training.config_text import config_keys

# A valid config for each data kind (parse_config reads no data, so an npz file need not exist).
BASES = {
    kind: {"data": {"kind": kind, **({"path": "a.npz"} if kind == "npz" else {})}, "model": {"likelihood": "gaussian"}}
    if DATA_KINDS[kind].likelihood is None
    else {"data": {"kind": kind}}
    for kind in DATA_KINDS
}
SECTIONS = {"data", "model", "objective", "train", "train.warmup", "train.early_stopping"}


def _leaf_keys():
    """Every (data kind, dotted key) of a value (not a section) in a config of that kind."""
    return [(kind, key) for kind in DATA_KINDS for key in config_keys(kind) if key not in SECTIONS and key != "data.kind"]


def _parsed(config, key):
    node = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _with(kind, key, value):
    raw = apply_overrides(BASES[kind], {key: value})
    if key.startswith("train.early_stopping."):  # a section without defaults: its other keys must be given
        raw["train"]["early_stopping"] = {"patience": 3, **raw["train"]["early_stopping"]}
    return raw


@pytest.mark.parametrize("kind, key", _leaf_keys())
@pytest.mark.parametrize("value", [True, False, [True]])
def test_no_key_takes_a_boolean_for_a_number(kind, key, value):
    """Every key of every data kind: a boolean is refused naming the key, or kept as a boolean."""
    try:
        config = parse_config(_with(kind, key, value))
    except CombinationError:  # the value is taken, and does not fit with the others
        return
    except ConfigError as error:
        assert str(error).startswith(f"{key}: ") and "\n" not in str(error)
        return
    parsed = _parsed(config, key)
    items = parsed if isinstance(value, list) and isinstance(parsed, (list, tuple)) else [parsed]
    assert all(isinstance(item, bool) for item in items), (key, parsed)


@pytest.mark.parametrize("kind, key", _leaf_keys())
def test_no_key_takes_a_number_for_a_boolean(kind, key):
    try:
        config = parse_config(_with(kind, key, 1))
    except CombinationError:
        return
    except ConfigError as error:
        assert str(error).startswith(f"{key}: ") and "\n" not in str(error)
        return
    assert not isinstance(_parsed(config, key), bool), key


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: {steps: true}\n", "train.steps: must be a number, got True"),
        ("objective: {beta: yes}\n", "objective.beta: must be a number, got True"),
        ("data: {kind: strategies, seed: on}\n", "data.seed: must be a number, got True"),
        ("objective: {marginal: mmd, kernel_scales: [1.0, false]}\nmodel: {latent: gaussian}\n", "objective.kernel_scales:"),
        ("train: {warmup: {beta: true}}\n", "train.warmup.beta: must be a number"),
        ("data: {kind: digits, greyscale: 1}\n", "data.greyscale: must be true or false, got 1"),
    ],
)
def test_a_yaml_file_with_a_boolean_for_a_number_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override, key",
    [("train.steps=true", "train.steps"), ("objective.beta=yes", "objective.beta"), ("model.hidden=off", "model.hidden")],
)
def test_an_override_with_a_boolean_for_a_number_is_refused_naming_the_key(tmp_path, override, key):
    path = tmp_path / "c.yaml"
    path.write_text("train: {steps: 5}\n")
    with pytest.raises(ConfigError, match=rf"^{key}: must be a number, got (True|False) \(YAML reads"):
        load_config(path, [override])


def test_python_overrides_with_a_boolean_for_a_number_are_refused_before_any_folder(tmp_path):
    for overrides in ({"train__steps": True}, {"objective.beta": False}):
        with pytest.raises(ConfigError, match="must be a number"):
            infovae.train(BASES["strategies"], out=tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=r"^train\.batch_size: must be a number"):
        infovae.train({"train": {"batch_size": True}}, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_numbers_stay_numbers_and_yaml_text_numbers_are_read(tmp_path):
    path = tmp_path / "c.yaml"
    # YAML 1.1 reads 1e-3 (no dot) as the text '1e-3': the float fields read it as the number.
    path.write_text("objective: {beta: 1, marginal: mmd, bandwidth: 1e-1, kernel_scales: [1, 2e-1]}\nmodel: {latent: gaussian}\n")
    config = load_config(path, ["train.lr=1e-3", "model.decoder_scale=5e-1", "train.steps=5"])
    assert config.objective.beta == 1.0 and isinstance(config.objective.beta, float)
    assert config.objective.bandwidth == pytest.approx(0.1) and config.objective.kernel_scales == (1.0, pytest.approx(0.2))
    assert config.train.lr == pytest.approx(1e-3) and config.model.decoder_scale == pytest.approx(0.5)
    assert config.train.steps == 5 and config.objective.bandwidth != "1e-1"
    assert parse_config({"objective": {"bandwidth": "median", "marginal": "mmd"}, "model": {"latent": "gaussian"}})


def test_keys_that_do_not_fit_together_are_a_combination_and_a_bad_key_comes_first():
    with pytest.raises(CombinationError, match="needs a continuous latent"):
        parse_config({"objective": {"marginal": "mmd"}})
    with pytest.raises(CombinationError, match="needs a marginal divergence"):
        parse_config({"objective": {"marginal_weight": 2}})
    # A bad value is no combination, even beside one (the combination may come from it).
    with pytest.raises(ConfigError) as error:
        parse_config({"objective": {"marginal": "mmd"}, "train": {"stepz": 5}})
    assert not isinstance(error.value, CombinationError) and str(error.value).startswith("train.stepz: unknown key")
    for raw in ({"objective": {"kernel_scales": [-1]}}, {"objective": {"beta": -1}}, {"objective": {"marginal": "mmdd"}}):
        with pytest.raises(ConfigError) as error:
            parse_config(raw)
        assert not isinstance(error.value, CombinationError) and str(error.value).startswith("objective.")
