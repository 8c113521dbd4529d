"""One-line reports of other libraries' errors: ``infovae.errors.first_line`` and the places that quote it."""

import pytest

from infovae.errors import CheckpointError, first_line, typed_first_line


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("bad value\nat line 3"), "bad value"),
        (ValueError("\n  \n  bad value  \nmore"), "bad value"),  # leading blank lines, padding
        (ValueError(), "ValueError"),
        (KeyError(), "KeyError"),
        (RuntimeError("\n\n"), "RuntimeError"),  # nothing but blank lines
        (KeyError("weights"), "'weights'"),
    ],
)
def test_first_line_is_the_first_line_with_text_else_the_type(error, expected):
    assert first_line(error) == expected


def test_a_pyro_checkpoint_that_fails_without_a_message_is_refused_by_name(monkeypatch):
    """An error with an empty message from a library the checkpoint's restoring calls is reported as a
    CheckpointError (before, quoting its first line raised IndexError)."""
    pytest.importorskip("pyro")
    import pyro.util

    from infovae.data.registry import load_splits
    from infovae.training.config import parse_config
    from infovae.training.loop import build_backend

    config = parse_config(
        {
            "data": {"kind": "strategies", "num_examples": 120, "horizon": 4, "num_strategies": 3},
            "model": {"latent": "gaussian", "latent_size": 2, "hidden": 8},
            "train": {"steps": 4, "batch_size": 16, "eval_every": 2, "eval_examples": 40},
            "backend": "pyro",
        }
    )
    model = build_backend([config], load_splits(config.data, config.likelihood))
    state = model.state_dict()

    def fails(_state):
        raise ValueError()

    monkeypatch.setattr(pyro.util, "set_rng_state", fails)
    with pytest.raises(CheckpointError, match=r"does not fit this run's model \(ValueError\)"):
        model.load_state_dict(state)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValueError("bad value\nat line 3"), "ValueError: bad value"),
        (OSError("\nno space left"), "OSError: no space left"),
        (KeyError(), "KeyError"),
        (RuntimeError(" \n"), "RuntimeError"),
    ],
)
def test_typed_first_line_names_the_type_and_the_first_line_with_text(error, expected):
    assert typed_first_line(error) == expected
