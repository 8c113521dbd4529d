"""A sweep's trial configs are validated when the sweep is expanded: an unknown key or a bad value, set
on every trial or swept, refuses the sweep before any trial folder is made; keys that do not fit together
stay a failed trial (an invalid combination)."""

import pytest
import yaml

from infovae.cli import main
from infovae.errors import UserInputError
from infovae.sweeps import load_sweep, run_sweep
from infovae.training.config import ConfigError

from .test_sweeps import BASE


def _sweep(tmp_path, **extra):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": BASE, "grid": {"objective.beta": [1.0, 0.5]}, "seeds": [0, 1], **extra}))
    return path


@pytest.mark.parametrize(
    "extra, overrides, message",
    [
        ({}, {"train.stepz": 5}, "train.stepz: unknown key (did you mean train.steps?)"),
        ({"set": {"train.stepz": 5}}, None, "train.stepz: unknown key (did you mean train.steps?)"),
        ({"grid": {"objective.betta": [1.0, 0.5]}}, None, "objective.betta: unknown key"),
        ({"set": {"train.steps": True}}, None, "train.steps: must be a number, got True"),
        ({}, {"objective__jsd_weight": "yes"}, "objective.jsd_weight: Input should be a valid number"),
        ({"grid": {"objective.beta": [1.0, -1.0]}}, None, "the trial objective.beta=-1, seed 0: objective.beta:"),
        ({"grid": {"train.steps": [5, True]}}, None, "the trial train.steps=True, seed 0: train.steps: must be a number"),
        ({"list": [{"objective.marginal": "mmdd"}]}, None, "objective.marginal: Input should be"),
        ({"random": {"num_trials": 1, "space": {"model.latent_size": {"choice": [0]}}}}, None, "model.latent_size:"),
        ({"seeds": [0, -1]}, None, "seed -1: train.seed: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_key_or_value_in_any_trial_refuses_the_sweep_naming_it(tmp_path, extra, overrides, message):
    path = _sweep(tmp_path, **extra)
    with pytest.raises(ConfigError) as error:
        load_sweep(path, overrides)
    assert message in str(error.value) and str(error.value).startswith(f"{path}: the trial ")
    assert "\n" not in str(error.value)
    # infovae.sweep: a UserInputError, before the sweep folder is made.
    with pytest.raises(UserInputError, match="the trial"):
        run_sweep(path, tmp_path / "out", overrides=overrides, progress=False)
    assert not (tmp_path / "out").exists()


def test_an_unknown_key_on_the_command_line_is_one_line_and_makes_no_folder(tmp_path, capsys):
    for args in (["train.stepz=5"], ["train.steps=true"]):
        with pytest.raises(SystemExit) as done:
            main(["sweep", str(_sweep(tmp_path)), *args, "--out", str(tmp_path / "out"), "--no-progress"])
        err = capsys.readouterr().err
        assert done.value.code == 2 and err.count("\n") == 1 and args[0].split("=")[0] in err
        assert err.startswith("infovae: error: ") and "Traceback" not in err
        assert not (tmp_path / "out").exists()


def test_an_invalid_combination_is_not_refused_up_front(tmp_path):
    # marginal mmd needs a continuous latent: that trial fails when it runs, the others go on.
    spec = load_sweep(_sweep(tmp_path, list=[{"objective.marginal": "mmd", "objective.marginal_weight": 1.0}]))
    assert len(spec.trials) == 6


def test_a_valid_sweep_expands_as_before_and_warns_nothing(tmp_path, recwarn):
    # kernel_scales is ignored by the kl divergence: each trial warns when it runs, not the expansion.
    spec = load_sweep(_sweep(tmp_path, set={"objective.kernel_scales": [0.5]}))
    assert len(spec.trials) == 4 and not [w for w in recwarn if "ignored" in str(w.message)]
